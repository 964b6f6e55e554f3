/** The eval's statistics: t and Wilson intervals against hand-computed values, the Pareto front. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { meanInterval, paretoFront, tQuantile975, wilsonInterval } from '../src/model/eval-stats.js';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);

test('t quantiles: table values, and the expansion beyond 30 degrees of freedom', () => {
  close(tQuantile975(1), 12.706, 1e-9, 'df 1');
  close(tQuantile975(15), 2.131, 1e-9, 'df 15');
  // R: qt(0.975, c(40, 60, 120, 1000)) = 2.021075 2.000298 1.979930 1.962339
  for (const [df, want] of [[40, 2.021075], [60, 2.000298], [120, 1.97993], [1000, 1.962339]] as const) close(tQuantile975(df), want, 1e-3, `df ${df}`);
  assert.ok(tQuantile975(31) < tQuantile975(30) && tQuantile975(31) > tQuantile975(40), 'monotone across the table edge');
});

test('mean interval: mean ± t·s/√n by hand; one value bounds nothing; constant data has zero width', () => {
  const xs = [0.1, 0.3, 0.2, 0.6];
  const mean = 0.3;
  const s = Math.sqrt(((0.2 ** 2) + 0 + (0.1 ** 2) + (0.3 ** 2)) / 3);
  const half = 3.182 * s / 2;
  const i = meanInterval(xs);
  close(i.lo, mean - half, 1e-12, 'lo');
  close(i.hi, mean + half, 1e-12, 'hi');
  assert.deepEqual(meanInterval([5]), { lo: -Infinity, hi: Infinity });
  assert.deepEqual(meanInterval([2, 2, 2]), { lo: 2, hi: 2 });
});

test('Wilson interval: published values, clamped to [0, 1], not degenerate at 0/n and n/n', () => {
  // Wilson (1927) / Newcombe (1998) table: 0/10 → [0, 0.2775]; 8/16 → [0.2800, 0.7200]; 15/20 → [0.5313, 0.8881].
  const a = wilsonInterval(0, 10);
  assert.equal(a.lo, 0);
  close(a.hi, 0.2775, 1e-4, '0/10 hi');
  const b = wilsonInterval(8, 16);
  close(b.lo, 0.28, 1e-4, '8/16 lo');
  close(b.hi, 0.72, 1e-4, '8/16 hi');
  const c = wilsonInterval(15, 20);
  close(c.lo, 0.5313, 1e-4, '15/20 lo');
  close(c.hi, 0.8881, 1e-4, '15/20 hi');
  const d = wilsonInterval(16, 16);
  assert.equal(d.hi, 1);
  for (const n of [1, 3, 7, 16, 50]) assert.ok(wilsonInterval(n, n).hi >= 1 && wilsonInterval(0, n).lo <= 0, `exact ends at n = ${n}`);
  assert.ok(d.lo > 0.75 && d.lo < 0.85, `16/16 lo ${d.lo}`);
});

test('Pareto front: dominated, tied and non-finite points are dropped; order by sparsity', () => {
  const p = (name: string, sparsity: number, lossDelta: number) => ({ name, sparsity, lossDelta });
  const points = [
    p('a', 0.5, 0.01), p('b', 0.8, 0.03), p('c', 0.6, 0.05), // c: b is sparser and better
    p('d', 0.9, 0.2), p('e', 0.5, 0.02), // e: same sparsity as a, worse
    p('f', 0.3, 0.01), // f: a is sparser at the same Δloss
    p('g', 0.2, -0.001), // g: the only one below zero: kept
    p('h', 0.95, NaN), p('a2', 0.5, 0.01), // a2: exact duplicate of a, the first is kept
  ];
  assert.deepEqual(paretoFront(points).map((x) => x.name), ['g', 'a', 'b', 'd']);
  assert.deepEqual(paretoFront([]), []);
  assert.deepEqual(paretoFront([p('x', 0.7, 0.4)]).map((x) => x.name), ['x']);
});
