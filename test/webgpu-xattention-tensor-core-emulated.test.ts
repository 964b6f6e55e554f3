/**
 * The tensor-core XAttention estimate's data flow = the CPU estimation on any adapter with f16
 * shaders: its subgroup-matrix builtins emulated in plain WGSL (attention/tensor-core-emulation.wgsl.ts),
 * so the strided fragment offsets, both row-tile layouts, staged and strided K, the swizzled and plain
 * scratch walks, the cross-lane block sums, the one-pass lse workspace and its reduce, and the causal
 * limits run on lavapipe too.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { estimateXAttentionWebGpu } from '../src/backends/webgpu/methods/xattention/xattention-plan.js';
import { type TcEstimateOptions, tcEstimateProgram, type TcEstimateSpec, tensorCoreEstimateSpec } from '../src/backends/webgpu/methods/xattention/tensor-core-xattention-estimate.js';
import { programSource } from '../src/backends/webgpu/runtime/program.js';
import { releaseWorkspaces } from '../src/backends/webgpu/runtime/workspace.js';
import { relativeL2Error } from '../src/core/error-metrics.js';
import { estimateXAttention } from '../src/methods/xattention/antidiagonal-estimate.js';
import { assertEstimateMatchesCpu, type TcEstimateCase, tcEstimateInputs, tcEstimateParams } from './helpers/xattention-tc-cases.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
const skip = gpu.skip || (gpu.ctx && !gpu.ctx.device.features.has('shader-f16') ? `adapter "${gpu.ctx.report.description}" has no shader-f16` : false);
after(() => gpu.release());

// lavapipe's LLVM takes tens of seconds per emulated variant (head dim, R, causal and the options
// each make one), so each case is its own variant and the cases are few and small.
const CASES: { c: TcEstimateCase; tc: TcEstimateOptions }[] = [
  // The row-owning kernel's defaults (staged, 4 subgroups of 16 rows: half idle at 32 rows), GQA,
  // Lq < Lk (80 key columns: the staged tail is zero), BLHD, R = 8.
  { c: { H: 4, Hkv: 2, Lq: 256, Lk: 640, D: 64, S: 8, B: 64, causal: true, layout: 'BLHD', input: 'structured' }, tc: { gemm: false } },
  // Unstaged strided loads, two row tiles (one lane per row), R = 4, not causal, 2 subgroups.
  { c: { H: 2, Hkv: 1, Lq: 512, Lk: 768, D: 64, S: 16, B: 64, causal: false, layout: 'BHLD', input: 'random' }, tc: { rowTiles: 2, subgroups: 2, stage: false } },
  // One pass (lse workspace and reduce), the plain walk, prefetched K slices, R = 16, a last workgroup
  // with one idle subgroup (48 rows of 2 × 16).
  { c: { H: 2, Hkv: 2, Lq: 384, Lk: 384, D: 64, S: 8, B: 128, causal: true, layout: 'BHLD', input: 'random' }, tc: { swizzle: false, subgroups: 2, prefetch: true, passes: 1 } },
  // One pass, two row tiles staged, GQA, Lq < Lk (causal offset), R = 8.
  { c: { H: 4, Hkv: 1, Lq: 512, Lk: 1024, D: 64, S: 16, B: 128, causal: true, layout: 'BHLD', input: 'structured' }, tc: { rowTiles: 2, subgroups: 2, passes: 1 } },
  // 32 key columns per step with 2 row tiles, 4 subgroups, staged and prefetched, one pass; R = 8
  // (one block per lane), 80-column causal offset.
  { c: { H: 2, Hkv: 1, Lq: 512, Lk: 640, D: 64, S: 8, B: 64, causal: true, layout: 'BHLD', input: 'structured' }, tc: { cols: 32, rowTiles: 2, passes: 1 } },
  // Q fragments a slice ahead (prefetchQ), 2 row tiles, 2 subgroups, idle subgroup in the last
  // workgroup (96 strided rows of 64 per workgroup), not causal, two passes.
  { c: { H: 2, Hkv: 2, Lq: 768, Lk: 512, D: 64, S: 8, B: 64, causal: false, layout: 'BLHD', input: 'random' }, tc: { prefetchQ: true, rowTiles: 2, subgroups: 2, passes: 2 } },
  // GEMM-tiled (128×128 score tiles; the default): GQA, Lq < Lk (causal offset: a tile half past the limit, one
  // wholly past it), 80 key columns past the first tile (the staged tail is zero), R = 8, BLHD.
  { c: { H: 4, Hkv: 2, Lq: 1536, Lk: 3328, D: 64, S: 8, B: 64, causal: true, layout: 'BLHD', input: 'structured' }, tc: {} },
  // GEMM-tiled with loads past the operands skipped by a test, not causal, 48 query rows (a tile of
  // mostly missing rows), R = 16, D 128.
  { c: { H: 2, Hkv: 1, Lq: 384, Lk: 640, D: 128, S: 8, B: 128, causal: false, layout: 'BHLD', input: 'random' }, tc: { passes: 1, gemm: true, gemmClamp: false } },
  // GEMM-tiled with clamped loads (the default): rows past Lq (48 of the tile's 128) and key columns past Lk
  // (48 of 128) read the last row's data, which the epilogue must drop; GQA, not causal (so that only the column test drops them), R = 8.
  { c: { H: 4, Hkv: 2, Lq: 640, Lk: 1664, D: 64, S: 8, B: 64, causal: false, layout: 'BHLD', input: 'random' }, tc: { gemm: true } },
];

describe('emulated tensor-core XAttention estimate = CPU', { skip }, () => {
  for (const { c, tc } of CASES) {
    it(`${JSON.stringify(c)} ${JSON.stringify(tc)}`, async () => {
      const { q, k } = tcEstimateInputs(c);
      const got = await estimateXAttentionWebGpu(gpu.ctx!, q, k, tcEstimateParams(c), { causal: c.causal, estimateKernel: 'tensor-core', tensorCore: { ...tc, emulate: true } });
      assertEstimateMatchesCpu(c, q, k, got);
    });
  }

  // The benchmark's diagnostics must really leave their stage out: each runs, and its W is far from
  // the CPU's (a fresh workspace first: a pooled one could still hold a previous call's right answer).
  for (const gemmDiag of ['no-staging', 'no-mma', 'no-epilogue', 'global-only', 'stores-only'] as const) {
    it(`the GEMM diagnostic '${gemmDiag}' runs and its W is wrong`, async () => {
      const c: TcEstimateCase = { H: 2, Hkv: 1, Lq: 256, Lk: 256, D: 64, S: 8, B: 64, causal: true, layout: 'BHLD', input: 'structured' };
      const { q, k } = tcEstimateInputs(c);
      releaseWorkspaces(gpu.ctx!.device);
      const got = await estimateXAttentionWebGpu(gpu.ctx!, q, k, tcEstimateParams(c), { causal: true, estimateKernel: 'tensor-core', tensorCore: { gemm: true, gemmDiag, emulate: true } });
      const want = estimateXAttention(q.toDType('f32'), k.toDType('f32'), tcEstimateParams(c), { causal: true });
      assert.ok(relativeL2Error(got.blockScores, want.blockScores) > 0.05, `W within ${relativeL2Error(got.blockScores, want.blockScores)} of the CPU's`);
    });
  }

  it('emulates only when tensor cores are asked for', async () => {
    const { q, k } = tcEstimateInputs(CASES[0].c);
    await assert.rejects(estimateXAttentionWebGpu(gpu.ctx!, q, k, tcEstimateParams(CASES[0].c), { causal: true, tensorCore: { emulate: true } }),
      /tensorCore\.emulate.*only with estimateKernel 'tensor-core'/);
  });
});

describe('tensor-core XAttention estimate variants', () => {
  const spec: TcEstimateSpec = { headDim: 128, rowsPerBlock: 8, causal: true, rowTiles: 2, subgroups: 4, swizzle: true, stage: false, prefetch: false, passes: 2 };
  const shape = { queryLength: 4096, keyLength: 4096, stride: 16, heads: 32, batch: 1 };
  const limits = { maxComputeWorkgroupStorageSize: 32768, maxComputeWorkgroupsPerDimension: 65535 } as GPUSupportedLimits;

  it('refuses a workgroup memory need above the limit, and lengths off the row-tile grid', () => {
    // 4 × 32 × 64 f32 of scratch: exactly 32 KiB; staged with 2 subgroups, half of it and 64 × 136 f16 of K.
    assert.equal(tcEstimateProgram.supports(spec, shape, limits), null);
    assert.match(tcEstimateProgram.supports({ ...spec, subgroups: 2, stage: true }, shape, limits) ?? '', /needs 33792 B of workgroup memory, device has 32768/);
    assert.match(tcEstimateProgram.supports({ ...spec, emulate: true }, shape, limits) ?? '', /needs 33280 B/);
    assert.match(tcEstimateProgram.supports(spec, { ...shape, queryLength: 4096 + 256 }, limits) ?? '', /query length 4352 is not a multiple of 32·stride = 512/);
    // One pass at 128K, H = 32, B = 128: 8192 rows × 1024 key blocks × 32 heads of f32 lse, 1 GiB.
    const big = { ...shape, queryLength: 131072, keyLength: 131072 };
    const lseLimits = { ...limits, maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 ** 32 } as GPUSupportedLimits;
    assert.equal(tcEstimateProgram.supports({ ...spec, passes: 1 }, big, lseLimits), null);
    assert.match(tcEstimateProgram.supports({ ...spec, passes: 1 }, big, { ...lseLimits, maxStorageBufferBindingSize: 2 ** 30 - 4 }) ?? '', /one pass needs a 1073741824 B lse workspace/);
  });

  it('picks the GEMM tiling by default (32-deep steps with panels where 48 KiB fit, else 16-deep), the row kernel when asked', () => {
    const view = (offset: number) => ({ buffer: {} as GPUBuffer, dtype: 'f16' as const, batch: 1, heads: 8, length: 4096, headDim: 128 as const, offset, strideB: 8 * 4096 * 128, strideH: 4096 * 128, strideL: 128 });
    const device = (workgroupBytes: number) => ({
      features: new Set(['shader-f16']), limits: { maxComputeWorkgroupStorageSize: workgroupBytes, maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 32 },
    }) as unknown as GPUDevice;
    const pick = (bytes: number, tc: TcEstimateOptions, qOffset = 0) => tensorCoreEstimateSpec(device(bytes), view(qOffset), view(0), 8, 16, true, { ...tc, emulate: true });
    assert.deepEqual(pick(49152, {}), { headDim: 128, rowsPerBlock: 8, causal: true, rowTiles: 1, subgroups: 4, swizzle: true, stage: true, prefetch: true, passes: 1, gemm: true, gemmBk: 32, gemmPanels: true, gemmClamp: true, emulate: true });
    const small = pick(32768, {});
    assert.ok(typeof small === 'object' && small.gemm && small.gemmBk === undefined && small.gemmPanels === true, JSON.stringify(small));
    // Under the 16-deep tiling's 32 KiB (browsers' default limit is 16 KiB): the row-owning kernel.
    const tiny = pick(16384, {});
    assert.ok(typeof tiny === 'object' && !tiny.gemm, JSON.stringify(tiny));
    const row = pick(49152, { prefetch: true });
    assert.ok(typeof row === 'object' && !row.gemm && row.passes === 1, JSON.stringify(row));
    // Q off the 16-byte grid: the row kernel by default, a reason when the GEMM tiling is forced.
    const unaligned = pick(49152, {}, 4);
    assert.ok(typeof unaligned === 'object' && !unaligned.gemm, JSON.stringify(unaligned));
    assert.match(String(pick(49152, { gemm: true }, 4)), /needs Q and K offsets and strides in multiples of 8 halves/);
    assert.match(String(pick(49152, { gemm: true, passes: 2 })), /one pass only \(passes 2 asked for\)/);
  });

  it('leaves the real kernel on subgroup matrices and the emulated one without them', () => {
    for (const [rowTiles, stage] of [[1, true], [2, false]] as const) {
      const real = programSource(tcEstimateProgram, { ...spec, rowTiles, stage, prefetch: stage });
      assert.match(real, /subgroupMatrixMultiplyAccumulate\(left0, right, acc00\)/);
      assert.doesNotMatch(real, /emu/);
      const emulated = programSource(tcEstimateProgram, { ...spec, rowTiles, stage, prefetch: stage, emulate: true });
      assert.doesNotMatch(emulated, /subgroupMatrix|subgroup_matrix|subgroupShuffle|enable subgroups/);
    }
  });
});
