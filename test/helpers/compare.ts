/**
 * The one comparison helper every test uses: |a - e| <= atol + rtol·|e| elementwise, and on
 * failure the first mismatches with their indices (and the worst one).
 */
import assert from 'node:assert/strict';
import type { HeadTensor } from '../../src/core/tensor.js';

export interface Tolerance {
  atol: number;
  rtol: number;
}

export const TOL = {
  f32: { atol: 1e-5, rtol: 1e-4 },
  f16: { atol: 2e-3, rtol: 1e-2 },
} as const satisfies Record<string, Tolerance>;

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance, label = ''): void {
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length} != ${expected.length}`);
  const bad: string[] = [];
  let worst = { i: -1, err: 0 };
  let count = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const err = Math.abs(a - e);
    if (!(err <= tol.atol + tol.rtol * Math.abs(e))) {
      count++;
      if (bad.length < 8) bad.push(`  [${i}] got ${a}, want ${e} (|diff| ${err.toExponential(2)})`);
      if (!(err <= worst.err)) worst = { i, err };
    }
  }
  if (count > 0) {
    assert.fail(`${label}: ${count}/${expected.length} values outside atol ${tol.atol} + rtol ${tol.rtol}·|ref|; worst at [${worst.i}]\n${bad.join('\n')}`);
  }
}

/** Compares two head tensors in BHLD order whatever their layouts. */
export function assertTensorsClose(actual: HeadTensor, expected: HeadTensor, tol: Tolerance, label = ''): void {
  assert.deepEqual(actual.shape, expected.shape, `${label}: shapes differ`);
  assertClose(actual.toLayout('BHLD').toFloat32Array(), expected.toLayout('BHLD').toFloat32Array(), tol, label);
}
