/**
 * Shapes and inputs the tensor-core attention tests share (the kernel on subgroup matrices, and
 * its plain-WGSL emulation on any adapter): sizes are multiples of the kernel's 16·SG query rows
 * and 64-key tiles; GQA, causal or not, Lq < Lk, rising logits, block lists, token rules.
 */
import assert from 'node:assert/strict';
import { naiveAttention } from '../../src/backends/cpu/naive-attention.js';
import { BlockMask, blockCausallyValid } from '../../src/core/block-mask.js';
import { createSparseMethod } from '../../src/methods/index.js';
import { PerHeadMethod } from '../../src/methods/per-head.js';
import { Rng } from '../../src/core/rng.js';
import { HeadTensor, type Layout } from '../../src/core/tensor.js';

// P is rounded to f16 before the P·V product: a little looser than the portable f16 kernel.
export const TOL_TC = { atol: 4e-3, rtol: 2e-2 };

export interface TcCase { H: number; Hkv: number; Lq: number; Lk: number; D: number; causal: boolean; layout: Layout; density?: number; br?: number; bc?: number; ramp?: boolean; triShape?: { sinkTokens: number; localWindow: number; lastDenseQueries: number }; windows?: number[] }

export const TC_CASES: TcCase[] = [
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
  // Tri-shape where whole tiles are sinks and whole workgroups are dense rows (the kernel skips
  // the per-score test there), next to window tiles it must still test.
  { H: 2, Hkv: 1, Lq: 256, Lk: 768, D: 64, causal: true, layout: 'BHLD', br: 128, bc: 128, triShape: { sinkTokens: 64, localWindow: 96, lastDenseQueries: 40 } },
];

/** K rows scaled by 1 + j/24: scores (and their running max) rise with the key position. */
function ramped(k: HeadTensor): HeadTensor {
  const f = k.toDType('f32');
  const data = f.data as Float32Array;
  return HeadTensor.fromFunction(f.shape, (b, h, j, d) => data[f.offset(b, h, j) + d] * (1 + j / 24), f.layout).toDType('f16');
}

/** A case's f16 inputs, its block mask (if any) and the CPU reference output. */
export function tcCaseInputs(c: TcCase): { q: HeadTensor; k: HeadTensor; v: HeadTensor; mask?: BlockMask; want: HeadTensor } {
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
  const want = naiveAttention(q.toDType('f32'), k.toDType('f32'), v.toDType('f32'), { causal: c.causal, visible: mask && ((b, h, i, j) => mask.visible(b, h, i, j)) });
  return { q, k, v, mask, want };
}
