/**
 * How far an output is from its reference: the figures every demo, benchmark and eval reports
 * (max abs error, and relative L2 error ‖a − e‖ / ‖e‖). Tests assert with test/helpers/compare.ts.
 */
export interface OutputError {
  maxAbsError: number;
  relL2Error: number;
}

export function outputError(actual: ArrayLike<number>, expected: ArrayLike<number>): OutputError {
  let maxAbs = 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i] - expected[i];
    maxAbs = Math.max(maxAbs, Math.abs(d));
    num += d * d;
    den += expected[i] * expected[i];
  }
  return { maxAbsError: maxAbs, relL2Error: Math.sqrt(num / den) };
}

export function relativeL2Error(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  return outputError(actual, expected).relL2Error;
}
