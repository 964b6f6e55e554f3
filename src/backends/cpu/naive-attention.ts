/**
 * Naive attention, the oracle of every other kernel: for each query row, all scores, softmax,
 * then the weighted sum of V. Readable over fast.
 *
 *   q [B, H, Lq, D], k/v [B, Hkv, Lk, D|Dv] (either layout) → out [B, H, Lq, Dv] f32 in q's layout
 *
 * A query row with no visible key yields zeros (never NaN): it attends to nothing.
 */
import { type AttentionOptions, describeAttention } from '../../core/attention-shape.js';
import type { BlockMask } from '../../core/block-mask.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { HeadTensor } from '../../core/tensor.js';

export interface NaiveAttentionOptions extends AttentionOptions {
  /** Extra token visibility on top of the causal mask: (batch, head, query index, key index). */
  visible?: (b: number, h: number, i: number, j: number) => boolean;
}

export function naiveAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: NaiveAttentionOptions = {}): HeadTensor {
  const p = describeAttention(q, k, v, opts);
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) t.assertFinite(name);
  const out = HeadTensor.zeros({ batch: p.batch, heads: p.heads, length: p.queryLength, headDim: p.valueDim }, q.layout);
  const o = out.data as Float32Array;
  const scores = new Float64Array(p.keyLength);
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.heads; h++) {
      const kh = Math.floor(h / p.groupSize);
      for (let i = 0; i < p.queryLength; i++) {
        const qi = q.row(b, h, i);
        let max = -Infinity;
        for (let j = 0; j < p.keyLength; j++) {
          const ok = (!p.causal || j <= p.queryOffset + i) && (!opts.visible || opts.visible(b, h, i, j));
          if (!ok) {
            scores[j] = -Infinity;
            continue;
          }
          const kj = k.row(b, kh, j);
          let s = 0;
          for (let d = 0; d < p.headDim; d++) s += qi[d] * kj[d];
          scores[j] = s * p.scale;
          if (scores[j] > max) max = scores[j];
        }
        if (max === -Infinity) continue;
        let sum = 0;
        for (let j = 0; j < p.keyLength; j++) {
          scores[j] = scores[j] === -Infinity ? 0 : Math.exp(scores[j] - max);
          sum += scores[j];
        }
        const oo = out.offset(b, h, i);
        for (let j = 0; j < p.keyLength; j++) {
          if (scores[j] === 0) continue;
          const w = scores[j] / sum;
          const vj = v.row(b, kh, j);
          for (let d = 0; d < p.valueDim; d++) o[oo + d] += w * vj[d];
        }
      }
    }
  return out;
}

/** Block-sparse attention by definition: dense attention with the block mask expanded to tokens. */
export function naiveBlockSparseAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, mask: BlockMask, opts: AttentionOptions = {}): HeadTensor {
  checkMaskFits(mask, q, k, opts.causal ?? false);
  return naiveAttention(q, k, v, { ...opts, visible: (b, h, i, j) => mask.visible(b, h, i, j) });
}

export function checkMaskFits(mask: BlockMask, q: HeadTensor, k: HeadTensor, causal: boolean): void {
  const want = { batch: q.batch, heads: q.heads, queryLength: q.length, keyLength: k.length, causal };
  for (const [field, value] of Object.entries(want)) {
    const got = mask[field as keyof typeof want];
    if (got !== value) throw new InvalidArgumentError(`mask.${field}`, got, `${value} to match the attention call`);
  }
}
