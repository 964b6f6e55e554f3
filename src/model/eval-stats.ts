/**
 * The statistics of `sparse-attn eval`: 95% confidence intervals over prompts and the
 * sparsity/Δloss Pareto front.
 *   mean of per-prompt differences (Δloss, Δlog-prob): Student-t interval, mean ± t(0.975, n−1)·s/√n
 *     (paired: each prompt's sparse score minus its own dense score, so prompt difficulty cancels)
 *   proportions (agreement, needle accuracy): Wilson score interval, which stays inside [0, 1] and
 *     is not degenerate at 0/n or n/n, where the normal interval collapses to a point
 * Both are deterministic (no resampling), so a report is reproducible from its per-prompt values.
 */

export interface Interval {
  lo: number;
  hi: number;
}

// Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];
const Z975 = 1.959964;

/** t(0.975, df): the table up to 30, then the Cornish-Fisher expansion (error < 1e-3 beyond 30). */
export function tQuantile975(df: number): number {
  if (!(df >= 1)) return Infinity;
  if (df <= 30) return T975[Math.floor(df) - 1];
  const z = Z975;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2);
}

/** 95% t-interval of the mean of `xs`; one value gives (−∞, ∞): a single prompt bounds nothing. */
export function meanInterval(xs: readonly number[]): Interval {
  const n = xs.length;
  if (n === 0) return { lo: NaN, hi: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { lo: -Infinity, hi: Infinity };
  const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
  const half = tQuantile975(n - 1) * Math.sqrt(variance / n);
  return { lo: mean - half, hi: mean + half };
}

/** 95% Wilson score interval of `successes` out of `n`. */
export function wilsonInterval(successes: number, n: number): Interval {
  if (n === 0) return { lo: NaN, hi: NaN };
  const z = Z975;
  const p = successes / n;
  const denom = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  // At 0/n and n/n the bound is exactly 0 or 1; rounding would put it a hair inside.
  return { lo: successes === 0 ? 0 : Math.max(0, centre - half), hi: successes === n ? 1 : Math.min(1, centre + half) };
}

/** A point of a sparsity/Δloss trade-off: higher sparsity and lower Δloss are better. */
export interface TradeoffPoint {
  sparsity: number;
  lossDelta: number;
}

/**
 * The non-dominated points, by increasing sparsity: a point is dropped when another has at least
 * its sparsity and at most its Δloss, better in one of them (exact duplicates keep the first).
 */
export function paretoFront<T extends TradeoffPoint>(points: readonly T[]): T[] {
  const order = points.map((p, i) => ({ p, i })).sort((a, b) => b.p.sparsity - a.p.sparsity || a.p.lossDelta - b.p.lossDelta || a.i - b.i);
  const front: T[] = [];
  let best = Infinity;
  for (const { p } of order) {
    if (!Number.isFinite(p.sparsity) || !Number.isFinite(p.lossDelta)) continue;
    // Sorted by sparsity descending: p survives only with a strictly lower Δloss than every sparser point.
    if (p.lossDelta < best) {
      front.push(p);
      best = p.lossDelta;
    }
  }
  return front.reverse();
}
