/**
 * Calibration of flash-skip-softmax's threshold (ModelOpt's dynamic threshold):
 *   for every input and every trial threshold t, record (sparsity, t · Lk);
 *   fit scaleFactor = a · exp(b · sparsity) per phase by least squares on log(scaleFactor);
 *   at run time threshold = a · exp(b · target) / Lk.
 *
 * One pass over Q and K per input serves every trial threshold: a tile's decision depends on the
 * threshold only through its margin d = max_r (tileMax[r] − cummax[r]) (≤ 0; +∞ for the first
 * tile of a query tile), kept ⇔ d > log t. So we store one number per valid tile, never scores.
 */
import { DEFAULT_THRESHOLD_TRIALS } from '../../config/attribute-config.js';
import { type BlockMaskDims, blockCausallyValid } from '../../core/block-mask.js';
import { SparseAttentionError } from '../../core/errors.js';
import { type Phase, phaseOf } from '../../core/stats.js';
import type { HeadTensor } from '../../core/tensor.js';
import { scoreTile, tileOperands } from './flash-skip-tiles.js';

/** ModelOpt's threshold_trials (the config layer's default). */
export { DEFAULT_THRESHOLD_TRIALS };

/**
 * Observations outside this sparsity range are dropped before fitting: near 0 nothing is skipped
 * whatever the threshold, near 1 the curve saturates; both flatten the fit (AMD Quark's BLASST
 * calibrator uses the same (0.1, 0.9) filter).
 */
export const FIT_SPARSITY_RANGE: readonly [number, number] = [0.1, 0.9];

export interface TileMargins {
  phase: Phase;
  keyLength: number;
  /** One margin per causally valid tile, over batch and heads. */
  margins: Float64Array;
}

export function flashSkipTileMargins(q: HeadTensor, k: HeadTensor, opts: { br: number; bc: number; causal: boolean; scale?: number }): TileMargins {
  const t = tileOperands(q, k, { causal: opts.causal, scale: opts.scale });
  const { p } = t;
  const phase = phaseOf(p.queryLength);
  const br = phase === 'decode' ? 1 : opts.br;
  const bc = opts.bc;
  const dims: BlockMaskDims = { batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, blockRows: br, blockCols: bc, causal: p.causal };
  const nQB = Math.ceil(p.queryLength / br);
  const nKB = Math.ceil(p.keyLength / bc);
  const margins: number[] = [];
  const s = new Float64Array(br * bc);
  const tileMax = new Float64Array(br);
  const cummax = new Float64Array(br);
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.heads; h++)
      for (let qb = 0; qb < nQB; qb++) {
        const rows = Math.min(br, p.queryLength - qb * br);
        cummax.fill(-Infinity);
        let first = true;
        for (let kb = 0; kb < nKB; kb++) {
          if (!blockCausallyValid(dims, qb, kb)) continue;
          scoreTile(t, b, h, qb * br, rows, kb * bc, Math.min(bc, p.keyLength - kb * bc), bc, s, tileMax);
          let d = -Infinity;
          for (let r = 0; r < rows; r++) {
            if (tileMax[r] === -Infinity) continue;
            d = Math.max(d, tileMax[r] - Math.max(cummax[r], tileMax[r]));
            if (tileMax[r] > cummax[r]) cummax[r] = tileMax[r];
          }
          if (d > -Infinity && first) {
            d = Infinity;
            first = false;
          }
          margins.push(d);
        }
      }
  return { phase, keyLength: p.keyLength, margins: Float64Array.from(margins) };
}

/** Sparsity (skipped / valid tiles) at one threshold, from the margins. */
export function sparsityAt(m: TileMargins, threshold: number): number {
  if (m.margins.length === 0) return 0;
  const logT = Math.log(threshold);
  let kept = 0;
  for (const d of m.margins) if (d > logT) kept++;
  return 1 - kept / m.margins.length; // the same expression as the method's statistics, bit for bit
}

export interface ExponentialFitResult {
  a: number;
  b: number;
  /** In log space, where the fit is made. */
  rSquared: number;
  numPoints: number;
  /** Every (sparsity, threshold·Lk) observation, used or not. */
  observations: { length: number; threshold: number; sparsity: number; scaleFactor: number; used: boolean }[];
}

/** Least squares of log(scaleFactor) = log(a) + b · sparsity over the observations in range. */
export function fitExponential(observations: { length: number; threshold: number; sparsity: number }[], phase: Phase): ExponentialFitResult {
  const [lo, hi] = FIT_SPARSITY_RANGE;
  const all = observations.map((o) => ({ ...o, scaleFactor: o.threshold * o.length, used: o.sparsity > lo && o.sparsity < hi }));
  const pts = all.filter((o) => o.used);
  const n = pts.length;
  const mx = pts.reduce((a, o) => a + o.sparsity, 0) / n;
  const my = pts.reduce((a, o) => a + Math.log(o.scaleFactor), 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (const o of pts) {
    const dx = o.sparsity - mx;
    const dy = Math.log(o.scaleFactor) - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (n < 2 || sxx === 0) {
    const seen = observations.map((o) => o.sparsity);
    throw new SparseAttentionError(
      `flash_skip_softmax ${phase} calibration needs at least 2 observations with distinct sparsity in (${lo}, ${hi}); got ${n} ` +
        `(observed sparsities ${Math.min(...seen).toFixed(3)}..${Math.max(...seen).toFixed(3)}). Use longer inputs, other threshold trials, or sharper attention.`,
    );
  }
  const b = sxy / sxx;
  const a = Math.exp(my - b * mx);
  const rSquared = syy === 0 ? 1 : (sxy * sxy) / (sxx * syy);
  return { a, b, rSquared, numPoints: n, observations: all };
}
