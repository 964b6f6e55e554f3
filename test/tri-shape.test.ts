import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { naiveAttention, naiveBlockSparseAttention } from '../src/backends/cpu/naive-attention.js';
import { computeScores } from '../src/core/scores.js';
import { HeadTensor } from '../src/core/tensor.js';
import { tokenRuleVisible } from '../src/core/token-rule.js';
import { createSparseMethod } from '../src/methods/index.js';
import { triShapeDenseRows, TriShapeMethod, triShapeBlockMask } from '../src/methods/tri-shape/tri-shape.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';

/** Spec trishape.md A, written straight from its text: [Lq, Lk], 1 = visible. */
function specTokenMask(Lq: number, Lk: number, sink: number, window: number, nLast: number): Uint8Array {
  const out = new Uint8Array(Lq * Lk);
  const off = Lk - Lq;
  const dense = Lq === 1 || Lk <= window;
  const last = Math.min(nLast, Lq - 1);
  for (let i = 0; i < Lq; i++) {
    const p = off + i;
    for (let j = 0; j <= p; j++) {
      const aShape = j < sink || (p - window < j && j <= p);
      out[i * Lk + j] = dense || i >= Lq - last || aShape ? 1 : 0;
    }
  }
  return out;
}

interface Case { name: string; H: number; Hkv: number; Lq: number; Lk: number; br: number; bc: number; sink: number; window: number; nLast: number; D: number }

const cases: Case[] = [
  { name: 'odd lengths, blocks 8×16', H: 2, Hkv: 2, Lq: 37, Lk: 37, br: 8, bc: 16, sink: 3, window: 5, nLast: 4, D: 8 },
  { name: 'GQA 2:1, q shorter than k', H: 4, Hkv: 2, Lq: 10, Lk: 45, br: 4, bc: 8, sink: 2, window: 7, nLast: 3, D: 8 },
  { name: 'GQA 4:1, window not a block multiple', H: 4, Hkv: 1, Lq: 75, Lk: 75, br: 16, bc: 16, sink: 5, window: 21, nLast: 9, D: 16 },
  { name: 'n_last clamped to Lq - 1', H: 1, Hkv: 1, Lq: 6, Lk: 50, br: 4, bc: 4, sink: 2, window: 3, nLast: 100, D: 8 },
  { name: 'no sink, no dense tail', H: 2, Hkv: 1, Lq: 33, Lk: 40, br: 5, bc: 7, sink: 0, window: 4, nLast: 0, D: 8 },
  { name: 'decode (Lq = 1) is dense', H: 2, Hkv: 1, Lq: 1, Lk: 29, br: 8, bc: 8, sink: 2, window: 4, nLast: 0, D: 8 },
  { name: 'length 1 both', H: 1, Hkv: 1, Lq: 1, Lk: 1, br: 8, bc: 8, sink: 0, window: 1, nLast: 0, D: 4 },
  { name: 'Lk <= localWindow is dense', H: 1, Hkv: 1, Lq: 20, Lk: 24, br: 4, bc: 4, sink: 1, window: 24, nLast: 0, D: 4 },
  { name: 'larger, 32×32 blocks', H: 2, Hkv: 1, Lq: 200, Lk: 230, br: 32, bc: 32, sink: 16, window: 48, nLast: 20, D: 8 },
];

function settingsOf(c: Case) {
  return { sinkTokens: c.sink, localWindow: c.window, lastDenseQueries: c.nLast, br: c.br, bc: c.bc };
}

describe('tri_shape block mask = token pattern of the spec', () => {
  for (const c of cases) {
    it(`expand() equals the spec token mask and kept blocks are exactly those it touches: ${c.name}`, () => {
      const mask = triShapeBlockMask({ batch: 2, heads: c.H, queryLength: c.Lq, keyLength: c.Lk, blockRows: c.br, blockCols: c.bc }, settingsOf(c));
      const want = specTokenMask(c.Lq, c.Lk, c.sink, c.window, c.nLast);
      for (let b = 0; b < 2; b++)
        for (let h = 0; h < c.H; h++) {
          const got = mask.expand(b, h);
          for (let t = 0; t < want.length; t++) {
            if (got[t] !== want[t]) assert.fail(`(b ${b}, h ${h}) token (${Math.floor(t / c.Lk)}, ${t % c.Lk}): block mask ${got[t]}, spec ${want[t]}`);
          }
          for (let qb = 0; qb < mask.numQueryBlocks; qb++)
            for (let kb = 0; kb < mask.numKeyBlocks; kb++) {
              let touches = false;
              for (let i = qb * c.br; i < Math.min((qb + 1) * c.br, c.Lq); i++)
                for (let j = kb * c.bc; j < Math.min((kb + 1) * c.bc, c.Lk); j++) touches ||= want[i * c.Lk + j] === 1;
              assert.equal(mask.isKept(b, h, qb, kb), touches, `block (${qb}, ${kb}) kept ${mask.isKept(b, h, qb, kb)}, touches pattern ${touches}`);
            }
        }
    });

    it(`flash with the block mask = naive with the spec token mask: ${c.name}`, () => {
      const q = HeadTensor.randn({ batch: 2, heads: c.H, length: c.Lq, headDim: c.D }, 11);
      const k = HeadTensor.randn({ batch: 2, heads: c.Hkv, length: c.Lk, headDim: c.D }, 12, { layout: 'BLHD' });
      const v = HeadTensor.randn({ batch: 2, heads: c.Hkv, length: c.Lk, headDim: c.D }, 13);
      const want = specTokenMask(c.Lq, c.Lk, c.sink, c.window, c.nLast);
      const expected = naiveAttention(q, k, v, { causal: true, visible: (_b, _h, i, j) => want[i * c.Lk + j] === 1 });
      const plan = new TriShapeMethod(settingsOf(c)).planBlockMask(q, k, { causal: true });
      assertTensorsClose(flashAttention(q, k, v, { causal: true, mask: plan.mask }), expected, TOL.f32, 'flash tri-shape');
      assertTensorsClose(naiveBlockSparseAttention(q, k, v, plan.mask, { causal: true }), expected, TOL.f32, 'naive block-sparse tri-shape');
    });
  }

  it('is really sparse on a long call (and the stats say so)', () => {
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 512, headDim: 4 }, 1);
    const plan = new TriShapeMethod({ sinkTokens: 32, localWindow: 64, lastDenseQueries: 32, br: 32, bc: 32 }).planBlockMask(q, q, { causal: true });
    // 16 query blocks, 136 causal blocks. Rows 0..2 keep blocks 0..qb (1 + 2 + 3); rows 3..14 keep
    // the sink block and the 3 blocks the 64-token window spans (12 · 4); row 15 is dense (16).
    assert.equal(plan.stats.totalBlocks, 136);
    assert.equal(plan.stats.keptBlocks, 1 + 2 + 3 + 12 * 4 + 16);
    assert.equal(plan.stats.keptBlocks, plan.mask.keptValidBlocks);
    assert.equal(plan.mask.tokenRule?.kind, 'trishape');
  });
});

describe('tri_shape token rule (core) follows the spec', () => {
  const rule = { kind: 'trishape', sinkTokens: 1, localWindow: 2, lastDenseQueries: 100 } as const;
  it('clamps lastDenseQueries to Lq - 1: the first row stays sparse', () => {
    // Lq 5, Lk 10: row 0 sits at position 5, sees sink 0 and window {4, 5}, not key 2.
    assert.equal(tokenRuleVisible(rule, 0, 2, 5, 5), false);
    assert.equal(tokenRuleVisible(rule, 0, 0, 5, 5), true);
    assert.equal(tokenRuleVisible(rule, 0, 4, 5, 5), true);
    assert.equal(tokenRuleVisible(rule, 1, 2, 5, 5), true);
  });
  it('is dense for decode and when every key is inside the window', () => {
    assert.equal(tokenRuleVisible({ ...rule, lastDenseQueries: 0 }, 0, 3, 1, 9), true);
    assert.equal(tokenRuleVisible({ ...rule, lastDenseQueries: 0, localWindow: 10 }, 3, 0, 8, 2), true);
    assert.equal(tokenRuleVisible({ ...rule, lastDenseQueries: 0, sinkTokens: 0, localWindow: 9 }, 7, 0, 8, 2), false);
  });
});

describe('tri_shape over a chunked prompt (promptRowsAfter)', () => {
  it('chunks plan what one call over the prompt does: outputs equal its rows, dense tail included', async () => {
    const N = 40;
    const settings = { sinkTokens: 2, localWindow: 6, lastDenseQueries: 12, br: 4, bc: 4 };
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: N, headDim: 8 }, 11);
    const k = HeadTensor.randn({ batch: 1, heads: 1, length: N, headDim: 8 }, 12);
    const v = HeadTensor.randn({ batch: 1, heads: 1, length: N, headDim: 8 }, 13);
    const whole = (await sparseAttention(q, k, v, { method: 'tri_shape', settings, causal: true })).output.toFloat32Array();
    // [0, 16): no dense rows; [16, 32): 4 of them; [32, 40): wholly inside the tail, planned dense.
    for (const [s, e, dense] of [[0, 16, 0], [16, 32, 4], [32, 40, 8]] as const) {
      const r = await sparseAttention(q.sliceLength(s, e), k.sliceLength(0, e), v.sliceLength(0, e), { method: 'tri_shape', settings, causal: true, promptRowsAfter: N - e });
      const got = r.output.toFloat32Array();
      for (let h = 0; h < 2; h++) {
        for (let i = 0; i < e - s; i++) {
          for (let d = 0; d < 8; d++) {
            const w = whole[(h * N + s + i) * 8 + d];
            assert.ok(Math.abs(got[(h * (e - s) + i) * 8 + d] - w) < 1e-5, `chunk [${s}, ${e}) head ${h} row ${i}`);
          }
        }
      }
      const rule = r.plan.mask.tokenRuleFor(0);
      assert.equal(dense === e - s ? rule : rule?.kind === 'trishape' && rule.lastDenseQueries, dense === e - s ? undefined : dense, `chunk [${s}, ${e}): dense rows`);
    }
    await assert.rejects(sparseAttention(q, k, v, { method: 'tri_shape', causal: true, promptRowsAfter: 1.5 }), /promptRowsAfter must be an integer/);
  });

  it('dense rows of a call: whole prompt, chunk, and a calibration window of a chunk', () => {
    // A whole prompt of 10: min(50, N - 1) = 9 rows, its first row stays sparse.
    assert.equal(triShapeDenseRows({ lastDenseQueries: 50 }, 10, 10, { promptRowsAfter: 0 }), 9);
    // A window of 8 rows ending at key 30, 4 rows of its chunk after it, 2 prompt tokens after the chunk: 12 - 6.
    assert.equal(triShapeDenseRows({ lastDenseQueries: 12 }, 8, 30, { rowsAfter: 4, promptRowsAfter: 2 }), 6);
    // The same in a prompt of 15: its last 14 rows are dense, the window's 8 all of them.
    assert.equal(triShapeDenseRows({ lastDenseQueries: 50 }, 8, 10, { rowsAfter: 2, promptRowsAfter: 3 }), 'dense');
    // Without promptRowsAfter a window keeps the rule of calibration windows: its own count, clamped later.
    assert.equal(triShapeDenseRows({ lastDenseQueries: 12 }, 8, 30, { rowsAfter: 4 }), 8);
  });
});

describe('tri_shape method contract', () => {
  it('calculateSparsity on causal scores gives the spec mask; applySparsity masks the rest', () => {
    const Lq = 20;
    const Lk = 27;
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: Lq, headDim: 4 }, 3);
    const k = HeadTensor.randn({ batch: 1, heads: 1, length: Lk, headDim: 4 }, 4);
    const m = createSparseMethod('tri_shape', { sinkTokens: 2, localWindow: 5, lastDenseQueries: 3, br: 4, bc: 4 });
    const scores = computeScores(q, k, { causal: true });
    const { mask, stats } = m.calculateSparsity(scores);
    const want = specTokenMask(Lq, Lk, 2, 5, 3);
    for (let h = 0; h < 2; h++) assert.deepEqual(mask.subarray(h * Lq * Lk, (h + 1) * Lq * Lk), want);
    assert.ok(stats.sparsity > 0 && stats.sparsity < 1);
    const masked = m.applySparsity(scores);
    for (let t = 0; t < Lq * Lk; t++) assert.equal(masked.data[t] === -Infinity, want[t] === 0, `entry ${t}`);
    assert.deepEqual(m.getThresholdInfo(), { type: 'static', sinkTokens: 2, localWindow: 5, lastDenseQueries: 3 });
  });

  it('defaults follow the spec', () => {
    const m = new TriShapeMethod();
    assert.deepEqual(m.settings, { sinkTokens: 128, localWindow: 3968, lastDenseQueries: 100, br: 128, bc: 128 });
    assert.equal(m.name, 'tri_shape');
    assert.equal(m.version, 'v1');
  });

  it('rejects non-causal calls and bad settings with clear errors', () => {
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 8, headDim: 4 }, 1);
    assert.throws(() => new TriShapeMethod().planBlockMask(q, q, { causal: false }), /causal must be true: tri-shape is defined for causal attention only, got false/);
    assert.throws(() => new TriShapeMethod({ sinkTokens: -1 }), /tri_shape\.sinkTokens must be an integer >= 0, got -1/);
    assert.throws(() => new TriShapeMethod({ localWindow: 0 }), /tri_shape\.localWindow must be an integer >= 1, got 0/);
    assert.throws(() => new TriShapeMethod({ lastDenseQueries: 1.5 }), /lastDenseQueries must be an integer >= 0, got 1.5/);
    assert.throws(() => new TriShapeMethod({ br: 0 }), /tri_shape\.br must be an integer >= 1, got 0/);
    assert.throws(() => new TriShapeMethod({ window: 3 }), /tri_shape setting must be one of sinkTokens/);
  });

  it('runs through sparseAttention by name', async () => {
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: 40, headDim: 8 }, 5);
    const k = HeadTensor.randn({ batch: 1, heads: 1, length: 40, headDim: 8 }, 6);
    const v = HeadTensor.randn({ batch: 1, heads: 1, length: 40, headDim: 8 }, 7);
    const settings = { sinkTokens: 4, localWindow: 8, lastDenseQueries: 5, br: 8, bc: 8 };
    const { output, plan } = await sparseAttention(q, k, v, { method: 'tri_shape', settings, causal: true });
    const want = specTokenMask(40, 40, 4, 8, 5);
    assertTensorsClose(output, naiveAttention(q, k, v, { causal: true, visible: (_b, _h, i, j) => want[i * 40 + j] === 1 }), TOL.f32, 'api');
    assert.ok(plan.stats.sparsity > 0);
  });
});
