import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { createWebGpuBackend } from '../src/backends/webgpu/index.js';
import { compileProgram, variantKey } from '../src/backends/webgpu/runtime/program.js';
import { columnsPerThread, groupColumns, rowCapacity, xattentionEstimateProgram } from '../src/backends/webgpu/methods/xattention/webgpu-xattention-estimate.js';
import { estimateXAttentionWebGpu, selectXAttentionBlocksWebGpu } from '../src/backends/webgpu/methods/xattention/xattention-plan.js';
import { selectSpec, xattentionSelectProgram } from '../src/backends/webgpu/methods/xattention/xattention-select.js';
import { BlockMask } from '../src/core/block-mask.js';
import { Rng } from '../src/core/rng.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { HeadTensor } from '../src/core/tensor.js';
import { diagonalBlock, estimateXAttention, selectBlocks, stridedGeometry } from '../src/methods/xattention/antidiagonal-estimate.js';
import { XAttentionMethod } from '../src/methods/xattention/xattention.js';
import { assertClose, assertTensorsClose, TOL } from './helpers/compare.js';
import { assertSameMask } from './helpers/masks.js';
import { acquireTestGpu } from './helpers/webgpu.js';

describe('xattention GPU kernels: specs (no device needed)', () => {
  it('columns per group are whole blocks, and supports() names what it cannot run', () => {
    assert.deepEqual([1, 3, 8, 64, 72, 128].map((r) => groupColumns(r, 4)), [256, 255, 256, 256, 216, 256]);
    assert.deepEqual([1, 3, 8, 64].map((r) => groupColumns(r, 1)), [64, 63, 64, 64]);
    assert.deepEqual([1, 8, 9, 72].map((r) => rowCapacity(r, 'rolled')), [8, 8, 16, 128]);
    assert.deepEqual([1, 9].map((r) => rowCapacity(r, 'unrolled')), [1, 9]);
    assert.deepEqual([[8, 'rolled'], [128, 'rolled'], [8, 'unrolled'], [128, 'unrolled']].map(([c, l]) => columnsPerThread(c as number, l as 'rolled')), [1, 2, 4, 4]);
    const limits = { maxComputeWorkgroupsPerDimension: 65535, maxStorageBufferBindingSize: 2 ** 27 } as GPUSupportedLimits;
    const shape = { rowsPerBlock: 8, numQueryBlocks: 10, heads: 2, batch: 1, headDim: 64, maxBindingBytes: 1024 };
    const spec = { dtype: 'f32', rowCapacity: 8, rowLoop: 'unrolled', columnsPerThread: 4 } as const;
    assert.equal(xattentionEstimateProgram.supports(spec, shape, limits), null);
    assert.match(xattentionEstimateProgram.supports({ ...spec, rowCapacity: 256 }, { ...shape, rowsPerBlock: 256 }, limits) ?? '', /blockSize \/ stride must be in \[1, 128\], got 256/);
    assert.match(xattentionEstimateProgram.supports(spec, { ...shape, rowsPerBlock: 9 }, limits) ?? '', /9 exceeds the variant's row capacity 8/);
    assert.match(xattentionEstimateProgram.supports({ ...spec, rowCapacity: 128, columnsPerThread: 1 }, shape, limits) ?? '', /1 columns per thread cannot hold a block of 128/);
    assert.match(xattentionEstimateProgram.supports(spec, { ...shape, headDim: 6 }, limits) ?? '', /multiple of 4.*got 6/);
    assert.match(xattentionEstimateProgram.supports(spec, { ...shape, numQueryBlocks: 70000 }, limits) ?? '', /query blocks = 70000/);
  });
});

const gpu = await acquireTestGpu();

/** The OpenVINO CPU unit test inputs: Q = 1, K[t, c] = (t + c)/100. */
function goldenQK(L: number, d: number) {
  return {
    q: HeadTensor.fromFunction({ batch: 1, heads: 1, length: L, headDim: d }, () => 1),
    k: HeadTensor.fromFunction({ batch: 1, heads: 1, length: L, headDim: d }, (_b, _h, t, c) => (t + c) / 100),
  };
}

describe('XAttention on WebGPU', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  it('every estimation and selection variant compiles', async () => {
    const device = gpu.ctx!.device;
    const dtypes = device.features.has('shader-f16') ? (['f32', 'f16'] as const) : (['f32'] as const);
    for (const dtype of dtypes)
      for (const capacity of [1, 8, 96])
        for (const rowLoop of ['unrolled', 'rolled'] as const) {
          const spec = { dtype, rowCapacity: capacity, rowLoop, columnsPerThread: columnsPerThread(capacity, rowLoop) };
          const c = await compileProgram(device, xattentionEstimateProgram, spec);
          assert.equal(c.label, variantKey('xattention-estimate', spec));
        }
    for (const algorithm of ['sort', 'tiled'] as const) await compileProgram(device, xattentionSelectProgram, selectSpec(1, device.limits, algorithm));
  });

  const golden = [
    { L: 8, d: 8, tau: 0.8, want: '10 / 11' },
    { L: 16, d: 32, tau: 0.3, want: '1000 / 1100 / 1010 / 1001' },
    { L: 16, d: 32, tau: 0.7, want: '1000 / 1100 / 1110 / 1011' },
  ];
  for (const g of golden) {
    it(`golden L=${g.L} d=${g.d} B=4 S=2 tau=${g.tau} → ${g.want}`, async () => {
      const { q, k } = goldenQK(g.L, g.d);
      const params = { threshold: g.tau, blockSize: 4, stride: 2 };
      const got = await estimateXAttentionWebGpu(gpu.ctx!, q, k, params, { causal: true });
      const dense = got.mask.toDense();
      const nKB = got.mask.numKeyBlocks;
      const rows = Array.from({ length: got.mask.numQueryBlocks }, (_, a) => Array.from(dense.subarray(a * nKB, (a + 1) * nKB)).join('')).join(' / ');
      assert.equal(rows, g.want);
      const cpu = estimateXAttention(q, k, params, { causal: true });
      assertSameMask(got.mask, cpu.mask, 'golden');
      assertClose(got.blockScores, cpu.blockScores, TOL.f32, 'W');
    });
  }

  // The CPU test's grid (stripe = naive estimation) plus f16 storage and batch 2.
  const cases = [
    { name: 'causal MHA', sparse: true, H: 2, Hkv: 2, Lq: 100, Lk: 100, B: 16, S: 4, causal: true, tau: 0.8 },
    { name: 'causal GQA 2:1, q shorter than k, BLHD', sparse: true, H: 4, Hkv: 2, Lq: 37, Lk: 90, B: 8, S: 2, causal: true, tau: 0.9, layout: 'BLHD' as const },
    { name: 'non-causal GQA 2:1, q shorter than k', sparse: true, H: 2, Hkv: 1, Lq: 50, Lk: 70, B: 16, S: 8, causal: false, tau: 0.8 },
    { name: 'non-causal, q longer than k', sparse: true, H: 2, Hkv: 2, Lq: 70, Lk: 41, B: 16, S: 4, causal: false, tau: 0.6 },
    { name: 'lengths not multiples of S or B', sparse: true, H: 1, Hkv: 1, Lq: 45, Lk: 45, B: 12, S: 3, causal: true, tau: 0.7 },
    { name: 'Lk - Lq not a block multiple, GQA 4:1', H: 4, Hkv: 1, Lq: 10, Lk: 16, B: 8, S: 2, causal: true, tau: 0.5 },
    { name: 'decode', H: 2, Hkv: 1, Lq: 1, Lk: 33, B: 8, S: 4, causal: true, tau: 0.8 },
    { name: 'length 1 both', H: 1, Hkv: 1, Lq: 1, Lk: 1, B: 4, S: 2, causal: true, tau: 0.8 },
    { name: 'many key blocks (> 64 per row, several select tiles of candidates)', sparse: true, H: 1, Hkv: 1, Lq: 300, Lk: 300, B: 4, S: 1, causal: true, tau: 0.95 },
    { name: 'more than 256 candidate blocks per row (two selection tiles)', sparse: true, H: 1, Hkv: 1, Lq: 9, Lk: 1100, B: 4, S: 2, causal: false, tau: 0.9 },
    { name: 'groups of 63 columns (R = 3), several groups per stripe', sparse: true, H: 1, Hkv: 1, Lq: 30, Lk: 600, B: 12, S: 4, causal: false, tau: 0.9 },
    { name: 'f16 storage, causal GQA', sparse: true, H: 4, Hkv: 2, Lq: 64, Lk: 80, B: 16, S: 4, causal: true, tau: 0.9, dtype: 'f16' as const },
  ];
  for (const c of cases) {
    it(`masks equal the CPU estimation exactly: ${c.name}`, async (t) => {
      if (c.dtype === 'f16' && !gpu.ctx!.device.features.has('shader-f16')) return t.skip('the device has no shader-f16');
      const qk = structuredQKV({ batch: 2, heads: c.H, kvHeads: c.Hkv, length: c.Lk, queryLength: c.Lq, headDim: 8, seed: 3, layout: c.layout });
      const [q, k] = [qk.q.toDType(c.dtype ?? 'f32'), qk.k.toDType(c.dtype ?? 'f32')];
      const params = { threshold: c.tau, blockSize: c.B, stride: c.S };
      const cpu = estimateXAttention(q, k, params, { causal: c.causal });
      const got = await estimateXAttentionWebGpu(gpu.ctx!, q, k, params, { causal: c.causal });
      assertClose(got.blockScores, cpu.blockScores, TOL.f32, `${c.name}: W`);
      assertSameMask(got.mask, cpu.mask, c.name);
      if (c.sparse) assert.ok(cpu.mask.density < 1, 'the case drops blocks (else it would test little)');
    });
  }

  // R = 1 keeps lavapipe's compile of the unrolled 4-column tile short; groups of 256 columns.
  it('the unrolled variant (what GPUs run: 4 columns per thread) gives the same mask and W as the CPU', async () => {
    const { q, k } = structuredQKV({ heads: 2, kvHeads: 1, length: 300, queryLength: 290, headDim: 8, seed: 9 });
    const params = { threshold: 0.8, blockSize: 4, stride: 4 };
    const cpu = estimateXAttention(q, k, params, { causal: true });
    for (const rowLoop of ['unrolled', 'rolled'] as const) {
      const got = await estimateXAttentionWebGpu(gpu.ctx!, q, k, params, { causal: true, rowLoop });
      assertClose(got.blockScores, cpu.blockScores, TOL.f32, `${rowLoop}: W`);
      assertSameMask(got.mask, cpu.mask, rowLoop);
    }
    assert.ok(cpu.mask.density < 1, 'the case drops blocks');
  });

  // Dyadic block sums and thresholds make every sum exact in f32 and f64, so ties in W (broken
  // towards the lower block) and kept mass landing exactly on tau·Σ W are decided alike.
  it('selection alone = selectBlocks on exact ties, causal and not, Lq < Lk', async () => {
    const rng = new Rng(17);
    for (const [causal, Lq, Lk, tau] of [[true, 40, 40, 0.5], [true, 22, 37, 0.75], [false, 13, 40, 0.625], [false, 40, 1100, 0.5]] as const) {
      const dims = { batch: 2, heads: 3, queryLength: Lq, keyLength: Lk, blockRows: 4, blockCols: 4, causal };
      const g = stridedGeometry(Lq, Lk, { threshold: tau, blockSize: 4, stride: 1 }, causal);
      const rows = 2 * 3 * g.numQueryBlocks;
      const w = Float32Array.from({ length: rows * g.numKeyBlocks }, () => Math.floor(rng.next() * 4) / 64);
      const dense = new Uint8Array(w.length);
      for (let r = 0; r < rows; r++) {
        const row = w.subarray(r * g.numKeyBlocks, (r + 1) * g.numKeyBlocks);
        for (const kb of selectBlocks(row, tau, causal ? diagonalBlock(g, r % g.numQueryBlocks) : null)) dense[r * g.numKeyBlocks + kb] = 1;
      }
      const got = await selectXAttentionBlocksWebGpu(gpu.ctx!, w, dims, tau);
      assertSameMask(got, BlockMask.fromDense(dims, dense), `causal=${causal} Lq=${Lq} Lk=${Lk} tau=${tau}`);
    }
  });

  it('end to end: sparseAttention on the WebGPU backend (GPU plan → GPU attention) = the CPU method', async () => {
    const backend = createWebGpuBackend(gpu.ctx);
    for (const [causal, Lq, settings] of [[true, 70, { blockSize: 16, stride: 4, threshold: 0.8 }], [false, 45, { blockSize: 8, stride: 2, threshold: 0.7 }]] as const) {
      const { q, k, v } = structuredQKV({ heads: 4, kvHeads: 2, length: 77, queryLength: Lq, headDim: 16, seed: 11 });
      const want = await sparseAttention(q, k, v, { method: 'xattention', settings, causal, backend: cpuBackend });
      const got = await sparseAttention(q, k, v, { method: 'xattention', settings, causal, backend });
      assertSameMask(got.plan.mask, want.plan.mask, `causal=${causal}`);
      assert.deepEqual(got.plan.stats, want.plan.stats);
      assertClose(got.plan.blockScores!, want.plan.blockScores!, TOL.f32, 'W');
      assertTensorsClose(got.output, want.output, TOL.f32, `output causal=${causal}`);
      assert.ok(want.plan.mask.density < 1, 'the plan drops blocks');
    }
  });

  it('end to end: dense: true runs dense attention with the full mask', async () => {
    const backend = createWebGpuBackend(gpu.ctx);
    const { q, k, v } = structuredQKV({ heads: 2, length: 40, headDim: 8, seed: 2 });
    const method = new XAttentionMethod({ dense: true, blockSize: 8, stride: 4 });
    const want = await sparseAttention(q, k, v, { method, causal: true, backend: cpuBackend });
    const got = await sparseAttention(q, k, v, { method, causal: true, backend });
    assertSameMask(got.plan.mask, want.plan.mask, 'dense');
    assert.deepEqual(got.plan.stats, want.plan.stats);
    assertTensorsClose(got.output, want.output, TOL.f32, 'dense output');
  });
});
