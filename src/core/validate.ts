/**
 * The one validation layer: the checks the API (`sparseAttention`, `HeadTensor`), the methods'
 * settings, the CLI and the config loader share, so a bad value reads the same wherever it enters:
 *   `q.data must be a Float32Array (f32) or a Uint16Array of f16 bits (f16), got Float64Array(8)`.
 * Checks run before any backend is chosen and before any GPU work is encoded.
 */
import { InvalidArgumentError, formatValue } from './errors.js';

/** The typed-array kinds a tensor may hold, per dtype (f16 is IEEE binary16 bits, see f16.ts). */
export const TENSOR_DATA_KINDS = 'a Float32Array (f32), a Uint16Array of f16 bits or a Float16Array (f16)';

/** The runtime's Float16Array when it has one (Node 20 has none). */
const Float16ArrayCtor = (globalThis as { Float16Array?: new (...args: never[]) => ArrayBufferView }).Float16Array;

/**
 * Tensor storage of an exact kind: Float32Array → f32, Uint16Array → f16 bits, Float16Array → f16
 * (its bits, no copy). Anything else (Float64Array, Int32Array, Uint8Array, a plain array, a Node
 * Buffer) is refused: its bytes would be read as some other number format and the result be silently wrong.
 */
export function tensorStorage(parameter: string, data: unknown): Float32Array | Uint16Array {
  if (data instanceof Float32Array || data instanceof Uint16Array) {
    if (data.constructor === Float32Array || data.constructor === Uint16Array) return data;
  }
  if (Float16ArrayCtor && data instanceof Float16ArrayCtor) {
    const v = data as ArrayBufferView & { length: number };
    return new Uint16Array(v.buffer, v.byteOffset, v.length);
  }
  throw new InvalidArgumentError(parameter, data, TENSOR_DATA_KINDS);
}

export function requireBoolean(parameter: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new InvalidArgumentError(parameter, value, 'true or false');
  return value;
}

/** An optional boolean: undefined stays undefined (the caller's default applies), anything else must be a boolean. */
export function optionalBoolean(parameter: string, value: unknown): boolean | undefined {
  return value === undefined ? undefined : requireBoolean(parameter, value);
}

export function requireEnum<T extends string>(parameter: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(parameter, value, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  }
  return value as T;
}

/** Refuses any key of `object` not in `known`, naming the key and the known ones (`what`: "dense setting", "sparseAttention option"). */
export function rejectUnknownKeys(what: string, object: Record<string, unknown>, known: Iterable<string>): void {
  const set = new Set(known);
  for (const key of Object.keys(object)) {
    if (!set.has(key)) throw new InvalidArgumentError(`${what} "${key}"`, object[key], `one of ${[...set].join(', ')} (unknown key)`);
  }
}

/** A plain object (settings, options), not null, not an array. */
export function requireRecord(parameter: string, value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new InvalidArgumentError(parameter, value, 'an object');
  return value as Record<string, unknown>;
}

/** One line for an error value (errors.ts formats; re-exported so callers of this layer need one import). */
export { formatValue };
