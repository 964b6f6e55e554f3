/**
 * Errors that name the parameter, the value and what was expected, so a user can fix a call
 * without reading our source: `threshold must be in (0, 1], got 1.5`.
 */
export class SparseAttentionError extends Error {
  override readonly name: string = 'SparseAttentionError';
}

/** A value that is outside what a parameter accepts. */
export class InvalidArgumentError extends SparseAttentionError {
  override readonly name = 'InvalidArgumentError';
  constructor(
    readonly parameter: string,
    readonly value: unknown,
    readonly expected: string,
  ) {
    super(`${parameter} must be ${expected}, got ${formatValue(value)}`);
  }
}

/** A request the chosen method or backend cannot serve (shape beyond limits, missing feature). */
export class UnsupportedError extends SparseAttentionError {
  override readonly name = 'UnsupportedError';
}

export function formatValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as unknown as ArrayLike<number>).length})`;
  try {
    const s = JSON.stringify(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(value);
  }
}

export function requireInteger(parameter: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer in [${min}, ${max}]`;
    throw new InvalidArgumentError(parameter, value, range);
  }
  return value;
}

export function requireFiniteNumber(parameter: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidArgumentError(parameter, value, 'a finite number');
  }
  return value;
}
