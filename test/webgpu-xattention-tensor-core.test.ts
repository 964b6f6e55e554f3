/**
 * The tensor-core XAttention estimation (strided subgroup-matrix products) = the CPU estimation:
 * W within tolerance and the same kept blocks. Runs where the adapter has f16→f32 16×16×16
 * subgroup matrices (NVIDIA through Dawn); lavapipe has none, so CI skips it with that reason
 * (webgpu-xattention-tensor-core-emulated.test.ts runs the same data flow there).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { estimateXAttentionWebGpu } from '../src/backends/webgpu/methods/xattention/xattention-plan.js';
import { type TcEstimateOptions, tcEstimateProgram, type TcEstimateSpec } from '../src/backends/webgpu/methods/xattention/tensor-core-xattention-estimate.js';
import { compileProgram } from '../src/backends/webgpu/runtime/program.js';
import { HeadTensor } from '../src/core/tensor.js';
import { assertEstimateMatchesCpu, type TcEstimateCase, tcEstimateInputs, tcEstimateParams } from './helpers/xattention-tc-cases.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
const skip = gpu.skip || (gpu.ctx && !hasTensorCores(gpu.ctx.device) ? `adapter "${gpu.ctx.report.description}" has no f16→f32 16×16×16 subgroup matrices` : false);
after(() => gpu.release());

const CASES: TcEstimateCase[] = [
  { H: 4, Hkv: 2, Lq: 512, Lk: 512, D: 128, S: 16, B: 128, causal: true, layout: 'BHLD', input: 'structured' }, // R = 8
  { H: 2, Hkv: 2, Lq: 256, Lk: 768, D: 64, S: 16, B: 64, causal: true, layout: 'BLHD', input: 'structured' }, // R = 4, Lq < Lk
  { H: 4, Hkv: 1, Lq: 384, Lk: 384, D: 128, S: 8, B: 128, causal: false, layout: 'BHLD', input: 'random' }, // R = 16
  { H: 2, Hkv: 2, Lq: 1024, Lk: 1024, D: 128, S: 8, B: 64, causal: true, layout: 'BHLD', input: 'random' }, // R = 8, 4 column groups
];
// The default (GEMM-tiled), the row-owning kernel's default, and the variants the benchmark times
// (each on the cases whose Lq fits its rows).
const VARIANTS: TcEstimateOptions[] = [
  {}, { gemm: false }, { prefetch: true }, { stage: false }, { swizzle: false }, { rowTiles: 2, subgroups: 2 }, { rowTiles: 2, subgroups: 2, prefetch: true }, { rowTiles: 2, stage: false },
  { passes: 1 }, { passes: 1, prefetch: true }, { passes: 1, stage: false }, { passes: 1, rowTiles: 2, subgroups: 2 }, { passes: 1, cols: 32 }, { passes: 1, cols: 32, rowTiles: 2 }, { passes: 2, cols: 32 }, { passes: 1, prefetchQ: true }, { passes: 1, cols: 32, prefetchQ: true }, { passes: 1, rowTiles: 2, subgroups: 2, prefetchQ: true },
  { gemm: true, gemmBk: 16, gemmPanels: false }, { gemm: true, gemmBk: 16 }, { gemm: true, gemmBk: 32, gemmPanels: false }, { gemm: true, gemmClamp: false }, { gemm: true, gemmBk: 16, gemmClamp: false },
];

describe('XAttention estimation on tensor cores = CPU', { skip }, () => {
  for (const tc of VARIANTS) {
    for (const c of CASES.filter((x) => x.Lq % (16 * (tc.rowTiles ?? 1) * x.S) === 0)) {
      it(`${JSON.stringify(c)} ${JSON.stringify(tc)}`, async () => {
        const { q, k } = tcEstimateInputs(c);
        const got = await estimateXAttentionWebGpu(gpu.ctx!, q, k, tcEstimateParams(c), { causal: c.causal, estimateKernel: 'tensor-core', tensorCore: tc });
        assertEstimateMatchesCpu(c, q, k, got);
      });
    }
  }

  it('a shape off the 16·stride grid is refused with the reason when tensor cores are forced', async () => {
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: 200, headDim: 128 }, 1, { dtype: 'f16' });
    await assert.rejects(estimateXAttentionWebGpu(gpu.ctx!, q, q, { threshold: 0.9, stride: 8, blockSize: 64 }, { causal: true, estimateKernel: 'tensor-core' }),
      /tensor-core XAttention estimation: lengths 200\/200 are not multiples of 16·stride = 128/);
  });

  it("'auto' estimates on the portable kernel where the asked tensor-core variant cannot run; 'tensor-core' says why", async () => {
    // 2 row tiles × 4 subgroups staged: 32 KiB of scores + 17 KiB of K, over the H200's 48 KiB.
    const c = CASES[0];
    const { q, k } = tcEstimateInputs(c);
    const tc: TcEstimateOptions = { rowTiles: 2, subgroups: 4, stage: true };
    await assert.rejects(estimateXAttentionWebGpu(gpu.ctx!, q, k, tcEstimateParams(c), { causal: c.causal, estimateKernel: 'tensor-core', tensorCore: tc }),
      /tensor-core XAttention estimation cannot run this shape: needs \d+ B of workgroup memory/);
    assertEstimateMatchesCpu(c, q, k, await estimateXAttentionWebGpu(gpu.ctx!, q, k, tcEstimateParams(c), { causal: c.causal, tensorCore: tc }));
  });

  it('every variant that fits the workgroup memory compiles', async () => {
    const shape = { queryLength: 4096, keyLength: 4096, stride: 16, heads: 32, batch: 1 };
    let compiled = 0;
    for (const headDim of [64, 128] as const)
      for (const rowsPerBlock of [4, 8, 16] as const)
        for (const rowTiles of [1, 2] as const)
          for (const subgroups of [2, 4] as const)
            for (const [stage, prefetch] of [[false, false], [true, false], [true, true]] as const) {
              const spec: TcEstimateSpec = { headDim, rowsPerBlock, causal: rowsPerBlock !== 4, rowTiles, subgroups, swizzle: rowsPerBlock !== 16, stage, prefetch, passes: subgroups === 2 ? 1 : 2 };
              if (tcEstimateProgram.supports(spec, shape, gpu.ctx!.device.limits)) continue;
              await compileProgram(gpu.ctx!.device, tcEstimateProgram, spec);
              compiled++;
            }
    assert.ok(compiled >= 48, `only ${compiled} variants fit this device's ${gpu.ctx!.device.limits.maxComputeWorkgroupStorageSize} B of workgroup memory`);
  });
});
