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
import { scoreTile, TileSkipDecider, tileOperands } from './flash-skip-tiles.js';

export interface FlashSkipAttentionOptions extends PlanOptions {
  /**
   * Skip when exp(s − m) < threshold for every entry of the tile; > 0. Above 1 (a calibrated
   * a·exp(b·target)/Lk at a short length can be) every tile but the first is skipped.
   */
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

/**
 * Online-softmax state of one query tile: running max m [br], denominator l [br] and unnormalised
 * output acc [br·Dv], in f64. Only kept tiles are added, so m is the max over kept tiles.
 */
class OnlineSoftmaxTile {
  readonly m: Float64Array;
  readonly l: Float64Array;
  readonly acc: Float64Array;

  constructor(br: number, readonly Dv: number) {
    this.m = new Float64Array(br);
    this.l = new Float64Array(br);
    this.acc = new Float64Array(br * Dv);
  }

  reset(): void {
    this.m.fill(-Infinity);
    this.l.fill(0);
    this.acc.fill(0);
  }

  /** Adds a scored tile s [rows × bc] whose keys' V rows start at vOffset(c) in vd. */
  add(rows: number, cols: number, bc: number, s: Float64Array, tileMax: Float64Array, vd: Float32Array, vOffset: (c: number) => number): void {
    const { m, l, acc, Dv } = this;
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
        const vo = vOffset(c);
        for (let d = 0; d < Dv; d++) a[d] += w * vd[vo + d];
      }
      l[r] = l[r] * rescale + rowSum;
      m[r] = mNew;
    }
  }

  /** Normalised rows into out; a row that saw no key stays zero (never NaN). */
  write(rows: number, o: Float32Array, outOffset: (r: number) => number): void {
    for (let r = 0; r < rows; r++) {
      if (this.l[r] === 0) continue;
      const oo = outOffset(r);
      for (let d = 0; d < this.Dv; d++) o[oo + d] = this.acc[r * this.Dv + d] / this.l[r];
    }
  }
}

export function flashSkipAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: FlashSkipAttentionOptions): FlashSkipAttentionResult {
  if (!(opts.threshold > 0 && Number.isFinite(opts.threshold))) throw new InvalidArgumentError('threshold', opts.threshold, 'a finite number > 0');
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
  const out = HeadTensor.zeros({ batch: p.batch, heads: p.heads, length: p.queryLength, headDim: v.headDim }, q.layout);
  const vd = v.toFloat32Array();
  const kept = new Uint8Array(p.batch * p.heads * nQB * nKB);
  const decider = new TileSkipDecider(br, 'sequential');
  const state = new OnlineSoftmaxTile(br, v.headDim);
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
        state.reset();
        for (let kb = 0; kb < nKB; kb++) {
          if (!blockCausallyValid(dims, qb, kb)) continue;
          const j0 = kb * bc;
          const cols = Math.min(bc, p.keyLength - j0);
          scoreTile(t, b, h, i0, rows, j0, cols, bc, s, tileMax);
          visited++;
          if (!decider.step(tileMax)) {
            skipped++; // no exp, no V rows: the saving a kernel gets
            continue;
          }
          kept[((b * p.heads + h) * nQB + qb) * nKB + kb] = 1;
          state.add(rows, cols, bc, s, tileMax, vd, (c) => v.offset(b, kh, j0 + c));
        }
        state.write(rows, out.data as Float32Array, (r) => out.offset(b, h, i0 + r));
      }
    }
  return { output: out, kept: BlockMask.fromDense(dims, kept), visitedTiles: visited, skippedTiles: skipped };
}
