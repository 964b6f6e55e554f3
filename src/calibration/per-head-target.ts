/**
 * Target mode of per-head calibration: spread an overall block sparsity over heads so that the sum
 * of their errors is smallest. Each head offers a few measured points (knob value, sparsity, error);
 * the choice is the Lagrangian one, argmin_v err_h(v) − λ·(w_h/w̄)·sparsity_h(v) per head, with λ
 * bisected to the smallest value whose weighted mean sparsity meets the target. Its optimality: any
 * other choice at least as sparse has at least its total error. Points only reach the lower convex
 * hull that way, so the mean usually overshoots; heads then step back to denser points, the largest
 * error saving per block of sparsity first, while the mean stays at or above the target.
 */

export interface GridPoint {
  value: number;
  sparsity: number;
  error: number;
  /** The head's valid blocks (its weight in the mean). */
  validBlocks: number;
}

export interface TargetChoice {
  /** Per head, the index of the chosen point. */
  indices: number[];
  lambda: number;
  /** Weighted mean sparsity of the choice. */
  sparsity: number;
}

export function chooseForTarget(points: readonly (readonly GridPoint[])[], target: number): TargetChoice {
  const weights = points.map((p) => p[0].validBlocks);
  const W = weights.reduce((a, b) => a + b, 0);
  const wMean = W / points.length;
  const mean = (idx: readonly number[]) => (W === 0 ? 0 : idx.reduce((a, j, h) => a + points[h][j].sparsity * weights[h], 0) / W);
  const pick = (lambda: number) => points.map((pts, h) => {
    const w = wMean === 0 ? 1 : weights[h] / wMean;
    let best = 0;
    for (let j = 1; j < pts.length; j++) {
      const a = pts[j].error - lambda * w * pts[j].sparsity;
      const b = pts[best].error - lambda * w * pts[best].sparsity;
      // Ties go to the sparser point, so λ = 0 already takes sparsity that costs no error.
      if (a < b || (a === b && pts[j].sparsity > pts[best].sparsity)) best = j;
    }
    return best;
  });
  let lambda = 0;
  let indices = pick(0);
  if (mean(indices) < target) {
    let hi = 1;
    while (mean(pick(hi)) < target && hi < 1e12) hi *= 4;
    let lo = hi === 1 ? 0 : hi / 4;
    for (let i = 0; i < 100 && mean(pick(hi)) >= target; i++) {
      const mid = (lo + hi) / 2;
      if (mid === lo || mid === hi) break;
      if (mean(pick(mid)) >= target) hi = mid;
      else lo = mid;
    }
    lambda = hi;
    indices = pick(hi);
  }
  stepBack(points, indices, weights, W, target);
  return { indices, lambda, sparsity: mean(indices) };
}

/** Moves heads to denser points that lower their error while the weighted mean stays ≥ target (in place). */
function stepBack(points: readonly (readonly GridPoint[])[], indices: number[], weights: readonly number[], W: number, target: number): void {
  if (W === 0) return;
  let total = indices.reduce((a, j, h) => a + points[h][j].sparsity * weights[h], 0);
  for (;;) {
    let move: { h: number; j: number; rate: number } | null = null;
    for (let h = 0; h < points.length; h++) {
      const cur = points[h][indices[h]];
      for (let j = 0; j < points[h].length; j++) {
        const p = points[h][j];
        const lost = (cur.sparsity - p.sparsity) * weights[h];
        const saved = cur.error - p.error;
        if (saved <= 0 || lost < 0 || (total - lost) / W < target) continue;
        const rate = lost === 0 ? Infinity : saved / lost;
        if (!move || rate > move.rate) move = { h, j, rate };
      }
    }
    if (!move) return;
    total -= (points[move.h][indices[move.h]].sparsity - points[move.h][move.j].sparsity) * weights[move.h];
    indices[move.h] = move.j;
  }
}
