/**
 * The tensor-core XAttention estimation (strided subgroup-matrix products) = the CPU estimation:
 * W within tolerance and the same kept blocks. Runs where the adapter has f16→f32 16×16×16
 * subgroup matrices (NVIDIA through Dawn); lavapipe has none, so CI skips it with that reason.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { estimateXAttentionWebGpu } from '../src/backends/webgpu/methods/xattention/xattention-plan.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { HeadTensor, type Layout } from '../src/core/tensor.js';
import { estimateXAttention } from '../src/methods/xattention/antidiagonal-estimate.js';
import { assertClose } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
const skip = gpu.skip || (gpu.ctx && !hasTensorCores(gpu.ctx.device) ? `adapter "${gpu.ctx.report.description}" has no f16→f32 16×16×16 subgroup matrices` : false);
after(() => gpu.release());

interface Case { H: number; Hkv: number; Lq: number; Lk: number; D: number; S: number; B: number; causal: boolean; layout: Layout; input: 'structured' | 'random' }

const CASES: Case[] = [
  { H: 4, Hkv: 2, Lq: 512, Lk: 512, D: 128, S: 16, B: 128, causal: true, layout: 'BHLD', input: 'structured' }, // R = 8
  { H: 2, Hkv: 2, Lq: 256, Lk: 768, D: 64, S: 16, B: 64, causal: true, layout: 'BLHD', input: 'structured' }, // R = 4, Lq < Lk
  { H: 4, Hkv: 1, Lq: 384, Lk: 384, D: 128, S: 8, B: 128, causal: false, layout: 'BHLD', input: 'random' }, // R = 16
  { H: 2, Hkv: 2, Lq: 1024, Lk: 1024, D: 128, S: 8, B: 64, causal: true, layout: 'BHLD', input: 'random' }, // R = 8, 4 column groups
];

function inputs(c: Case): { q: HeadTensor; k: HeadTensor } {
  if (c.input === 'structured') {
    const { q, k } = structuredQKV({ heads: c.H, kvHeads: c.Hkv, length: c.Lk, queryLength: c.Lq, headDim: c.D, seed: 3, layout: c.layout });
    return { q: q.toDType('f16'), k: k.toDType('f16') };
  }
  return {
    q: HeadTensor.randn({ batch: 1, heads: c.H, length: c.Lq, headDim: c.D }, 1, { dtype: 'f16', layout: c.layout }),
    k: HeadTensor.randn({ batch: 1, heads: c.Hkv, length: c.Lk, headDim: c.D }, 2, { dtype: 'f16', layout: c.layout }),
  };
}

describe('XAttention estimation on tensor cores = CPU', { skip }, () => {
  for (const c of CASES) {
    it(JSON.stringify(c), async () => {
      const { q, k } = inputs(c);
      const params = { threshold: 0.9, stride: c.S, blockSize: c.B };
      const got = await estimateXAttentionWebGpu(gpu.ctx!, q, k, params, { causal: c.causal, estimateKernel: 'tensor-core' });
      const want = estimateXAttention(q.toDType('f32'), k.toDType('f32'), params, { causal: c.causal });
      // Products of f16 values are exact; only the f32 summation order differs from the CPU's.
      assertClose(got.blockScores, want.blockScores, { atol: 2e-5, rtol: 1e-3 }, 'W');
      const a = got.mask.toDense();
      const b = want.mask.toDense();
      let differing = 0;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
      // A block whose cumulative mass sits within rounding of tau may flip; anything more is a bug.
      assert.ok(differing <= 2, `${differing} of ${a.length} blocks differ from the CPU selection`);
      assert.ok(got.mask.keptValidBlocks > 0);
    });
  }

  it('a shape off the 16·stride grid is refused with the reason when tensor cores are forced', async () => {
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: 200, headDim: 128 }, 1, { dtype: 'f16' });
    await assert.rejects(estimateXAttentionWebGpu(gpu.ctx!, q, q, { threshold: 0.9, stride: 8, blockSize: 64 }, { causal: true, estimateKernel: 'tensor-core' }),
      /tensor-core XAttention estimation: lengths 200\/200 are not multiples of 16·stride = 128/);
  });
});
