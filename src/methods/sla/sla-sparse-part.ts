/**
 * SLA's sparse part Os: exact softmax attention of each query row over the tokens of its query
 * block's selected key blocks only, normalised over those tokens (and, when causal, over the
 * visible ones). The logits come from a hook so SLA (f32 dot products) and SageSLA (int8 dot
 * products, rescaled) share the softmax and the P·V loop.
 *
 *   lut [B, H, nQB, topk], v [B, Hkv, Lk, Dv] f32 BHLD  →  os [B, H, Lq, Dv] f32 BHLD
 *   per query row: the ≤ topk·BLKK logits of its selected tokens, max, exp, sum, Σ p·v / Σ p.
 * A row that sees no selected key (a causal row whose selected blocks all lie in its future) gets
 * zeros, never NaN.
 */
import type { AttentionProblem } from '../../core/attention-shape.js';
import { selectedBlocks, type SlaBlockMap } from './sla-block-map.js';

/**
 * Writes the natural-log-domain logits of query (b, h, i) against keys [j0, j1) into
 * out[at .. at + j1 - j0). Called once per query row and selected block, so [j0, j1) never
 * crosses a key block.
 */
export type LogitsHook = (b: number, h: number, i: number, j0: number, j1: number, out: Float64Array, at: number) => void;

export function slaSparsePart(p: AttentionProblem, map: SlaBlockMap, logits: LogitsHook, v: Float32Array): Float32Array {
  const { blockQ, blockK, numQueryBlocks: nQB } = map;
  const Dv = p.valueDim;
  const Lk = p.keyLength;
  const os = new Float32Array(p.batch * p.heads * p.queryLength * Dv);
  const s = new Float64Array(map.topk * blockK);
  const segStart = new Int32Array(map.topk);
  const segEnd = new Int32Array(map.topk);
  const acc = new Float64Array(Dv);
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.heads; h++) {
      const vBase = (b * p.kvHeads + Math.floor(h / p.groupSize)) * Lk * Dv;
      for (let qb = 0; qb < nQB; qb++) {
        const blocks = selectedBlocks(map, b, h, qb);
        const i1 = Math.min((qb + 1) * blockQ, p.queryLength);
        for (let i = qb * blockQ; i < i1; i++) {
          const jMax = p.causal ? p.queryOffset + i + 1 : Lk;
          let n = 0;
          let segs = 0;
          for (const kb of blocks) {
            const j0 = kb * blockK;
            const j1 = Math.min(j0 + blockK, Lk, jMax);
            if (j1 <= j0) continue;
            logits(b, h, i, j0, j1, s, n);
            segStart[segs] = j0;
            segEnd[segs++] = j1;
            n += j1 - j0;
          }
          if (n === 0) continue;
          let max = -Infinity;
          for (let t = 0; t < n; t++) if (s[t] > max) max = s[t];
          let sum = 0;
          acc.fill(0);
          let t = 0;
          for (let g = 0; g < segs; g++) {
            for (let j = segStart[g]; j < segEnd[g]; j++, t++) {
              const w = Math.exp(s[t] - max);
              sum += w;
              const vo = vBase + j * Dv;
              for (let e = 0; e < Dv; e++) acc[e] += w * v[vo + e];
            }
          }
          const oo = ((b * p.heads + h) * p.queryLength + i) * Dv;
          for (let e = 0; e < Dv; e++) os[oo + e] = acc[e] / sum;
        }
      }
    }
  return os;
}

/** The f32 logits hook: scale · q_i · k_j over BHLD f32 copies of q and k. */
export function floatLogits(p: AttentionProblem, q: Float32Array, k: Float32Array): LogitsHook {
  const D = p.headDim;
  return (b, h, i, j0, j1, out, at) => {
    const qo = ((b * p.heads + h) * p.queryLength + i) * D;
    const kBase = (b * p.kvHeads + Math.floor(h / p.groupSize)) * p.keyLength * D;
    for (let j = j0; j < j1; j++) {
      const ko = kBase + j * D;
      let dot = 0;
      for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
      out[at + j - j0] = dot * p.scale;
    }
  };
}
