import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { computeScores, type Scores } from '../src/core/scores.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { HeadTensor } from '../src/core/tensor.js';
import { naiveAttention } from '../src/backends/cpu/naive-attention.js';
import { flashSkipAttention } from '../src/methods/flash-skip-softmax/flash-skip-cpu.js';
import { FlashSkipSoftmax, FlashSkipSoftmaxSequential } from '../src/methods/flash-skip-softmax/flash-skip-softmax.js';
import { createSparseMethod, getSparseMethod } from '../src/methods/index.js';
import { createModuleMethod, flashSkipSoftmaxConfig, loadSparseAttentionConfig, resolveModuleConfig } from '../src/config/index.js';
import { assertClose, assertTensorsClose, TOL } from './helpers/compare.js';

/**
 * The spec's full-matrix rule, written out literally as the oracle: pad, per-row block max,
 * cummax left to right, keep a tile iff some entry exceeds cummax + log(threshold); the first tile
 * of a row is kept. Padded rows are −∞ (ModelOpt pads with the dtype minimum, which would keep
 * every tile of a partial last query tile; see the method's notes). Returns kept [B·H, nQB, nKB].
 */
function specMask(scores: Scores, br: number, bc: number, threshold: number): Uint8Array {
  const { queryLength: Lq, keyLength: Lk } = scores;
  const nQB = Math.ceil(Lq / br);
  const nKB = Math.ceil(Lk / bc);
  const kept = new Uint8Array(scores.batch * scores.heads * nQB * nKB);
  const at = (bh: number, i: number, j: number) => (i < Lq && j < Lk ? scores.data[(bh * Lq + i) * Lk + j] : -Infinity);
  for (let bh = 0; bh < scores.batch * scores.heads; bh++)
    for (let qb = 0; qb < nQB; qb++)
      for (let r = qb * br; r < (qb + 1) * br; r++) {
        let cummax = -Infinity;
        let first = true;
        for (let kb = 0; kb < nKB; kb++) {
          let blockMax = -Infinity;
          for (let j = kb * bc; j < (kb + 1) * bc; j++) blockMax = Math.max(blockMax, at(bh, r, j));
          cummax = Math.max(cummax, blockMax);
          let keep = false;
          for (let j = kb * bc; j < (kb + 1) * bc; j++) if (at(bh, r, j) - cummax > Math.log(threshold)) keep = true;
          if (blockMax > -Infinity && first) keep = true;
          if (blockMax > -Infinity) first = false;
          if (keep) kept[(bh * nQB + qb) * nKB + kb] = 1;
        }
      }
  return kept;
}

const shapes = [
  { name: 'causal, odd length', H: 2, Hkv: 2, Lq: 75, Lk: 75, D: 16, causal: true, br: 4, bc: 8 },
  { name: 'GQA 4:1 non-causal', H: 4, Hkv: 1, Lq: 33, Lk: 61, D: 8, causal: false, br: 3, bc: 16 },
  { name: 'GQA 2:1 chunk (Lq < Lk) causal', H: 4, Hkv: 2, Lq: 21, Lk: 70, D: 16, causal: true, br: 8, bc: 8 },
  { name: 'decode (Lq = 1)', H: 2, Hkv: 1, Lq: 1, Lk: 77, D: 8, causal: true, br: 16, bc: 8 },
  { name: 'length 1', H: 1, Hkv: 1, Lq: 1, Lk: 1, D: 8, causal: true, br: 16, bc: 16 },
];

/** Random Q, K, V (batch 2, K in the other layout); with scale 2 the logits spread enough that 5–60% of tiles skip. */
function inputs(s: (typeof shapes)[number], seed: number) {
  const q = HeadTensor.randn({ batch: 2, heads: s.H, length: s.Lq, headDim: s.D }, seed);
  const k = HeadTensor.randn({ batch: 2, heads: s.Hkv, length: s.Lk, headDim: s.D }, seed + 1, { layout: 'BLHD' });
  const v = HeadTensor.randn({ batch: 2, heads: s.Hkv, length: s.Lk, headDim: s.D }, seed + 2);
  return { q, k, v };
}
const scale = 2;

describe('flash_skip_softmax mask', () => {
  it('golden vector: skips the tile under the running max, counts max rises', () => {
    // Lq 2, Lk 6, br = bc = 2, threshold e^-2. Tile 1 is below the max by > 2 on both rows;
    // tile 2 raises row 1's max, so it is kept although row 0 is 3 below.
    const data = Float32Array.from([0, 0, -2.5, -5, -3, -3, 0, -10, -10, -10, 5, 0]);
    const m = new FlashSkipSoftmax({ threshold: Math.exp(-2), br: 2, bc: 2, is_causal: false });
    const { mask, stats } = m.calculateSparsity({ batch: 1, heads: 1, queryLength: 2, keyLength: 6, data });
    assert.deepEqual([...mask], [1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1]);
    assert.equal(stats.totalBlocks, 3);
    assert.equal(stats.keptBlocks, 2);
    assert.equal(stats.extra!.sparse_blocks, 1);
    assert.equal(stats.extra!.sample_length, 6);
    assert.ok(Math.abs(stats.sparsity - 1 / 3) < 1e-12);
    assert.equal(stats.extra!.correction_factor, 0.5); // rises: tile 0 both rows, tile 2 row 1 → 3 of 6
    assert.equal(stats.phase, 'prefill');
  });

  for (const s of shapes) {
    it(`calculateSparsity = the spec's rule, and planBlockMask (Q, K tile-wise) = calculateSparsity, v1 = v2: ${s.name}`, () => {
      const { q, k } = inputs(s, 11);
      const scores = computeScores(q, k, { causal: s.causal, scale });
      for (const threshold of [0.3, 0.05, 1e-3]) {
        const settings = { threshold, br: s.br, bc: s.bc, is_causal: s.causal };
        const v1 = new FlashSkipSoftmax(settings);
        const v2 = new FlashSkipSoftmaxSequential(settings);
        const br = s.Lq === 1 ? 1 : s.br;
        const want = specMask(scores, br, s.bc, threshold);
        const r1 = v1.calculateSparsity(scores);
        const plan1 = v1.planBlockMask(q, k, { causal: s.causal, scale });
        const plan2 = v2.planBlockMask(q, k, { causal: s.causal, scale });
        assert.deepEqual([...plan1.mask.toDense()], [...want], `v1 plan vs spec rule at threshold ${threshold}`);
        assert.deepEqual([...plan2.mask.toDense()], [...want], `v2 plan vs spec rule at threshold ${threshold}`);
        for (let b = 0; b < q.batch; b++)
          for (let h = 0; h < q.heads; h++) {
            const expanded = plan1.mask.expand(b, h);
            const off = (b * q.heads + h) * s.Lq * s.Lk;
            assert.deepEqual([...expanded], [...r1.mask.subarray(off, off + s.Lq * s.Lk)], `element mask of head ${h}`);
          }
        assert.equal(plan1.stats.sparsity, r1.stats.sparsity);
        assert.equal(plan1.stats.extra!.total_blocks, plan1.stats.totalBlocks / (q.batch * q.heads), 'ModelOpt total_blocks is per head');
        assert.equal(plan1.stats.extra!.correction_factor, r1.stats.extra!.correction_factor);
        assert.equal(plan1.stats.phase, s.Lq === 1 ? 'decode' : 'prefill');
      }
    });

    it(`in-loop kernel = dense attention over its kept tiles, kept tiles = v2 plan: ${s.name}`, () => {
      const { q, k, v } = inputs(s, 5);
      const threshold = 0.05;
      const res = flashSkipAttention(q, k, v, { threshold, br: s.br, bc: s.bc, causal: s.causal, scale });
      const plan = new FlashSkipSoftmaxSequential({ threshold, br: s.br, bc: s.bc }).planBlockMask(q, k, { causal: s.causal, scale });
      assert.deepEqual([...res.kept.toDense()], [...plan.mask.toDense()]);
      assert.equal(res.visitedTiles - res.skippedTiles, plan.stats.keptBlocks);
      if (s.Lk > 1) assert.ok(res.skippedTiles > 0, 'the grid is meant to skip some tiles');
      const expanded = [0, 1].map((b) => Array.from({ length: q.heads }, (_, h) => res.kept.expand(b, h)));
      const want = naiveAttention(q, k, v, { causal: s.causal, scale, visible: (b, h, i, j) => expanded[b][h][i * s.Lk + j] === 1 });
      assertTensorsClose(res.output, want, TOL.f32, 'flash-skip kernel');
      // A threshold no tile can fall under keeps everything: dense attention.
      const dense = flashSkipAttention(q, k, v, { threshold: 1e-300, br: s.br, bc: s.bc, causal: s.causal, scale });
      assert.equal(dense.skippedTiles, 0);
      assertTensorsClose(dense.output, naiveAttention(q, k, v, { causal: s.causal, scale }), TOL.f32, 'nothing skipped = dense');
    });
  }

  it('skips real tiles on structured inputs, and the skipped mass is small', () => {
    // Scale 1 (not 1/√D): logits of LLM-like range; at 1/√D these inputs stay within a few units.
    const { q, k, v } = structuredQKV({ heads: 2, length: 512, headDim: 32, seed: 3 });
    const res = flashSkipAttention(q, k, v, { threshold: 1e-2, br: 32, bc: 32, causal: true, scale: 1 });
    assert.ok(res.skippedTiles > 0.2 * res.visitedTiles, `expected > 20% skipped, got ${res.skippedTiles}/${res.visitedTiles}`);
    const dense = naiveAttention(q, k, v, { causal: true, scale: 1 }).toFloat32Array();
    const out = res.output.toFloat32Array();
    let num = 0;
    let den = 0;
    for (let i = 0; i < out.length; i++) {
      num += (out[i] - dense[i]) ** 2;
      den += dense[i] ** 2;
    }
    assert.ok(Math.sqrt(num / den) < 0.05, `relative L2 error ${Math.sqrt(num / den)}`);
  });

  it('edge cases: ±1e4 logits stay finite and match, NaN input is named', () => {
    const q = HeadTensor.fromFunction({ batch: 1, heads: 1, length: 9, headDim: 4 }, (_b, _h, l, d) => (l % 2 ? 1 : -1) * (d + 1) * 50);
    const k = HeadTensor.fromFunction({ batch: 1, heads: 1, length: 9, headDim: 4 }, (_b, _h, l, d) => (l % 3 ? 1 : -1) * (d + 1) * 10);
    const v = HeadTensor.randn({ batch: 1, heads: 1, length: 9, headDim: 4 }, 3);
    const res = flashSkipAttention(q, k, v, { threshold: 1e-3, br: 4, bc: 2, causal: true, scale: 1 });
    assert.ok(res.output.toFloat32Array().every(Number.isFinite));
    assert.ok(res.skippedTiles > 0);
    const keep = res.kept.expand(0, 0);
    assertTensorsClose(res.output, naiveAttention(q, k, v, { causal: true, scale: 1, visible: (_b, _h, i, j) => keep[i * 9 + j] === 1 }), TOL.f32, '1e4 logits');
    (q.data as Float32Array)[6] = NaN;
    assert.throws(() => flashSkipAttention(q, k, v, { threshold: 1e-3 }), /q\[0, 0, 1, 2\].*must be a finite number, got NaN/);
  });

  it('GQA: reports per-head and group-consensus sparsity; group_consensus plans the OR of the group', () => {
    const { q, k } = structuredQKV({ heads: 4, kvHeads: 2, length: 200, headDim: 16, seed: 9 });
    const plan = new FlashSkipSoftmax({ threshold: 1e-2, br: 16, bc: 16 }).planBlockMask(q, k, { causal: true });
    const x = plan.stats.extra!;
    const perHead = [0, 1, 2, 3].map((h) => x[`head_${h}_sparsity`]);
    assertClose([perHead.reduce((a, b) => a + b) / 4], [plan.stats.sparsity], { atol: 1e-12, rtol: 0 }, 'mean of heads');
    assert.equal(x.group_size, 2);
    assert.ok(x.group_consensus_sparsity <= Math.max(...perHead) + 1e-12);
    const dense = plan.mask.toDense();
    const per = dense.length / 4;
    let consensusKept = 0;
    for (let g = 0; g < 2; g++) for (let t = 0; t < per; t++) consensusKept += dense[2 * g * per + t] | dense[(2 * g + 1) * per + t];
    const consensus = new FlashSkipSoftmax({ threshold: 1e-2, br: 16, bc: 16, group_consensus: true }).planBlockMask(q, k, { causal: true });
    assert.equal(consensus.mask.keptValidBlocks, 2 * consensusKept);
    const valid = plan.stats.totalBlocks / 4;
    assertClose([x.group_consensus_sparsity], [1 - consensusKept / (2 * valid)], { atol: 1e-12, rtol: 0 }, 'consensus');
  });

  it('decode uses br = 1 and the decode threshold', () => {
    const { q, k } = structuredQKV({ heads: 2, length: 300, queryLength: 1, headDim: 16, seed: 2 });
    const m = new FlashSkipSoftmax({ threshold: { prefill: 0.5, decode: 1e-6 }, bc: 16 });
    const plan = m.planBlockMask(q, k, {});
    assert.equal(plan.mask.blockRows, 1);
    assert.equal(plan.stats.phase, 'decode');
    assert.equal(plan.stats.extra!.threshold, 1e-6);
  });

  it('threshold info: static, and dynamic_calibrated from (a, b, target)', () => {
    assert.deepEqual(new FlashSkipSoftmax().getThresholdInfo(), { type: 'static', value: { prefill: 1e-3, decode: 1e-4 } });
    const m = new FlashSkipSoftmax({ calibration_params: { prefill: { a: 2, b: 3 } }, target_sparse_ratio: { prefill: 0.5 } });
    const info = m.getThresholdInfo();
    assert.equal(info.type, 'dynamic_calibrated');
    const sf = 2 * Math.exp(1.5);
    assert.equal(info.scaleFactor, sf);
    const phases = info.phases as Record<string, { example_thresholds: Record<string, number> }>;
    assert.equal(phases.prefill.example_thresholds['1024'], sf / 1024);
    assert.equal(phases.decode, undefined);
    assert.equal(m.thresholdFor('prefill', 4096), sf / 4096);
    assert.equal(m.thresholdFor('decode', 4096), 1e-4, 'an uncalibrated phase keeps its static threshold');
    // A ModelOpt config passes its calibration request through; its target is the run-time target.
    const fromConfig = new FlashSkipSoftmax({
      threshold: 1e-3, collect_stats: true, calibration: { target_sparse_ratio: { prefill: 0.7, decode: 0.3 }, samples: 4, max_seqlen: 1024, threshold_trials: [0.1, 0.2] },
      calibration_params: { prefill: { a: 2, b: 3 } },
    });
    assert.equal(fromConfig.thresholdFor('prefill', 1000), (2 * Math.exp(3 * 0.7)) / 1000);
    assert.throws(() => new FlashSkipSoftmax({ calibration: { threshold_trials: [0.1, 3] } }), /threshold_trials\[1\] must be in \(0, 1\], got 3/);
    assert.throws(() => new FlashSkipSoftmax({ calibration_params: { prefill: { a: -1, b: 3 } } }), /calibration_params\.prefill\.a must be a finite number > 0, got -1/);
  });

  it('registry: v2 is the latest; bad settings name the parameter, value and range', () => {
    assert.equal(getSparseMethod('flash_skip_softmax'), FlashSkipSoftmaxSequential);
    assert.equal(createSparseMethod('flash_skip_softmax', {}, 'v1').version, 'v1');
    assert.throws(() => new FlashSkipSoftmax({ threshold: 1.5 }), /flash_skip_softmax\.threshold must be in \(0, 1\], got 1\.5/);
    assert.throws(() => new FlashSkipSoftmax({ threshold: { prefill: 0 } }), /threshold\.prefill must be in \(0, 1\], got 0/);
    assert.throws(() => new FlashSkipSoftmax({ variant: 'fast' }), /variant must be "cummax" or "sequential", got "fast"/);
    assert.throws(() => new FlashSkipSoftmax({ tresh: 1 }), /setting "tresh" must be one of/);
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 4, headDim: 4 }, 1);
    assert.throws(() => flashSkipAttention(q, q, q, { threshold: 0 }), /threshold must be a finite number > 0, got 0/);
    // A calibrated threshold above 1 keeps only the first tile of each query tile.
    const big = flashSkipAttention(q, q, q, { threshold: 3, br: 2, bc: 2 });
    assert.deepEqual([...big.kept.toDense()], [1, 0, 1, 0]);
  });
});

describe('flash_skip_softmax from a ModelOpt config', () => {
  it("FlashSkipSoftmaxConfig's default builds the method with its phase thresholds and tiles", () => {
    const cfg = flashSkipSoftmaxConfig();
    const method = createModuleMethod(resolveModuleConfig(cfg, 'model.layers.0.self_attention'));
    assert.ok(method instanceof FlashSkipSoftmaxSequential);
    assert.deepEqual(method.settings.threshold, { prefill: 1e-3, decode: 1e-4 });
    assert.equal(method.br, 128);
    const calibrated = loadSparseAttentionConfig({ sparse_cfg: { '*attn*': { method: 'flash_skip_softmax', calibration: { target_sparse_ratio: { prefill: 0.6 } } }, default: { enable: false } } });
    const m = createModuleMethod(resolveModuleConfig(calibrated, 'm.attn')) as FlashSkipSoftmax;
    assert.equal(m.settings.target.prefill, 0.6);
    assert.deepEqual(m.getThresholdInfo().type, 'static', 'a calibration request alone is not a calibration');
  });
});
