/**
 * Flash attention with flash-skip-softmax decided inside the loop (the sequential variant, v2):
 * for each query tile, walk the causally valid key tiles left to right; score the tile (QKᵀ only),
 * and if every entry satisfies exp(s − m) < threshold against the running maximum m, skip it:
 * no exponentials, no V loads, and m is not raised. The first visited tile is never skipped.
 * The decision is TileSkipDecider, the same object planBlockMask uses, so the two cannot drift.
 *
 *   q [B, H, Lq, D], k/v [B, Hkv, Lk, D|Dv] → out [B, H, Lq, Dv] f32 in q's layout
 *   tiles: br queries × bc keys (br = 1 for decode); state per query tile: m, l [br], acc [br·Dv],
 *   s [br·bc] scores of the current tile — never an L×L matrix.
 */
import { HeadTensor } from '../../core/tensor.js';
import { BlockMask, blockCausallyValid } from '../../core/block-mask.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { phaseOf } from '../../core/stats.js';
import type { PlanOptions } from '../../methods/method.js';
import { scoreTile, TileSkipDecider, tileOperands } from '../../methods/flash-skip-softmax.js';

export interface FlashSkipAttentionOptions extends PlanOptions {
  /** Skip when exp(s − m) < threshold for every entry of the tile; in (0, 1]. */
  threshold: number;
  br?: number;
  bc?: number;
}

export interface FlashSkipAttentionResult {
  output: HeadTensor;
  /** The tiles the loop computed (kept), as a block mask over the call. */
  kept: BlockMask;
  /** Causally valid tiles visited, and how many of them were skipped. */
  visitedTiles: number;
  skippedTiles: number;
}

export function flashSkipAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: FlashSkipAttentionOptions): FlashSkipAttentionResult {
  if (!(opts.threshold > 0 && opts.threshold <= 1)) throw new InvalidArgumentError('threshold', opts.threshold, 'in (0, 1]');
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) t.assertFinite(name);
  if (v.length !== k.length || v.heads !== k.heads) throw new InvalidArgumentError('v shape', v.shape, `heads ${k.heads} and length ${k.length} like k`);
  const t = tileOperands(q, k, opts);
  const { p } = t;
  const phase = opts.phase ?? phaseOf(p.queryLength);
  const br = phase === 'decode' ? 1 : opts.br ?? 128;
  const bc = opts.bc ?? 128;
  const dims = { batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, blockRows: br, blockCols: bc, causal: p.causal };
  const nQB = Math.ceil(p.queryLength / br);
  const nKB = Math.ceil(p.keyLength / bc);
  const Dv = v.headDim;
  const out = HeadTensor.zeros({ batch: p.batch, heads: p.heads, length: p.queryLength, headDim: Dv }, q.layout);
  const o = out.data as Float32Array;
  const vd = v.toFloat32Array();
  const kept = new Uint8Array(p.batch * p.heads * nQB * nKB);
  const decider = new TileSkipDecider(br, 'sequential');
  const m = new Float64Array(br); // running max of each row over kept tiles
  const l = new Float64Array(br); // running softmax denominator
  const acc = new Float64Array(br * Dv); // unnormalised output rows
  const s = new Float64Array(br * bc); // the current tile's scores
  const tileMax = new Float64Array(br);
  let visited = 0;
  let skipped = 0;
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.heads; h++) {
      const kh = Math.floor(h / p.groupSize);
      for (let qb = 0; qb < nQB; qb++) {
        const i0 = qb * br;
        const rows = Math.min(br, p.queryLength - i0);
        decider.start(rows, opts.threshold);
        m.fill(-Infinity);
        l.fill(0);
        acc.fill(0);
        for (let kb = 0; kb < nKB; kb++) {
          if (!blockCausallyValid(dims, qb, kb)) continue;
          const j0 = kb * bc;
          const cols = Math.min(bc, p.keyLength - j0);
          scoreTile(t, b, h, i0, rows, j0, cols, bc, s, tileMax);
          visited++;
          if (!decider.step(tileMax)) {
            skipped++;
            continue;
          }
          kept[((b * p.heads + h) * nQB + qb) * nKB + kb] = 1;
          for (let r = 0; r < rows; r++) {
            if (tileMax[r] === -Infinity) continue;
            const mNew = Math.max(m[r], tileMax[r]);
            const rescale = Math.exp(m[r] - mNew);
            const a = acc.subarray(r * Dv, (r + 1) * Dv);
            if (rescale !== 1) for (let d = 0; d < Dv; d++) a[d] *= rescale;
            let rowSum = 0;
            for (let c = 0; c < cols; c++) {
              const sc = s[r * bc + c];
              if (sc === -Infinity) continue;
              const w = Math.exp(sc - mNew);
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
  return { output: out, kept: BlockMask.fromDense(dims, kept), visitedTiles: visited, skippedTiles: skipped };
}
