/**
 * The one setting per method that calibration turns to reach a target sparsity, as a plain table.
 * flash_skip_softmax has a model (the exponential fit in flash-skip-fit.ts); the others are searched
 * by bisection on the sparsity their planBlockMask measures, which falls as the setting grows.
 * A new method is one row here; setting names are those of the method's own settings schema.
 */
export interface SearchKnob {
  kind: 'search';
  /** The method's setting that calibration sets. */
  setting: string;
  /** Search range (inclusive); the upper end is clipped to the longest input's length for token counts. */
  min: number;
  max: number | 'maxKeyLength';
  integer: boolean;
  /** Bisect in log space (ratios spanning decades). */
  logScale: boolean;
}

export interface FitKnob {
  kind: 'exponential_fit';
  setting: 'threshold';
}

export type CalibrationKnob = SearchKnob | FitKnob;

export const CALIBRATION_KNOBS: Readonly<Record<string, CalibrationKnob>> = {
  flash_skip_softmax: { kind: 'exponential_fit', setting: 'threshold' },
  // Cumulative attention mass each query block keeps (tau): more mass, more blocks.
  xattention: { kind: 'search', setting: 'threshold', min: 1e-3, max: 1, integer: false, logScale: false },
  // Fraction of key blocks each query block attends to exactly.
  sla: { kind: 'search', setting: 'topkRatio', min: 1e-3, max: 1, integer: false, logScale: true },
  sage_sla: { kind: 'search', setting: 'topkRatio', min: 1e-3, max: 1, integer: false, logScale: true },
  // Tokens of the local band; sink and last-query rows stay as configured.
  tri_shape: { kind: 'search', setting: 'localWindow', min: 1, max: 'maxKeyLength', integer: true, logScale: true },
};

/**
 * Bisection for a setting x with f(x) non-increasing: returns the x whose f is closest to target
 * among those evaluated (f is a step function for block masks, so an exact hit is rare).
 */
export function bisectDecreasing(f: (x: number) => number, knob: SearchKnob, max: number, target: number, iterations: number): { value: number; measured: number; evaluations: number } {
  const round = (x: number) => (knob.integer ? Math.round(x) : x);
  let evaluations = 0;
  let best = { value: max, measured: Infinity };
  const measure = (x: number) => {
    const m = f(x);
    evaluations++;
    if (Math.abs(m - target) < Math.abs(best.measured - target)) best = { value: x, measured: m };
    return m;
  };
  let lo = knob.min;
  let hi = max;
  // Outside the reachable range the nearest end is the answer.
  if (measure(hi) < target && measure(lo) > target) {
    for (let i = 0; i < iterations; i++) {
      const mid = round(knob.logScale ? Math.sqrt(lo * hi) : (lo + hi) / 2);
      if (mid <= lo || mid >= hi) break;
      if (measure(mid) > target) lo = mid; // too sparse: grow the setting
      else hi = mid;
    }
  }
  return { ...best, evaluations };
}
