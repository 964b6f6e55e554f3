/**
 * Pre-softmax score matrices [B, H, Lq, Lk] (f32, row-major), the input of a method's
 * `calculateSparsity`. Only for references, tests and small calls: it is the L×L matrix that the
 * kernels exist to avoid.
 */
import { type AttentionOptions, describeAttention } from './attention-shape.js';
import { InvalidArgumentError } from './errors.js';
import type { HeadTensor } from './tensor.js';

export interface Scores {
  batch: number;
  heads: number;
  queryLength: number;
  keyLength: number;
  /** [B, H, Lq, Lk]; causally masked entries are -Infinity. */
  data: Float32Array;
}

/** scale · Q Kᵀ per head (GQA-mapped), with -Infinity above the right-aligned causal diagonal. */
export function computeScores(q: HeadTensor, k: HeadTensor, opts: AttentionOptions = {}): Scores {
  const p = describeAttention(q, k, k, opts);
  const Lq = p.queryLength;
  const Lk = p.keyLength;
  const data = new Float32Array(p.batch * p.heads * Lq * Lk);
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.heads; h++) {
      const kh = Math.floor(h / p.groupSize);
      for (let i = 0; i < Lq; i++) {
        const qi = q.row(b, h, i);
        const base = ((b * p.heads + h) * Lq + i) * Lk;
        for (let j = 0; j < Lk; j++) {
          if (p.causal && j > p.queryOffset + i) {
            data[base + j] = -Infinity;
            continue;
          }
          const kj = k.row(b, kh, j);
          let s = 0;
          for (let d = 0; d < p.headDim; d++) s += qi[d] * kj[d];
          data[base + j] = s * p.scale;
        }
      }
    }
  return { batch: p.batch, heads: p.heads, queryLength: Lq, keyLength: Lk, data };
}

export function checkScores(scores: Scores): void {
  const n = scores.batch * scores.heads * scores.queryLength * scores.keyLength;
  if (scores.data.length !== n) throw new InvalidArgumentError('scores.data.length', scores.data.length, `${n} (B·H·Lq·Lk)`);
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(scores.data[i])) throw new InvalidArgumentError(`scores.data[${i}]`, NaN, 'a number (NaN found in attention scores)');
  }
}
