/**
 * SLA on WebGPU = SlaMethod on the CPU: the block map (sparseMap, lut, counts) exactly, and the
 * output (sparse part + projected linear part) within tolerance. Shapes are awkward on purpose:
 * lengths not multiples of the blocks, GQA, causal and not, one query row, every feature map,
 * both linear key sets, zero / identity / weight (+ bias) projections.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { webgpuBackend } from '../src/backends/webgpu/index.js';
import { slaAttentionWebGpu } from '../src/backends/webgpu/methods/sla/sla-attention.js';
import { Rng } from '../src/core/rng.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { type DType, HeadTensor } from '../src/core/tensor.js';
import { SlaMethod } from '../src/methods/sla/sla.js';
import { assertClose, assertTensorsClose, type Tolerance } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();

/** f32 sums on the GPU vs f64 on the CPU, and total-minus-selected in the linear part. */
export const SLA_TOL: Tolerance = { atol: 2e-5, rtol: 2e-4 };

interface Case {
  D: number; H: number; Hkv: number; batch: number; Lq: number; Lk: number; causal: boolean; dtype: DType; Dv?: number;
  settings: Record<string, unknown>;
  /** Where the sparse part may run on tensor cores (f16 inputs, blocks of 64 rows): P is rounded to f16 there. */
  tol?: Tolerance;
}
const TC_TOL: Tolerance = { atol: 4e-3, rtol: 2e-2 };

function weights(Dv: number, seed: number, bias: boolean): { weight: number[]; bias?: number[] } {
  const rng = new Rng(seed);
  const w = Array.from({ length: Dv * Dv }, () => rng.normal() / Math.sqrt(Dv));
  return bias ? { weight: w, bias: Array.from({ length: Dv }, () => rng.normal() * 0.1) } : { weight: w };
}

/** Per-head weights [H, Dv, Dv] (+ bias [H, Dv]): each head a different W, so a wrong head offset shows. */
function perHeadWeights(Dv: number, H: number, seed: number, bias: boolean): { weight: number[]; bias?: number[]; heads: number } {
  const rng = new Rng(seed);
  const weight = Array.from({ length: H * Dv * Dv }, () => rng.normal() / Math.sqrt(Dv));
  return bias ? { weight, bias: Array.from({ length: H * Dv }, () => rng.normal() * 0.1), heads: H } : { weight, heads: H };
}

const CASES: Case[] = [
  { D: 64, H: 2, Hkv: 2, batch: 1, Lq: 150, Lk: 150, causal: false, dtype: 'f32', settings: { topkRatio: 0.3, BLKQ: 32, BLKK: 16, proj: 'identity' } },
  { D: 32, H: 4, Hkv: 2, batch: 2, Lq: 45, Lk: 100, causal: true, dtype: 'f32', settings: { topkRatio: 0.5, BLKQ: 16, BLKK: 12, featureMap: 'elu', proj: weights(32, 1, true) } },
  { D: 64, H: 2, Hkv: 1, batch: 1, Lq: 1, Lk: 70, causal: true, dtype: 'f32', settings: { topkRatio: 0.25, BLKQ: 128, BLKK: 16, featureMap: 'relu', proj: 'identity' } },
  { D: 64, H: 2, Hkv: 2, batch: 1, Lq: 97, Lk: 97, causal: false, dtype: 'f16', settings: { topkRatio: 0.2, BLKQ: 20, BLKK: 10, linearBlocks: 'all', proj: weights(64, 2, false) } },
  { D: 32, H: 3, Hkv: 1, batch: 1, Lq: 77, Lk: 77, causal: true, dtype: 'f32', settings: { topkRatio: 0.4, BLKQ: 24, BLKK: 8, proj: 'identity' } },
  { D: 64, H: 2, Hkv: 1, batch: 1, Lq: 60, Lk: 90, causal: false, dtype: 'f32', settings: { topkRatio: 0.1, BLKQ: 32, BLKK: 16 } },
  // per-head projections (fitted ones): batch 2 so that the head index wraps
  { D: 32, H: 4, Hkv: 2, batch: 2, Lq: 45, Lk: 100, causal: true, dtype: 'f32', settings: { topkRatio: 0.5, BLKQ: 16, BLKK: 12, proj: perHeadWeights(32, 4, 4, true) } },
  { D: 64, H: 3, Hkv: 1, batch: 1, Lq: 40, Lk: 40, causal: false, dtype: 'f16', settings: { topkRatio: 0.3, BLKQ: 16, BLKK: 8, proj: perHeadWeights(64, 3, 5, false) } },
  // f16 with 64-row blocks: on adapters with tensor cores the sparse part runs on them
  { D: 128, H: 4, Hkv: 2, batch: 1, Lq: 256, Lk: 256, causal: false, dtype: 'f16', settings: { topkRatio: 0.25, BLKQ: 64, BLKK: 64, proj: 'identity' }, tol: TC_TOL },
  { D: 64, H: 2, Hkv: 1, batch: 1, Lq: 192, Lk: 256, causal: true, dtype: 'f16', settings: { topkRatio: 0.3, BLKQ: 64, BLKK: 32 }, tol: TC_TOL },
  // pooled scores over more than one workgroup tile: 88 key blocks (64 per tile), 22 query blocks (4 per
  // tile), a head size that is not a multiple of the 16 channels staged at a time
  { D: 24, H: 4, Hkv: 2, batch: 1, Lq: 700, Lk: 700, causal: true, dtype: 'f32', settings: { topkRatio: 0.2, BLKQ: 32, BLKK: 8 } },
  // more queries than keys, Dv != D, one key block
  { D: 32, H: 2, Hkv: 2, batch: 1, Lq: 50, Lk: 20, causal: false, dtype: 'f32', Dv: 16, settings: { topkRatio: 0.5, BLKQ: 8, BLKK: 32, featureMap: 'relu', proj: weights(16, 3, true) } },
];

function inputs(c: Case, n: number): { q: HeadTensor; k: HeadTensor; v: HeadTensor } {
  const layout = n % 2 ? 'BLHD' : 'BHLD';
  const t = n % 3 === 0 && c.Dv === undefined
    ? structuredQKV({ batch: c.batch, heads: c.H, kvHeads: c.Hkv, length: c.Lk, queryLength: c.Lq, headDim: c.D, seed: 20 + n, layout })
    : {
      q: HeadTensor.randn({ batch: c.batch, heads: c.H, length: c.Lq, headDim: c.D }, 30 * n, { layout }),
      k: HeadTensor.randn({ batch: c.batch, heads: c.Hkv, length: c.Lk, headDim: c.D }, 30 * n + 1),
      v: HeadTensor.randn({ batch: c.batch, heads: c.Hkv, length: c.Lk, headDim: c.Dv ?? c.D }, 30 * n + 2, { layout }),
    };
  return { q: t.q.toDType(c.dtype), k: t.k.toDType(c.dtype), v: t.v.toDType(c.dtype) };
}

describe('WebGPU SLA = CPU SlaMethod', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  CASES.forEach((c, n) => {
    const name = `D=${c.D} H=${c.H}/${c.Hkv} B=${c.batch} Lq=${c.Lq} Lk=${c.Lk} ${c.causal ? 'causal' : 'non-causal'} ${c.dtype} ${JSON.stringify({ ...c.settings, proj: typeof c.settings.proj === 'object' ? 'weights' : c.settings.proj })}`;
    it(name, async () => {
      const { q, k, v } = inputs(c, n);
      const method = new SlaMethod(c.settings);
      const cpuMap = method.blockMap(q, k, { causal: c.causal });
      const cpu = method.attention(q, k, v, { causal: c.causal });
      const got = await slaAttentionWebGpu(gpu.ctx!, q, k, v, { ...method.settings, causal: c.causal });
      assertClose(got.map.pooledScores, cpuMap.pooledScores, { atol: 1e-4, rtol: 1e-4 }, `${name}: pooled scores`);
      assert.deepEqual([...got.map.sparseMap], [...cpuMap.sparseMap], `${name}: sparseMap`);
      assert.deepEqual([...got.map.lut], [...cpuMap.lut], `${name}: lut`);
      assert.deepEqual([...got.map.counts], [...cpuMap.counts], `${name}: counts`);
      assertTensorsClose(got.output, cpu.output, c.tol ?? SLA_TOL, name);
      if (c.settings.proj !== undefined) {
        // The linear part must matter here, or this case would not test it.
        const sparseOnly = new SlaMethod({ ...c.settings, proj: 'zero' }).attention(q, k, v, { causal: c.causal }).output.toFloat32Array();
        const full = cpu.output.toFloat32Array();
        assert.ok(full.some((x, i) => Math.abs(x - sparseOnly[i]) > 100 * SLA_TOL.atol), `${name}: the linear part is negligible`);
      }
    });
  });

  it('sparseAttention on the WebGPU backend runs sla on the GPU (plan = GPU block map)', async () => {
    const { q, k, v } = structuredQKV({ heads: 4, kvHeads: 2, length: 130, headDim: 64, seed: 4 });
    const settings = { topkRatio: 0.3, BLKQ: 32, BLKK: 16, proj: 'identity' };
    const got = await sparseAttention(q, k, v, { method: 'sla', settings, causal: true, backend: webgpuBackend });
    const cpu = await sparseAttention(q, k, v, { method: 'sla', settings, causal: true, backend: 'cpu' });
    assert.deepEqual([...got.plan.mask.colIdx], [...cpu.plan.mask.colIdx]);
    assert.deepEqual([...got.plan.mask.rowPtr], [...cpu.plan.mask.rowPtr]);
    assert.equal(got.plan.stats.sparsity, cpu.plan.stats.sparsity);
    assertTensorsClose(got.output, cpu.output, SLA_TOL, 'sparseAttention sla');
  });

  it('a causal window of a call (rowsAfter) keeps the blocks the CPU keeps for it: top-k over the whole call', async () => {
    const { SLA_GPU } = await import('../src/backends/webgpu/methods/sla/sla-gpu.js');
    const { q, k, v } = structuredQKV({ heads: 2, kvHeads: 1, length: 300, headDim: 32, seed: 6 });
    const method = new SlaMethod({ topkRatio: 0.25, BLKQ: 16, BLKK: 8 });
    const win = { q: q.sliceLength(96, 128), k: k.sliceLength(0, 128), v: v.sliceLength(0, 128) };
    const opts = { causal: true, rowsAfter: 300 - 128 };
    const cpu = method.planBlockMask(win.q, win.k, opts);
    const got = await SLA_GPU.run!(gpu.ctx!, method, win.q, win.k, win.v, opts);
    assert.deepEqual([...got.plan.mask.colIdx], [...cpu.mask.colIdx]);
    const alone = method.planBlockMask(win.q, win.k, { causal: true });
    assert.ok(alone.stats.keptBlocks < cpu.stats.keptBlocks, 'the window alone keeps fewer blocks (the case tests rowsAfter)');
  });

  it('every SLA kernel variant compiles', async () => {
    const { compileProgram } = await import('../src/backends/webgpu/runtime/program.js');
    const k = await import('../src/backends/webgpu/methods/sla/sla-linear.js');
    const device = gpu.ctx!.device;
    for (const map of ['softmax', 'elu', 'relu'] as const) await compileProgram(device, k.slaFeatureMapProgram, { map });
    for (const unselected of [true, false]) {
      await compileProgram(device, k.slaQueryBlockSumsProgram, { unselected });
      await compileProgram(device, (await import('../src/backends/webgpu/methods/sla/sla-linear-rows.js')).slaLinearRowsProgram, { unselected });
    }
    for (const [kind, bias] of [['identity', false], ['weights', false], ['weights', true]] as const) await compileProgram(device, k.slaProjectionProgram, { kind, bias });
  });

  it('NaN input is named, not computed', async () => {
    const { q, k, v } = structuredQKV({ heads: 1, length: 20, headDim: 32, seed: 1 });
    const bad = k.toFloat32Array().slice();
    bad[5] = NaN;
    const kNaN = new HeadTensor(k.shape, bad, 'BHLD');
    const method = new SlaMethod({ BLKQ: 8, BLKK: 8 });
    await assert.rejects(slaAttentionWebGpu(gpu.ctx!, q, kNaN, v, { ...method.settings, causal: true }), /k\[0, 0, 0, 5\] \(layout BHLD\) must be a finite number, got NaN/);
  });

  it('topkRatio 1 selects every block: the linear part is empty and SLA equals dense attention', async () => {
    const { q, k, v } = structuredQKV({ heads: 2, length: 50, headDim: 32, seed: 9 });
    const method = new SlaMethod({ topkRatio: 1, BLKQ: 16, BLKK: 8, proj: 'identity' });
    const got = await slaAttentionWebGpu(gpu.ctx!, q, k, v, { ...method.settings, causal: true });
    const dense = await sparseAttention(q, k, v, { method: 'dense', causal: true, backend: 'cpu' });
    assertTensorsClose(got.output, dense.output, SLA_TOL, 'all blocks');
  });
});
