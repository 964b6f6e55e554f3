/**
 * The one bisection every knob search uses (calibration to a target sparsity, the eval's search for
 * ~50/80/90% sparsity). Knobs come from the methods' descriptors (MethodKnob): no table here.
 */
import { SparseAttentionError } from '../core/errors.js';
import type { MethodKnob } from '../methods/descriptor.js';
import { sparseMethods } from '../methods/index.js';

/** A method's knob from the default registry; a clear error when it has none. */
export function methodKnob(method: string, version?: string): MethodKnob {
  const knob = sparseMethods.descriptor(method, version).knob;
  if (!knob) {
    const withKnob = sparseMethods.descriptors().filter((d) => d.knob).map((d) => d.name);
    throw new SparseAttentionError(`method "${method}" has no calibration knob; calibratable: ${withKnob.join(', ')}`);
  }
  return knob;
}

/** The settings object for one value of the knob. */
export function knobSettings(knob: MethodKnob, value: number): Record<string, unknown> {
  return knob.settings ? knob.settings(value) : { [knob.setting]: value };
}

/** The upper end of the knob's range for inputs whose longest key length is `keyLength`. */
export function knobMax(knob: MethodKnob, keyLength: number): number {
  return knob.max === 'keyLength' ? keyLength : knob.max;
}

/**
 * Bisection for the knob value whose sparsity f(x) is closest to `target`, with f monotone in the
 * direction the knob says (non-increasing unless sparserWhenHigher). Returns the closest value among
 * those evaluated (f is a step function for block masks, so an exact hit is rare); outside the
 * reachable range the nearest end is the answer.
 */
export function bisectKnob(f: (x: number) => number, knob: MethodKnob, max: number, target: number, iterations: number): { value: number; measured: number; evaluations: number } {
  const round = (x: number) => (knob.integer ? Math.round(x) : x);
  let evaluations = 0;
  let best = { value: max, measured: Infinity };
  const measure = (x: number) => {
    const m = f(x);
    evaluations++;
    if (Math.abs(m - target) < Math.abs(best.measured - target)) best = { value: x, measured: m };
    return m;
  };
  // The sparse end of the range and the dense end, whichever way the knob turns.
  let [sparse, dense] = knob.sparserWhenHigher ? [max, knob.min] : [knob.min, max];
  if (measure(dense) < target && measure(sparse) > target) {
    for (let i = 0; i < iterations; i++) {
      const mid = round(knob.logScale ? Math.sqrt(sparse * dense) : (sparse + dense) / 2);
      if (mid <= Math.min(sparse, dense) || mid >= Math.max(sparse, dense)) break;
      if (measure(mid) > target) sparse = mid; // too sparse: move towards the dense end
      else dense = mid;
    }
  }
  return { ...best, evaluations };
}
