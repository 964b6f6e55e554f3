/**
 * flash-skip-softmax in the WebGPU flash loop = the CPU sequential (v2) in-loop kernel at the same
 * br × bc tiling: the same kept tiles (block lists, exactly), the same visited / skipped / raised
 * counters, and outputs within tolerance. Inputs are checked to have no decision at a float tie
 * (the CPU's kept set is unchanged when log(threshold) moves by ±1e-3).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { webgpuBackend } from '../src/backends/webgpu/index.js';
import { createSparseMethod } from '../src/methods/index.js';
import { flashSkipAttention } from '../src/methods/flash-skip-softmax/flash-skip-cpu.js';
import { flashSkipAttentionProgram, flashSkipAttentionWebGpu, type FlashSkipAttentionSpec } from '../src/backends/webgpu/methods/flash-skip-softmax/webgpu-flash-skip-attention.js';
import { compileProgram } from '../src/backends/webgpu/runtime/program.js';
import type { BlockMask } from '../src/core/block-mask.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { type DType, HeadTensor } from '../src/core/tensor.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();

interface Case { D: number; H: number; Hkv: number; batch: number; Lq: number; Lk: number; br: number; bc: number; causal: boolean; dtype: DType; threshold: number; scale?: number; random?: boolean }

const CASES: Case[] = [
  { D: 64, H: 2, Hkv: 2, batch: 1, Lq: 77, Lk: 77, br: 16, bc: 16, causal: true, dtype: 'f32', threshold: 0.1, scale: 1 },
  { D: 64, H: 4, Hkv: 2, batch: 2, Lq: 45, Lk: 110, br: 32, bc: 16, causal: true, dtype: 'f16', threshold: 0.3, scale: 0.5 },
  { D: 32, H: 4, Hkv: 1, batch: 1, Lq: 100, Lk: 100, br: 100, bc: 24, causal: false, dtype: 'f32', threshold: 0.01 },
  { D: 64, H: 4, Hkv: 2, batch: 1, Lq: 1, Lk: 121, br: 16, bc: 16, causal: true, dtype: 'f32', threshold: 0.1, scale: 0.5 },
  { D: 128, H: 2, Hkv: 1, batch: 1, Lq: 60, Lk: 60, br: 8, bc: 8, causal: true, dtype: 'f32', threshold: 0.2, scale: 0.5 },
  { D: 64, H: 2, Hkv: 1, batch: 1, Lq: 50, Lk: 70, br: 16, bc: 12, causal: false, dtype: 'f32', threshold: 0.3, random: true },
  { D: 32, H: 2, Hkv: 2, batch: 1, Lq: 70, Lk: 30, br: 8, bc: 4, causal: false, dtype: 'f32', threshold: 0.5, random: true },  // more queries than keys
];

function inputs(c: Case, n: number): { q: HeadTensor; k: HeadTensor; v: HeadTensor } {
  const layout = n % 2 ? 'BLHD' : 'BHLD';
  const t = c.random
    ? {
      q: HeadTensor.randn({ batch: c.batch, heads: c.H, length: c.Lq, headDim: c.D }, 10 * n, { layout, std: 2 }),
      k: HeadTensor.randn({ batch: c.batch, heads: c.Hkv, length: c.Lk, headDim: c.D }, 10 * n + 1),
      v: HeadTensor.randn({ batch: c.batch, heads: c.Hkv, length: c.Lk, headDim: c.D }, 10 * n + 2, { layout }),
    }
    : structuredQKV({ batch: c.batch, heads: c.H, kvHeads: c.Hkv, length: c.Lk, queryLength: c.Lq, headDim: c.D, seed: 7 + n, layout });
  return { q: t.q.toDType(c.dtype), k: t.k.toDType(c.dtype), v: t.v.toDType(c.dtype) };
}

function keptLists(m: BlockMask): { rowPtr: number[]; colIdx: number[] } {
  return { rowPtr: [...m.rowPtr], colIdx: [...m.colIdx] };
}

let skippedOverall = 0;

describe('WebGPU flash-skip-softmax in the loop = CPU sequential kernel', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  CASES.forEach((c, n) => {
    const name = `D=${c.D} H=${c.H}/${c.Hkv} B=${c.batch} Lq=${c.Lq} Lk=${c.Lk} tiles ${c.br}×${c.bc} ${c.causal ? 'causal' : 'non-causal'} ${c.dtype} t=${c.threshold}${c.scale ? ` scale ${c.scale}` : ''}`;
    it(name, async () => {
      const { q, k, v } = inputs(c, n);
      const opts = { causal: c.causal, scale: c.scale, threshold: c.threshold, br: c.br, bc: c.bc };
      // The portable kernel itself (the default 'auto' takes tensor cores where a shape fits them).
      const portable = { ...opts, kernel: 'portable' as const };
      const cpu = flashSkipAttention(q, k, v, opts);
      for (const f of [Math.exp(-1e-3), Math.exp(1e-3)]) {
        const moved = flashSkipAttention(q, k, v, { ...opts, threshold: Math.min(1, c.threshold * f) });
        assert.deepEqual(keptLists(moved.kept), keptLists(cpu.kept), `${name}: a decision sits at a float tie; pick other inputs`);
      }
      const got = await flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, portable);
      assert.deepEqual(keptLists(got.kept), keptLists(cpu.kept), `${name}: kept tiles`);
      assert.deepEqual([got.visitedTiles, got.skippedTiles], [cpu.visitedTiles, cpu.skippedTiles], `${name}: visited, skipped`);
      assertTensorsClose(got.output.toDType('f32'), cpu.output, TOL[c.dtype], name);
      skippedOverall += got.skippedTiles;
      if (process.env.SPARSE_ATTN_TEST_VERBOSE) console.log(`${name}: visited ${got.visitedTiles}, skipped ${got.skippedTiles}`);
    });
  });

  it('the cases skip some tiles (the decision is exercised, not just "keep all")', () => {
    assert.ok(skippedOverall > 0, `skipped ${skippedOverall} tiles over all cases`);
  });

  it('a threshold nothing falls below keeps every tile and equals dense flash attention', async () => {
    const { q, k, v } = structuredQKV({ heads: 2, kvHeads: 1, length: 53, headDim: 64, seed: 3 });
    const got = await flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, { causal: true, threshold: 1e-30, br: 16, bc: 16, kernel: 'portable' });
    assert.equal(got.skippedTiles, 0);
    assert.equal(got.kept.keptValidBlocks, got.kept.validBlocks);
    assertTensorsClose(got.output, flashAttention(q, k, v, { causal: true }), TOL.f32, 'threshold 1e-30');
  });

  it('the raised-row counter equals the CPU decider (ModelOpt correction_factor numerator)', async () => {
    const { q, k, v } = structuredQKV({ heads: 2, length: 64, headDim: 64, seed: 11 });
    const { FlashSkipSoftmaxSequential } = await import('../src/methods/flash-skip-softmax/flash-skip-softmax.js');
    const m = new FlashSkipSoftmaxSequential({ threshold: 0.1, br: 16, bc: 16 });
    const plan = m.planBlockMask(q, k, { causal: true, scale: 1 });
    const got = await flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, { causal: true, scale: 1, threshold: 0.1, br: 16, bc: 16, kernel: 'portable' });
    assert.ok(got.skippedTiles > 0 && got.raisedRows > 0);
    const nKB = Math.ceil(64 / 16);
    assert.deepEqual(keptLists(got.kept), keptLists(plan.mask));
    assert.equal(got.raisedRows / (2 * 64 * nKB), plan.stats.extra?.correction_factor);
  });

  it('sparseAttention on the WebGPU backend runs flash_skip_softmax v1 and v2 in the loop (plan = kept tiles)', async () => {
    const { q, k, v } = structuredQKV({ heads: 4, kvHeads: 2, length: 70, headDim: 64, seed: 5 });
    const settings = { threshold: 0.1, br: 16, bc: 16 };
    for (const version of ['v1', 'v2']) {
      const method = createSparseMethod("flash_skip_softmax", settings, version);
      const got = await sparseAttention(q, k, v, { method, causal: true, scale: 1, backend: webgpuBackend });
      const cpuPlan = method.planBlockMask(q, k, { causal: true, scale: 1 });
      const cpu = flashSkipAttention(q, k, v, { causal: true, scale: 1, ...settings });
      assert.deepEqual(keptLists(got.plan.mask), keptLists(cpuPlan.mask), `${version}: plan`);
      assert.equal(got.plan.stats.sparsity, cpuPlan.stats.sparsity);
      assert.equal(got.plan.stats.extra?.correction_factor, cpuPlan.stats.extra?.correction_factor);
      assertTensorsClose(got.output, cpu.output, TOL.f32, version);
    }
    // A calibrated (dynamic) threshold a·exp(b·target) / Lk reaches the kernel too.
    const calibrated = createSparseMethod('flash_skip_softmax', { br: 16, bc: 16, calibration_params: { prefill: { a: 7, b: 1 } }, target_sparse_ratio: { prefill: 0.5 } }, 'v2');
    const got = await sparseAttention(q, k, v, { method: calibrated, causal: true, scale: 1, backend: webgpuBackend });
    const cpuPlan = calibrated.planBlockMask(q, k, { causal: true, scale: 1 });
    assert.deepEqual(keptLists(got.plan.mask), keptLists(cpuPlan.mask), 'calibrated plan');
    assert.equal(got.plan.stats.extra?.threshold, (7 * Math.exp(0.5)) / 70);
  });

  it('edge cases: ±1e4 logits keep the CPU decisions and stay finite; NaN input is named', async () => {
    const { q, k, v } = structuredQKV({ heads: 2, length: 40, headDim: 64, seed: 13 });
    const opts = { causal: true, scale: 300, threshold: 0.1, br: 16, bc: 8 };  // logits of order ±1e4
    const cpu = flashSkipAttention(q, k, v, opts);
    const got = await flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, opts);
    assert.deepEqual(keptLists(got.kept), keptLists(cpu.kept));
    assert.ok(got.output.toFloat32Array().every(Number.isFinite));
    assertTensorsClose(got.output, cpu.output, TOL.f32, '±1e4 logits');
    const bad = q.toFloat32Array().slice();
    bad[70] = NaN;
    const qNaN = new HeadTensor(q.shape, bad, 'BHLD');
    await assert.rejects(flashSkipAttentionWebGpu(gpu.ctx!, qNaN, k, v, opts), /q\[0, 0, 1, 6\] \(layout BHLD\) must be a finite number, got NaN/);
  });

  it('rejects bad thresholds and tiles larger than a workgroup, naming them', async () => {
    const { q, k, v } = structuredQKV({ heads: 1, length: 8, headDim: 64, seed: 1 });
    await assert.rejects(flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, { threshold: 1.5 }), /threshold must be in \(0, 1\], got 1.5/);
    const limit = gpu.ctx!.device.limits.maxComputeInvocationsPerWorkgroup;
    await assert.rejects(flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, { threshold: 0.1, br: limit + 1 }), /invocations per workgroup/);
  });

  it('every flash-skip variant compiles', async () => {
    for (const dtype of ['f32', 'f16'] as const)
      for (const headDimLoop of ['rolled', 'unrolled'] as const)
        for (const rows of [64, 128]) {
          if (dtype === 'f16' && !gpu.ctx!.device.features.has('shader-f16')) continue;
          const spec: FlashSkipAttentionSpec = { blocks: 'all', tokenRule: 'none', kv: 'strided', dtype, headDim: 64, valueDim: 64, headDimLoop, rows };
          assert.match((await compileProgram(gpu.ctx!.device, flashSkipAttentionProgram, spec)).label, /^flash-skip-attention\{/);
        }
  });
});
