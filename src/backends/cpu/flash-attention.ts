/**
 * Flash (online-softmax) attention on the CPU: the same loop a GPU kernel runs, over tiles of
 * br queries × bc keys, visiting only the key blocks a BlockMask keeps. Dense attention is the
 * same loop over every causally valid block. Equal to naiveAttention up to float rounding.
 *
 *   q [B, H, Lq, D], k/v [B, Hkv, Lk, D|Dv] → out [B, H, Lq, Dv] f32 in q's layout
 *   per query row: running max m, running sum l, accumulator acc[Dv]; per visited tile:
 *     m' = max(m, max_j s_j);  acc = acc·e^(m-m') + Σ_j e^(s_j-m') v_j;  l = l·e^(m-m') + Σ_j e^(s_j-m')
 */
import { type AttentionOptions, describeAttention } from '../../core/attention-shape.js';
import { BlockMask } from '../../core/block-mask.js';
import { tokenRuleVisible } from '../../core/token-rule.js';
import { HeadTensor } from '../../core/tensor.js';
import { checkMaskFits } from './naive-attention.js';

export interface FlashAttentionOptions extends AttentionOptions {
  /** Kept blocks; when absent, every causally valid block of size br × bc. */
  mask?: BlockMask;
  br?: number;
  bc?: number;
}

export function flashAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: FlashAttentionOptions = {}): HeadTensor {
  const p = describeAttention(q, k, v, opts);
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) t.assertFinite(name);
  const mask = opts.mask ?? BlockMask.full({
    batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength,
    blockRows: opts.br ?? 64, blockCols: opts.bc ?? 64, causal: p.causal,
  });
  checkMaskFits(mask, q, k, p.causal);
  const { blockRows: br, blockCols: bc } = mask;
  const Dv = p.valueDim;
  const out = HeadTensor.zeros({ batch: p.batch, heads: p.heads, length: p.queryLength, headDim: Dv }, q.layout);
  const o = out.data as Float32Array;
  const m = new Float64Array(br);
  const l = new Float64Array(br);
  const acc = new Float64Array(br * Dv);
  const s = new Float64Array(bc);
  // Direct indexing into f32 storage: row() views would allocate per (row, key) in the hot loop.
  const qd = q.toFloat32Array();
  const kd = k.toFloat32Array();
  const vd = v.toFloat32Array();
  const D = p.headDim;
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.heads; h++) {
      const kh = Math.floor(h / p.groupSize);
      const tokenRule = mask.tokenRuleFor(h);
      for (let qb = 0; qb < mask.numQueryBlocks; qb++) {
        const i0 = qb * br;
        const rows = Math.min(br, p.queryLength - i0);
        m.fill(-Infinity);
        l.fill(0);
        acc.fill(0);
        for (const kb of mask.keptBlocks(b, h, qb)) {
          const j0 = kb * bc;
          const cols = Math.min(bc, p.keyLength - j0);
          for (let r = 0; r < rows; r++) {
            const i = i0 + r;
            const qo = q.offset(b, h, i);
            let tileMax = -Infinity;
            for (let c = 0; c < cols; c++) {
              const j = j0 + c;
              const hidden = (p.causal && j > p.queryOffset + i) || (tokenRule && !tokenRuleVisible(tokenRule, i, j, p.queryLength, p.queryOffset));
              if (hidden) {
                s[c] = -Infinity;
                continue;
              }
              const ko = k.offset(b, kh, j);
              let dot = 0;
              for (let d = 0; d < D; d++) dot += qd[qo + d] * kd[ko + d];
              s[c] = dot * p.scale;
              if (s[c] > tileMax) tileMax = s[c];
            }
            if (tileMax === -Infinity) continue;
            const mNew = Math.max(m[r], tileMax);
            const rescale = Math.exp(m[r] - mNew);
            const a = acc.subarray(r * Dv, (r + 1) * Dv);
            if (rescale !== 1) for (let d = 0; d < Dv; d++) a[d] *= rescale;
            let rowSum = 0;
            for (let c = 0; c < cols; c++) {
              if (s[c] === -Infinity) continue;
              const w = Math.exp(s[c] - mNew);
              rowSum += w;
              const vo = v.offset(b, kh, j0 + c);
              for (let d = 0; d < Dv; d++) a[d] += w * vd[vo + d];
            }
            l[r] = l[r] * rescale + rowSum;
            m[r] = mNew;
          }
        }
        for (let r = 0; r < rows; r++) {
          if (l[r] === 0) continue; // no visible key: the row stays zero
          const oo = out.offset(b, h, i0 + r);
          for (let d = 0; d < Dv; d++) o[oo + d] = acc[r * Dv + d] / l[r];
        }
      }
    }
  return out;
}
