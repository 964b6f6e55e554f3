/**
 * A method is one folder: a method defined in this file alone, registered with its descriptor, shows
 * up in `sparse-attn methods`, the demo, calibration, the eval's sparsity search and the bench menu
 * with no edit anywhere else.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runBench } from '../src/bench/harness.js';
import { issue8Sweep, smokeSweep } from '../src/bench/sweeps.js';
import { cpuTarget } from '../src/bench/targets.js';
import { bisectKnob } from '../src/calibration/knobs.js';
import { calibrate, createCalibratedMethod } from '../src/calibration/calibrate.js';
import { runDemo } from '../src/cli/commands/demo.js';
import { methodsCommand } from '../src/cli/commands/methods.js';
import { describeAttention } from '../src/core/attention-shape.js';
import { BlockMask } from '../src/core/block-mask.js';
import { InvalidArgumentError } from '../src/core/errors.js';
import { checkScores, type Scores } from '../src/core/scores.js';
import { phaseOf, statsFromMask } from '../src/core/stats.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import type { HeadTensor } from '../src/core/tensor.js';
import type { MethodDescriptor, MethodKnob } from '../src/methods/descriptor.js';
import { sparseMethods } from '../src/methods/index.js';
import { type BlockPlan, maskScores, type PlanOptions, type SparseAttentionMethod, type SparsityResult, type ThresholdInfo } from '../src/methods/method.js';
import { plannedSparsity, searchSetting } from '../src/model/sparsity-search.js';

/**
 * "Vertical stripes": every query block keeps key block 0, its diagonal block, and every `every`-th
 * key block; a larger `every` is sparser.
 */
class StripesMethod implements SparseAttentionMethod {
  static readonly description = 'test-only: key block 0, the diagonal and every n-th key block';
  readonly name = 'test_stripes';
  readonly version = 'v1';
  readonly every: number;
  readonly block = 16;

  constructor(settings: Record<string, unknown> = {}) {
    for (const key of Object.keys(settings)) if (key !== 'every') throw new InvalidArgumentError('test_stripes setting', key, 'every');
    const every = settings.every ?? 2;
    if (typeof every !== 'number' || !Number.isInteger(every) || every < 1) throw new InvalidArgumentError('test_stripes.every', every, 'an integer >= 1');
    this.every = every;
  }

  private mask(dims: { batch: number; heads: number; queryLength: number; keyLength: number; causal: boolean }): BlockMask {
    const d = { ...dims, blockRows: this.block, blockCols: this.block };
    const off = dims.keyLength - dims.queryLength;
    return BlockMask.fromPredicate(d, (_b, _h, qb, kb) => {
      const diag = Math.floor((off + Math.min((qb + 1) * this.block, dims.queryLength) - 1) / this.block);
      return kb === 0 || kb === diag || kb % this.every === 0;
    });
  }

  calculateSparsity(scores: Scores): SparsityResult {
    checkScores(scores);
    const blocks = this.mask({ ...scores, causal: false });
    const mask = new Uint8Array(scores.data.length);
    for (let b = 0; b < scores.batch; b++)
      for (let h = 0; h < scores.heads; h++) mask.set(blocks.expand(b, h), (b * scores.heads + h) * scores.queryLength * scores.keyLength);
    return { mask, stats: statsFromMask(this.name, blocks) };
  }

  applySparsity(scores: Scores, mask?: Uint8Array): Scores {
    return maskScores(scores, mask ?? this.calculateSparsity(scores).mask);
  }

  getThresholdInfo(): ThresholdInfo {
    return { type: 'static', value: this.every };
  }

  planBlockMask(q: HeadTensor, k: HeadTensor, opts: PlanOptions): BlockPlan {
    const p = describeAttention(q, k, k, opts);
    const mask = this.mask(p);
    return { mask, stats: { ...statsFromMask(this.name, mask), phase: opts.phase ?? phaseOf(p.queryLength) } };
  }
}

const knob: MethodKnob = { setting: 'every', min: 1, max: 64, integer: true, logScale: true, sparserWhenHigher: true };
const STRIPES: MethodDescriptor = {
  name: 'test_stripes',
  version: 'v1',
  cls: StripesMethod,
  knob,
  demoSettings: () => ({ every: 4 }),
  bench: { smoke: [{ settings: { every: 3 }, causal: true }] },
};
sparseMethods.add(STRIPES);

async function quiet<T>(f: () => Promise<T>): Promise<{ value: T; out: string }> {
  const log = console.log;
  let out = '';
  console.log = (...a: unknown[]) => { out += a.join(' ') + '\n'; };
  try {
    return { value: await f(), out };
  } finally {
    console.log = log;
  }
}

describe('a method defined in one file, registered with its descriptor', () => {
  it('is listed by `sparse-attn methods`', async () => {
    const { value, out } = await quiet(() => methodsCommand.run(['--json']));
    assert.equal(value, 0);
    const row = (JSON.parse(out) as { name: string; latest: string; description: string; knob: string | null }[]).find((m) => m.name === 'test_stripes');
    assert.deepEqual(row && { latest: row.latest, description: row.description, knob: row.knob }, { latest: 'v1', description: StripesMethod.description, knob: 'every' });
  });

  it('runs in the demo at its demo settings, with density and error against dense', async () => {
    const { q, k, v } = structuredQKV({ heads: 2, kvHeads: 1, length: 150, headDim: 16, seed: 3 });
    const rows = await runDemo(q, k, v, true, () => {});
    const row = rows.find((r) => r.method === 'test_stripes');
    assert.ok(row, 'the demo has a row for the method');
    assert.equal(row.note, '');
    const expected = new StripesMethod({ every: 4 }).planBlockMask(q, k, { causal: true }).stats;
    assert.equal(row.density, 1 - expected.sparsity);
    assert.ok(row.density! < 1 && row.relL2Error! > 0, `density ${row.density}, error ${row.relL2Error}`);
  });

  it('calibrates its knob to a target sparsity (a knob that is sparser when higher)', () => {
    const inputs = [256, 320].map((L, i) => structuredQKV({ heads: 2, length: L, headDim: 16, seed: 40 + i }));
    const cal = calibrate({ method: 'test_stripes', inputs, target: 0.5 });
    assert.equal(cal.knob, 'every');
    const got = cal.samples.reduce((a, s) => a + s.sparsity, 0) / cal.samples.length;
    assert.ok(Math.abs(got - 0.5) <= 0.1, `mean sparsity ${got} at every = ${cal.search?.value}`);
    assert.equal(createCalibratedMethod(cal).planBlockMask(inputs[0].q, inputs[0].k, { causal: true }).stats.sparsity, cal.samples[0].sparsity);
  });

  it('is searched by the eval for a target sparsity', () => {
    const { q, k } = structuredQKV({ heads: 2, length: 512, headDim: 16, seed: 7 });
    const calls = [{ module: 'm', q, k }];
    const r = searchSetting('test_stripes', knob, 0.6, calls, 512, 10);
    assert.ok(Math.abs(r.plannedSparsity - 0.6) < 0.1, `got ${r.plannedSparsity} at ${JSON.stringify(r.settings)}`);
    assert.equal(plannedSparsity('test_stripes', r.settings, calls), r.plannedSparsity);
  });

  it('is in the bench menu (default variant in the long sweep, its smoke variant) and validates on the CPU target', async () => {
    const long = issue8Sweep({ lengths: [4096], inputs: ['structured'], kvHeads: [8] }).filter((c) => c.method === 'test_stripes');
    assert.deepEqual(long.map((c) => [c.settings, c.causal]), [[{}, true]]);
    const smoke = smokeSweep({ lengths: [100], kvHeads: [2], methods: ['dense', 'test_stripes'] });
    assert.deepEqual(smoke.map((c) => c.method), ['dense', 'test_stripes', 'dense']);
    const records = await runBench(cpuTarget, smoke.slice(0, 2), { timing: { warmup: 0, minIters: 1, maxIters: 1, targetMs: 0 } });
    const stripes = records[1];
    assert.equal(stripes.status, 'ok', stripes.reason);
    assert.ok(stripes.validation!.passed && stripes.density! < 1);
  });
});

describe('the one bisection', () => {
  it('finds targets whichever way the knob turns, and clamps at the ends', () => {
    const up: MethodKnob = { setting: 'x', min: 1, max: 1000, integer: true, sparserWhenHigher: true };
    const f = (x: number) => Math.floor((x / 1000) * 20) / 20; // sparsity grows with x, steps of 0.05
    assert.equal(bisectKnob(f, up, 1000, 0.5, 30).measured, 0.5);
    assert.equal(bisectKnob(f, up, 1000, 0.99, 30).value, 1000, 'unreachable sparsity → sparsest end');
    assert.equal(bisectKnob(() => 0.7, up, 1000, 0.2, 30).value, 1, 'always too sparse → densest end');
  });
});
