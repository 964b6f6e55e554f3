/**
 * The tensor-core (subgroup-matrix) attention kernel = the CPU reference, dense and block-sparse.
 * Runs only where the adapter has f16→f32 16×16×16 subgroup matrices (NVIDIA through Dawn);
 * lavapipe has none, so in CI this suite skips with that reason and runs on the H100.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { naiveAttention } from '../src/backends/cpu/naive-attention.js';
import { runAttentionOnHost } from '../src/backends/webgpu/attention/block-sparse-attention.js';
import { hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { BlockMask, blockCausallyValid } from '../src/core/block-mask.js';
import { createSparseMethod } from '../src/methods/index.js';
import { PerHeadMethod } from '../src/methods/per-head.js';
import { Rng } from '../src/core/rng.js';
import { HeadTensor, type Layout } from '../src/core/tensor.js';
import { assertTensorsClose } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
const skip = gpu.skip || (gpu.ctx && !hasTensorCores(gpu.ctx.device) ? `adapter "${gpu.ctx.report.description}" has no f16→f32 16×16×16 subgroup matrices` : false);

// P is rounded to f16 before the P·V product: a little looser than the portable f16 kernel.
const TOL_TC = { atol: 4e-3, rtol: 2e-2 };

interface Case { H: number; Hkv: number; Lq: number; Lk: number; D: number; causal: boolean; layout: Layout; density?: number; br?: number; bc?: number; ramp?: boolean; triShape?: { sinkTokens: number; localWindow: number; lastDenseQueries: number }; windows?: number[] }

const CASES: Case[] = [
  { H: 4, Hkv: 2, Lq: 128, Lk: 256, D: 128, causal: true, layout: 'BHLD' },
  { H: 4, Hkv: 4, Lq: 256, Lk: 256, D: 64, causal: false, layout: 'BLHD' },
  { H: 4, Hkv: 1, Lq: 256, Lk: 256, D: 128, causal: true, layout: 'BHLD' },
  { H: 2, Hkv: 1, Lq: 256, Lk: 512, D: 128, causal: true, layout: 'BHLD', density: 0.4, br: 128, bc: 128 },
  { H: 2, Hkv: 2, Lq: 512, Lk: 512, D: 128, causal: false, layout: 'BLHD', density: 0.3, br: 64, bc: 64 },
  { H: 8, Hkv: 2, Lq: 64, Lk: 1024, D: 64, causal: true, layout: 'BHLD', density: 0.5, br: 64, bc: 256 },
  // Logits that grow along the keys: a row's max keeps rising, so the one-pass kernel rescales O
  // on most tiles (on the cases above it does so on the first tile only).
  { H: 2, Hkv: 1, Lq: 256, Lk: 512, D: 128, causal: true, layout: 'BHLD', ramp: true },
  { H: 2, Hkv: 2, Lq: 128, Lk: 384, D: 64, causal: false, layout: 'BLHD', ramp: true, density: 0.6, br: 64, bc: 64 },
  // Tri-shape's token rule inside kept blocks: sink, window and dense last rows cut through tiles.
  { H: 4, Hkv: 2, Lq: 512, Lk: 512, D: 128, causal: true, layout: 'BHLD', br: 64, bc: 64, triShape: { sinkTokens: 20, localWindow: 150, lastDenseQueries: 37 } },
  { H: 2, Hkv: 1, Lq: 256, Lk: 1024, D: 64, causal: true, layout: 'BLHD', br: 128, bc: 128, triShape: { sinkTokens: 5, localWindow: 200, lastDenseQueries: 70 } },
  // One window per head (PerHeadMethod): runs of heads with one rule each, one inside a GQA group.
  { H: 4, Hkv: 2, Lq: 256, Lk: 512, D: 64, causal: true, layout: 'BHLD', br: 64, bc: 64, triShape: { sinkTokens: 8, localWindow: 100, lastDenseQueries: 20 }, windows: [100, 100, 180, 60] },
];

/** K rows scaled by 1 + j/24: scores (and their running max) rise with the key position. */
function ramped(k: HeadTensor): HeadTensor {
  const f = k.toDType('f32');
  const data = f.data as Float32Array;
  return HeadTensor.fromFunction(f.shape, (b, h, j, d) => data[f.offset(b, h, j) + d] * (1 + j / 24), f.layout).toDType('f16');
}

// One release for the file: a device destroyed after the first suite would let the second
// "pass" without compiling anything (a lost device reports no errors).
after(() => gpu.release());

describe('WebGPU tensor-core attention = CPU reference', { skip }, () => {
  for (const c of CASES) {
    // The default kernel in both pass modes, each workgroup-memory order, and the unstaged variant.
    for (const tc of [{ passes: 1 }, { passes: 2 }, { passes: 1, swizzle: 'none' }, { passes: 1, swizzle: 'both' }, { passes: 1, interleave: true }, { passes: 2, stage: false, interleave: true }, { passes: 1, stage: false }] as const) {
      it(`${JSON.stringify(c)} ${JSON.stringify(tc)}`, async () => {
        const shapeQ = { batch: 1, heads: c.H, length: c.Lq, headDim: c.D };
        const shapeK = { batch: 1, heads: c.Hkv, length: c.Lk, headDim: c.D };
        const q = HeadTensor.randn(shapeQ, 11, { dtype: 'f16', layout: c.layout });
        const k0 = HeadTensor.randn(shapeK, 12, { dtype: 'f16', layout: c.layout });
        const k = c.ramp ? ramped(k0) : k0;
        const v = HeadTensor.randn(shapeK, 13, { dtype: 'f16', layout: c.layout });
        const rng = new Rng(5);
        const dims = { batch: 1, heads: c.H, queryLength: c.Lq, keyLength: c.Lk, blockRows: c.br ?? 64, blockCols: c.bc ?? 64, causal: c.causal };
        const triShape = c.windows ? new PerHeadMethod('tri_shape', { ...c.triShape, br: c.br, bc: c.bc }, { localWindow: c.windows }) : createSparseMethod('tri_shape', { ...c.triShape, br: c.br, bc: c.bc });
        const mask = c.triShape ? triShape.planBlockMask(q, k, { causal: true }).mask
          : c.density === undefined ? undefined
          : BlockMask.fromPredicate(dims, (_b, _h, qb, kb) => blockCausallyValid(dims, qb, kb) && (kb === 0 || rng.next() < c.density!));
        if (c.triShape) assert.ok(mask?.hasTokenRule && mask.keptValidBlocks < mask.validBlocks, 'the tri-shape case must be sparse, with a token rule');
        if (c.windows) assert.ok(mask?.headTokenRules, 'the windows give one token rule per head');
        const got = await runAttentionOnHost(gpu.ctx!, q, k, v, { causal: c.causal, scale: 1 / Math.sqrt(c.D), mask, kernel: 'tensor-core', tensorCore: tc, label: 'tc-test' });
        const want = naiveAttention(q.toDType('f32'), k.toDType('f32'), v.toDType('f32'), { causal: c.causal, visible: mask && ((b, h, i, j) => mask.visible(b, h, i, j)) });
        assertTensorsClose(got.toDType('f32'), want, TOL_TC, 'tensor-core vs CPU');
      });
    }
  }
});

describe('every tensor-core variant compiles', { skip }, () => {
  it('compiles', async () => {
    const { compileProgram } = await import('../src/backends/webgpu/runtime/program.js');
    const { tensorCoreAttentionProgram, tensorCoreWorkgroupBytes } = await import('../src/backends/webgpu/attention/tensor-core-attention.js');
    const limit = gpu.ctx!.device.limits.maxComputeWorkgroupStorageSize;
    let compiled = 0;
    for (const headDim of [64, 128] as const)
      for (const causal of [true, false])
        for (const blocks of ['all', 'csr'] as const)
          for (const out of ['f16', 'f32'] as const)
            for (const [subgroups, stage] of [[4, true], [4, false], [8, false]] as const)
              for (const passes of [1, 2] as const) {
                const spec = { headDim, causal, blocks, out, subgroups, stage, passes, swizzle: passes === 1 ? 'both' as const : 'none' as const, interleave: stage, tokenRule: causal && blocks === 'csr' && out === 'f16' ? 'trishape' as const : 'none' as const };
                if (tensorCoreWorkgroupBytes(spec) > limit) continue; // supports() refuses it before compiling
                await compileProgram(gpu.ctx!.device, tensorCoreAttentionProgram, spec);
                compiled++;
              }
    assert.ok(compiled >= 40, `only ${compiled} variants fit this device's ${limit} B of workgroup memory`);
  });
});
