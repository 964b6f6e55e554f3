/**
 * The tile machinery of flash-skip-softmax, shared by the method's planBlockMask, the in-loop CPU
 * kernel and calibration, so the three cannot drift: scoring one br×bc tile from Q and K, and the
 * skip decision against each row's running maximum.
 *
 *   kept ⇔ ∃ r: tileMax[r] − max(m[r], tileMax[r]) > log(threshold)   (first visited tile always kept)
 *   'cummax':     m = max over ALL earlier tiles (ModelOpt v1, simulated on full score matrices)
 *   'sequential': m = max over KEPT earlier tiles only (a kernel: a skipped tile is never loaded)
 */
import { type AttentionProblem, describeAttention } from '../../core/attention-shape.js';
import type { HeadTensor } from '../../core/tensor.js';
import type { PlanOptions } from '../method.js';

export type FlashSkipVariant = 'cummax' | 'sequential';

/**
 * The per-query-tile decision state: the running maximum m[r] of each row.
 * Call start() per query tile, then step(tileMax) for each causally valid key tile in order.
 */
export class TileSkipDecider {
  private readonly m: Float64Array;
  private rows = 0;
  private logThreshold = 0;
  private seenFirst = false;
  /** Rows whose running maximum rose in the last step (FlashAttention must rescale them). */
  raised = 0;

  constructor(maxRows: number, readonly variant: FlashSkipVariant) {
    this.m = new Float64Array(maxRows);
  }

  start(rows: number, threshold: number): void {
    this.rows = rows;
    this.logThreshold = Math.log(threshold);
    this.seenFirst = false;
    this.m.fill(-Infinity, 0, rows);
  }

  /** tileMax[r] = max score of row r in the tile (−∞ when the row sees none of it). */
  step(tileMax: ArrayLike<number>): boolean {
    let keep = false;
    let any = false;
    for (let r = 0; r < this.rows; r++) {
      const t = tileMax[r];
      if (t === -Infinity) continue;
      any = true;
      if (t - Math.max(this.m[r], t) > this.logThreshold) keep = true;
    }
    // The first tile holding any visible score is never skipped: it seeds the running maximum.
    if (any && !this.seenFirst) keep = true;
    if (any) this.seenFirst = true;
    this.raised = 0;
    if (keep || this.variant === 'cummax') {
      for (let r = 0; r < this.rows; r++) {
        if (tileMax[r] > this.m[r]) {
          this.m[r] = tileMax[r];
          this.raised++;
        }
      }
    }
    return keep;
  }
}

/** Direct f32 views of Q and K plus the call's shape, for the tile loops. */
export interface TileOperands {
  p: AttentionProblem;
  q: HeadTensor;
  k: HeadTensor;
  qd: Float32Array;
  kd: Float32Array;
}

export function tileOperands(q: HeadTensor, k: HeadTensor, opts: PlanOptions): TileOperands {
  const p = describeAttention(q, k, k, opts);
  return { p, q, k, qd: q.toFloat32Array(), kd: k.toFloat32Array() };
}

/**
 * One tile of scores: s[r·bc + c] = scale · q(i0+r)·k(j0+c), −∞ where causally hidden; tileMax[r]
 * is the row maximum. Shapes: s [br·bc], tileMax [br].
 */
export function scoreTile(t: TileOperands, b: number, h: number, i0: number, rows: number, j0: number, cols: number, bc: number, s: Float64Array, tileMax: Float64Array): void {
  const { p, q, k, qd, kd } = t;
  const kh = Math.floor(h / p.groupSize);
  const D = p.headDim;
  for (let r = 0; r < rows; r++) {
    const i = i0 + r;
    const qo = q.offset(b, h, i);
    const last = p.causal ? Math.min(cols, p.queryOffset + i - j0 + 1) : cols;
    let mx = -Infinity;
    for (let c = 0; c < last; c++) {
      const ko = k.offset(b, kh, j0 + c);
      let dot = 0;
      for (let d = 0; d < D; d++) dot += qd[qo + d] * kd[ko + d];
      const v = dot * p.scale;
      s[r * bc + c] = v;
      if (v > mx) mx = v;
    }
    for (let c = Math.max(last, 0); c < cols; c++) s[r * bc + c] = -Infinity;
    tileMax[r] = mx;
  }
}

