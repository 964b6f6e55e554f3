/**
 * Validation of a kernel against the CPU reference, for benchmarks that validate fixed shapes of
 * their own (the case harness validates each case's twin in validateCase). Every check throws
 * `validation failed: ...` when it does not hold, so nothing is timed after a failed one.
 */
import { outputError } from '../core/error-metrics.js';
import type { BlockMask } from '../core/block-mask.js';
import type { HeadTensor } from '../core/tensor.js';
import { blocksDiffering } from './harness.js';

export class BenchValidationError extends Error {
  override readonly name = 'BenchValidationError';
}

export interface ReferenceCheck {
  label: string;
  /** ‖a − e‖ / ‖e‖ over the whole output. */
  relativeL2: number;
  maxAbsError: number;
  /** The largest relative L2 error that passes. */
  limit: number;
}

/** An output against the CPU reference's, by relative L2 error (NaN fails). */
export function checkOutput(label: string, actual: Float32Array | HeadTensor, expected: Float32Array | HeadTensor, limit: number): ReferenceCheck {
  const a = actual instanceof Float32Array ? actual : actual.toFloat32Array();
  const e = expected instanceof Float32Array ? expected : (actual instanceof Float32Array ? expected : expected.toLayout(actual.layout)).toFloat32Array();
  if (a.length !== e.length) throw new BenchValidationError(`validation failed: ${label}: ${a.length} values, the reference has ${e.length}`);
  const { relL2Error, maxAbsError } = outputError(a, e);
  if (!(relL2Error <= limit)) throw new BenchValidationError(`validation failed: ${label}: relative L2 error ${relL2Error} (limit ${limit})`);
  return { label, relativeL2: relL2Error, maxAbsError, limit };
}

/** A block mask planned by a kernel against the CPU method's plan: the same kept blocks. */
export function checkSameBlocks(label: string, actual: BlockMask, expected: BlockMask): void {
  const n = blocksDiffering(actual, expected);
  if (n !== 0) throw new BenchValidationError(`validation failed: ${label}: ${n} blocks differ from the CPU plan`);
}

/** Integer outputs (kept tile lists, block lookup tables) that must equal the CPU's exactly. */
export function checkSameValues(label: string, actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  let same = actual.length === expected.length;
  for (let i = 0; same && i < actual.length; i++) same = actual[i] === expected[i];
  if (!same) throw new BenchValidationError(`validation failed: ${label} differ from the CPU`);
}
