/**
 * Cases and the check shared by the tensor-core XAttention estimate tests (on subgroup matrices, and
 * emulated on any f16 adapter): W within f32-summation tolerance of the CPU and the same kept blocks.
 */
import assert from 'node:assert/strict';
import { structuredQKV } from '../../src/core/structured-inputs.js';
import { HeadTensor, type Layout } from '../../src/core/tensor.js';
import { estimateXAttention, type XAttentionEstimate } from '../../src/methods/xattention/antidiagonal-estimate.js';
import { assertClose } from './compare.js';

export interface TcEstimateCase { H: number; Hkv: number; Lq: number; Lk: number; D: number; S: number; B: number; causal: boolean; layout: Layout; input: 'structured' | 'random' }

export function tcEstimateInputs(c: TcEstimateCase): { q: HeadTensor; k: HeadTensor } {
  if (c.input === 'structured') {
    const { q, k } = structuredQKV({ heads: c.H, kvHeads: c.Hkv, length: c.Lk, queryLength: c.Lq, headDim: c.D, seed: 3, layout: c.layout });
    return { q: q.toDType('f16'), k: k.toDType('f16') };
  }
  return {
    q: HeadTensor.randn({ batch: 1, heads: c.H, length: c.Lq, headDim: c.D }, 1, { dtype: 'f16', layout: c.layout }),
    k: HeadTensor.randn({ batch: 1, heads: c.Hkv, length: c.Lk, headDim: c.D }, 2, { dtype: 'f16', layout: c.layout }),
  };
}

export const tcEstimateParams = (c: TcEstimateCase) => ({ threshold: 0.9, stride: c.S, blockSize: c.B });

/** `got` (a GPU estimate of case c) against the CPU estimation of the same f16 inputs. */
export function assertEstimateMatchesCpu(c: TcEstimateCase, q: HeadTensor, k: HeadTensor, got: XAttentionEstimate): void {
  const want = estimateXAttention(q.toDType('f32'), k.toDType('f32'), tcEstimateParams(c), { causal: c.causal });
  // Products of f16 values are exact; only the f32 summation order differs from the CPU's.
  assertClose(got.blockScores, want.blockScores, { atol: 2e-5, rtol: 1e-3 }, 'W');
  const a = got.mask.toDense();
  const b = want.mask.toDense();
  let differing = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
  // A block whose cumulative mass sits within rounding of tau may flip; anything more is a bug.
  assert.ok(differing <= 2, `${differing} of ${a.length} blocks differ from the CPU selection`);
  assert.ok(got.mask.keptValidBlocks > 0);
}
