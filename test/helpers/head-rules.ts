/**
 * Calls whose heads have different token rules (per-head tri-shape windows), for the CPU, WebGPU
 * and tensor-core suites: random kept blocks, one rule (or none) per head, and the dense oracle
 * that applies each head's rule elementwise without going through BlockMask's own visibility.
 */
import { naiveAttention } from '../../src/backends/cpu/naive-attention.js';
import { BlockMask, blockCausallyValid, type BlockMaskDims } from '../../src/core/block-mask.js';
import { Rng } from '../../src/core/rng.js';
import { type DType, HeadTensor, type Layout } from '../../src/core/tensor.js';
import { type HeadTokenRules, type TokenRule, tokenRuleVisible } from '../../src/core/token-rule.js';

export const tri = (sinkTokens: number, localWindow: number, lastDenseQueries: number): TokenRule => ({ kind: 'trishape', sinkTokens, localWindow, lastDenseQueries });

export interface HeadRuleCase {
  name: string;
  B: number;
  H: number;
  Hkv: number;
  Lq: number;
  Lk: number;
  D: number;
  br: number;
  bc: number;
  causal: boolean;
  layout: Layout;
  rules: HeadTokenRules;
}

// Runs of equal rules that start and end inside GQA groups, a head with no rule, lengths off the
// block grid, Lq = 1, a chunk at an offset (Lq < Lk), batch 2, both layouts, non-causal.
export const HEAD_RULE_CASES: HeadRuleCase[] = [
  { name: 'GQA 6:2, batch 2, runs inside groups, a head without rule, L75', B: 2, H: 6, Hkv: 2, Lq: 75, Lk: 75, D: 8, br: 16, bc: 12, causal: true, layout: 'BHLD', rules: [tri(4, 9, 3), tri(4, 9, 3), tri(2, 20, 3), undefined, tri(4, 9, 3), tri(0, 30, 1)] },
  { name: 'chunk Lq 23 at offset 67, MHA 4, BLHD', B: 1, H: 4, Hkv: 4, Lq: 23, Lk: 90, D: 8, br: 8, bc: 16, causal: true, layout: 'BLHD', rules: [tri(4, 16, 2), tri(4, 40, 2), tri(4, 40, 2), tri(1, 7, 0)] },
  { name: 'Lq 1, GQA 4:1', B: 1, H: 4, Hkv: 1, Lq: 1, Lk: 61, D: 4, br: 8, bc: 8, causal: true, layout: 'BHLD', rules: [tri(4, 9, 3), tri(4, 17, 3), tri(4, 9, 3), tri(4, 17, 3)] },
  { name: 'non-causal L37, GQA 3:1, BLHD', B: 1, H: 3, Hkv: 1, Lq: 37, Lk: 37, D: 8, br: 8, bc: 8, causal: false, layout: 'BLHD', rules: [tri(2, 5, 2), undefined, tri(6, 11, 4)] },
];

export function caseInputs(c: HeadRuleCase, seed: number, dtype: DType = 'f32') {
  const opts = { layout: c.layout, dtype };
  return {
    q: HeadTensor.randn({ batch: c.B, heads: c.H, length: c.Lq, headDim: c.D }, seed, opts),
    k: HeadTensor.randn({ batch: c.B, heads: c.Hkv, length: c.Lk, headDim: c.D }, seed + 1, opts),
    v: HeadTensor.randn({ batch: c.B, heads: c.Hkv, length: c.Lk, headDim: c.D }, seed + 2, opts),
  };
}

/** About half the causally valid blocks kept at random (the diagonal block always), as a dense [B, H, nQB, nKB] array. */
export function randomKept(dims: BlockMaskDims, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const nQB = Math.ceil(dims.queryLength / dims.blockRows);
  const nKB = Math.ceil(dims.keyLength / dims.blockCols);
  const kept = new Uint8Array(dims.batch * dims.heads * nQB * nKB);
  const off = dims.keyLength - dims.queryLength;
  for (let r = 0; r < dims.batch * dims.heads * nQB; r++) {
    const qb = r % nQB;
    const diag = Math.floor(Math.min(off + qb * dims.blockRows, dims.keyLength - 1) / dims.blockCols);
    for (let kb = 0; kb < nKB; kb++) if (blockCausallyValid(dims, qb, kb) && (kb === diag || rng.next() < 0.5)) kept[r * nKB + kb] = 1;
  }
  return kept;
}

export function caseMask(c: HeadRuleCase, seed: number): { mask: BlockMask; kept: Uint8Array; dims: BlockMaskDims } {
  const dims = { batch: c.B, heads: c.H, queryLength: c.Lq, keyLength: c.Lk, blockRows: c.br, blockCols: c.bc, causal: c.causal };
  const kept = randomKept(dims, seed);
  return { mask: BlockMask.fromDense(dims, kept, c.rules), kept, dims };
}

/** Dense attention with token (b, h, i, j) visible iff its block is kept and head h's rule passes. */
export function headRuleOracle(c: HeadRuleCase, q: HeadTensor, k: HeadTensor, v: HeadTensor, kept: Uint8Array): HeadTensor {
  const nQB = Math.ceil(c.Lq / c.br);
  const nKB = Math.ceil(c.Lk / c.bc);
  const off = c.Lk - c.Lq;
  return naiveAttention(q, k, v, {
    causal: c.causal,
    visible: (b, h, i, j) => {
      const rule = c.rules[h];
      if (rule && !tokenRuleVisible(rule, i, j, c.Lq, off)) return false;
      return kept[((b * c.H + h) * nQB + Math.floor(i / c.br)) * nKB + Math.floor(j / c.bc)] === 1;
    },
  });
}
