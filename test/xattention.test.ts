import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { naiveBlockSparseAttention } from '../src/backends/cpu/naive-attention.js';
import { computeScores } from '../src/core/scores.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { HeadTensor } from '../src/core/tensor.js';
import { createSparseMethod } from '../src/methods/index.js';
import { estimateXAttention, estimateXAttentionChunk, selectBlocks } from '../src/methods/xattention/antidiagonal-estimate.js';
import { XAttentionMethod } from '../src/methods/xattention/xattention.js';
import { assertClose, assertTensorsClose, TOL } from './helpers/compare.js';

/** Block mask rows as strings ("1000 / 1100"), batch 0 head 0. */
function rows(dense: Uint8Array, nQB: number, nKB: number): string {
  return Array.from({ length: nQB }, (_, a) => Array.from(dense.subarray(a * nKB, (a + 1) * nKB)).join('')).join(' / ');
}

/**
 * The spec's steps 1-7 on the whole padded problem at once: the (Lq/S)×(Lk/S) matrix the method
 * must not build, and selection in OpenVINO's cumulative-sum form.
 */
function naiveEstimate(q: HeadTensor, k: HeadTensor, tau: number, B: number, S: number, causal: boolean) {
  const H = q.heads;
  const Lq = q.length;
  const Lk = k.length;
  const D = q.headDim;
  const nQB = Math.ceil(Lq / B);
  const nKB = Math.ceil(Lk / B);
  const R = B / S;
  const rowsS = nQB * R;
  const colsS = nKB * R;
  const qRows = Math.ceil(Lq / S);
  const kCols = Math.ceil(Lk / S);
  const off = kCols - qRows;
  const W = new Float64Array(q.batch * H * nQB * nKB);
  const dense = new Uint8Array(W.length);
  const pad = (t: HeadTensor, b: number, h: number, l: number, n: number) => (l < n ? Array.from(t.row(b, h, l)) : new Array<number>(D).fill(0));
  for (let b = 0; b < q.batch; b++)
    for (let h = 0; h < H; h++) {
      const kh = Math.floor(h / (H / k.heads));
      const Qs = Array.from({ length: rowsS }, (_, i) => Array.from({ length: S }, (_, s) => pad(q, b, h, i * S + S - 1 - s, Lq)).flat());
      const Ks = Array.from({ length: colsS }, (_, j) => Array.from({ length: S }, (_, s) => pad(k, b, kh, j * S + s, Lk)).flat());
      const A = Qs.map((qs) => Ks.map((ks) => qs.reduce((acc, x, d) => acc + x * ks[d], 0) / (Math.sqrt(D) * S)));
      for (let i = 0; i < qRows; i++) {
        const valid = (j: number) => j < kCols && (!causal || j <= i + off);
        const max = Math.max(...A[i].filter((_, j) => valid(j)));
        const e = A[i].map((x, j) => (valid(j) ? Math.exp(x - max) : 0));
        const sum = e.reduce((x, y) => x + y, 0);
        e.forEach((x, j) => (W[((b * H + h) * nQB + Math.floor(i / R)) * nKB + Math.floor(j / R)] += x / sum));
      }
      for (let a = 0; a < nQB; a++) {
        const base = ((b * H + h) * nQB + a) * nKB;
        const w = Array.from(W.subarray(base, base + nKB));
        const required = tau * w.reduce((x, y) => x + y, 0);
        const delta = Math.floor((Lk - Lq + Math.min((a + 1) * B, Lq) - 1) / B);
        const forced = !causal ? [] : delta === 0 ? [0] : [0, delta];
        const others = w.map((x, kb) => ({ x, kb })).filter(({ kb }) => (causal ? kb < delta : true) && !forced.includes(kb));
        others.sort((p, r) => r.x - p.x || p.kb - r.kb);
        const seq = [...(causal ? [{ x: forced.reduce((s, kb) => s + w[kb], 0), kbs: forced }] : []), ...others.map((o) => ({ x: o.x, kbs: [o.kb] }))];
        let before = 0;
        for (const item of seq) {
          if (before < required) for (const kb of item.kbs) dense[base + kb] = 1;
          before += item.x;
        }
        dense[base] = 1;
      }
    }
  return { W, dense, nQB, nKB };
}

describe('xattention golden masks (OpenVINO CPU unit test: Q = 1, K[t, c] = (t + c)/100)', () => {
  const golden = [
    { L: 8, d: 8, tau: 0.8, want: '10 / 11' },
    { L: 16, d: 32, tau: 0.3, want: '1000 / 1100 / 1010 / 1001' },
    { L: 16, d: 32, tau: 0.7, want: '1000 / 1100 / 1110 / 1011' },
  ];
  for (const g of golden) {
    it(`L=${g.L} d=${g.d} B=4 S=2 tau=${g.tau} → ${g.want}`, () => {
      const q = HeadTensor.fromFunction({ batch: 1, heads: 1, length: g.L, headDim: g.d }, () => 1);
      const k = HeadTensor.fromFunction({ batch: 1, heads: 1, length: g.L, headDim: g.d }, (_b, _h, t, c) => (t + c) / 100);
      const m = new XAttentionMethod({ threshold: g.tau, blockSize: 4, stride: 2 });
      const { mask } = m.planBlockMask(q, k, { causal: true });
      assert.equal(rows(mask.toDense(), mask.numQueryBlocks, mask.numKeyBlocks), g.want);
    });
  }
});

describe('xattention stripe estimation = naive full-matrix estimation', () => {
  const cases = [
    { name: 'causal MHA', H: 2, Hkv: 2, Lq: 100, Lk: 100, B: 16, S: 4, causal: true, tau: 0.8 },
    { name: 'causal GQA 2:1, q shorter than k, BLHD', H: 4, Hkv: 2, Lq: 37, Lk: 90, B: 8, S: 2, causal: true, tau: 0.9, layout: 'BLHD' as const },
    { name: 'non-causal GQA 2:1', H: 2, Hkv: 1, Lq: 50, Lk: 70, B: 16, S: 8, causal: false, tau: 0.8 },
    { name: 'lengths not multiples of S or B', H: 1, Hkv: 1, Lq: 45, Lk: 45, B: 12, S: 3, causal: true, tau: 0.7 },
    { name: 'Lk - Lq not a block multiple', H: 2, Hkv: 1, Lq: 10, Lk: 16, B: 8, S: 2, causal: true, tau: 0.5 },
    { name: 'decode', H: 2, Hkv: 1, Lq: 1, Lk: 33, B: 8, S: 4, causal: true, tau: 0.8 },
    { name: 'length 1 both', H: 1, Hkv: 1, Lq: 1, Lk: 1, B: 4, S: 2, causal: true, tau: 0.8 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { q, k } = structuredQKV({ batch: 2, heads: c.H, kvHeads: c.Hkv, length: c.Lk, queryLength: c.Lq, headDim: 8, seed: 3, layout: c.layout });
      const got = estimateXAttention(q, k, { threshold: c.tau, blockSize: c.B, stride: c.S }, { causal: c.causal });
      const want = naiveEstimate(q, k, c.tau, c.B, c.S, c.causal);
      assertClose(got.blockScores, want.W, TOL.f32, 'block sums W');
      assert.deepEqual(got.mask.toDense(), want.dense);
    });
  }

  it('keeps each query\'s own key when Lk - Lq is not a block multiple (where the spec\'s a + nKB - nQB would not)', () => {
    const { q, k } = structuredQKV({ heads: 1, length: 16, queryLength: 10, headDim: 8, seed: 5 });
    const { mask } = estimateXAttention(q, k, { threshold: 0.1, blockSize: 8, stride: 2 }, { causal: true });
    const token = mask.expand(0, 0);
    for (let i = 0; i < 10; i++) assert.equal(token[i * 16 + 6 + i], 1, `query ${i} must see key ${6 + i}`);
  });
});

describe('xattention selection (step 6/7) on given block sums', () => {
  it('causal: forced block 0 and diagonal, then descending mass; the crossing block is kept', () => {
    // forced 0 + 3 hold 0.6 < 0.8; block 1 (0.3) crosses to 0.9 and is kept; block 4 is right of the diagonal.
    assert.deepEqual(selectBlocks([0.1, 0.3, 0.05, 0.5, 0.05], 0.8, 3), [0, 1, 3]);
    assert.deepEqual(selectBlocks([0.1, 0.3, 0.05, 0.5, 0.05], 0.6, 3), [0, 3]);
    assert.deepEqual(selectBlocks([0.1, 0.3, 0.05, 0.5, 0.9], 1, 3), [0, 1, 2, 3]);
    assert.deepEqual(selectBlocks([0.7, 0.3], 0.9, 0), [0]);
  });
  it('non-causal: mass alone, plus block 0 as the reference always marks it', () => {
    assert.deepEqual(selectBlocks([0.01, 0.5, 0.49], 0.5, null), [0, 1]);
    assert.deepEqual(selectBlocks([0.01, 0.5, 0.49], 0.6, null), [0, 1, 2]);
    assert.deepEqual(selectBlocks([0.2, 0.1, 0.7], 0.7, null), [0, 2]);
  });
});

describe('xattention invariants', () => {
  const { q, k } = structuredQKV({ heads: 2, kvHeads: 1, length: 256, headDim: 16, seed: 7 });
  const taus = [0.5, 0.8, 0.9, 0.95, 1];
  const plans = taus.map((tau) => new XAttentionMethod({ threshold: tau, blockSize: 16, stride: 4 }).planBlockMask(q, k, { causal: true }));

  it('block 0 and the diagonal are kept, nothing above the diagonal, kept mass >= tau · total and minimal', () => {
    taus.forEach((tau, t) => {
      const { mask, blockScores } = plans[t];
      const nKB = mask.numKeyBlocks;
      for (let h = 0; h < 2; h++)
        for (let a = 0; a < mask.numQueryBlocks; a++) {
          const kept = Array.from(mask.keptBlocks(0, h, a));
          const w = blockScores!.subarray((h * mask.numQueryBlocks + a) * nKB, (h * mask.numQueryBlocks + a + 1) * nKB);
          assert.ok(kept.includes(0) && kept.includes(a), `tau ${tau} h ${h} row ${a}: ${kept}`);
          assert.ok(kept.every((kb) => kb <= a), `tau ${tau} row ${a} keeps a block above the diagonal: ${kept}`);
          const total = w.reduce((x, y) => x + y, 0);
          const keptMass = kept.reduce((s, kb) => s + w[kb], 0);
          assert.ok(keptMass >= tau * total - 1e-5 * total, `tau ${tau} row ${a}: kept ${keptMass} < ${tau} · ${total}`);
          const optional = kept.filter((kb) => kb !== 0 && kb !== a);
          if (optional.length > 0) {
            const smallest = Math.min(...optional.map((kb) => w[kb]));
            assert.ok(keptMass - smallest < tau * total + 1e-5 * total, `tau ${tau} row ${a}: not minimal`);
          }
        }
    });
  });

  it('a larger tau keeps a superset, and the smallest tau is really sparse', () => {
    for (let t = 1; t < taus.length; t++) {
      const [lo, hi] = [plans[t - 1].mask.toDense(), plans[t].mask.toDense()];
      for (let i = 0; i < lo.length; i++) assert.ok(!lo[i] || hi[i], `tau ${taus[t - 1]} keeps block ${i} that tau ${taus[t]} drops`);
    }
    assert.ok(plans[0].stats.sparsity > 0.3, `sparsity at tau 0.5: ${plans[0].stats.sparsity}`);
    assert.ok(plans[0].stats.sparsity > plans[taus.length - 1].stats.sparsity);
  });
});

describe('xattention method contract', () => {
  for (const causal of [true, false]) {
    it(`calculateSparsity(computeScores(q, k)) = planBlockMask(q, k), ${causal ? 'causal, q shorter than k' : 'non-causal'}`, () => {
      const { q, k } = structuredQKV({ batch: 2, heads: 2, kvHeads: 1, length: 96, queryLength: 70, headDim: 8, seed: 9 });
      const m = new XAttentionMethod({ threshold: 0.85, blockSize: 16, stride: 4, causal });
      const { mask, stats } = m.calculateSparsity(computeScores(q, k));
      const plan = m.planBlockMask(q, k, { causal });
      assert.ok(plan.stats.sparsity > 0, 'the comparison should involve dropped blocks');
      for (let b = 0; b < 2; b++)
        for (let h = 0; h < 2; h++) {
          const at = (b * 2 + h) * 70 * 96;
          assert.deepEqual(mask.subarray(at, at + 70 * 96), plan.mask.expand(b, h), `b ${b} h ${h}`);
        }
      assert.equal(stats.keptBlocks, plan.stats.keptBlocks);
    });
  }

  it('the chunk estimate equals the matching rows of the whole-prompt estimate (block-aligned chunk)', () => {
    const { q, k } = structuredQKV({ heads: 2, kvHeads: 1, length: 128, headDim: 8, seed: 11 });
    const params = { threshold: 0.8, blockSize: 16, stride: 4 };
    const whole = estimateXAttention(q, k, params, { causal: true });
    const chunk = estimateXAttentionChunk(q.sliceLength(80, 128), k, params);
    assert.equal(chunk.mask.queryLength, 48);
    assert.equal(chunk.mask.keyLength, 128);
    for (let h = 0; h < 2; h++)
      for (let a = 0; a < 3; a++) {
        assert.deepEqual(Array.from(chunk.mask.keptBlocks(0, h, a)), Array.from(whole.mask.keptBlocks(0, h, a + 5)), `h ${h} chunk block ${a}`);
        const c = chunk.blockScores.subarray((h * 3 + a) * 8, (h * 3 + a + 1) * 8);
        const w = whole.blockScores.subarray((h * 8 + a + 5) * 8, (h * 8 + a + 6) * 8);
        assertClose(c, w, TOL.f32, `W h ${h} chunk block ${a}`);
      }
  });

  it('runs through sparseAttention by name; output = dense attention with the expanded mask', async () => {
    const { q, k, v } = structuredQKV({ heads: 2, kvHeads: 1, length: 80, headDim: 8, seed: 13 });
    const settings = { threshold: 0.8, blockSize: 16, stride: 4 };
    const { output, plan } = await sparseAttention(q, k, v, { method: 'xattention', settings, causal: true });
    assert.equal(plan.blockScores?.length, 2 * 5 * 5);
    assertTensorsClose(output, naiveBlockSparseAttention(q, k, v, plan.mask, { causal: true }), TOL.f32, 'xattention output');
  });

  it('dense switch keeps every valid block; settings are validated', () => {
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 40, headDim: 4 }, 1);
    const plan = createSparseMethod('xattention', { dense: true, blockSize: 8 }).planBlockMask(q, q, { causal: true });
    assert.equal(plan.stats.sparsity, 0);
    assert.equal(plan.blockScores, undefined);
    assert.deepEqual(new XAttentionMethod().settings, { threshold: 0.8, blockSize: 64, stride: 8, dense: false, causal: true });
    assert.deepEqual(new XAttentionMethod({ dense: true }).getThresholdInfo(), { type: 'none' });
    assert.deepEqual(new XAttentionMethod().getThresholdInfo(), { type: 'dynamic', value: 0.8, blockSize: 64, stride: 8 });
    assert.throws(() => new XAttentionMethod({ threshold: 0 }), /xattention\.threshold must be in \(0, 1\] \(use dense: true for dense attention\), got 0/);
    assert.throws(() => new XAttentionMethod({ threshold: 1.5 }), /threshold must be in \(0, 1\].*got 1\.5/);
    assert.throws(() => new XAttentionMethod({ blockSize: 20, stride: 8 }), /xattention\.blockSize must be a positive integer multiple of stride \(8\), got 20/);
    assert.throws(() => new XAttentionMethod({ stride: 0 }), /xattention\.stride must be an integer >= 1, got 0/);
    assert.throws(() => new XAttentionMethod({ dense: 1 }), /xattention\.dense must be a boolean, got 1/);
    assert.throws(() => new XAttentionMethod({ tau: 0.5 }), /xattention setting must be one of threshold/);
  });
});
