/** Option values shared by the commands: one parser per kind, so every command words the error alike. */
import { InvalidArgumentError } from '../core/errors.js';

/** `--name`'s text as an integer >= min (default 1), or an error naming the option and the value. */
export function intOption(name: string, raw: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`--${name}`, raw, `an integer >= ${min}`);
  return n;
}

/**
 * `--name`'s text as a JSON object, or an error naming the option: `expected` says what to write
 * when the text is not JSON, `expectedObject` when it is JSON but not an object (default: the same).
 */
export function jsonObjectOption(name: string, raw: string, expected: string, expectedObject = expected): Record<string, unknown> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new InvalidArgumentError(`--${name}`, raw, expected);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new InvalidArgumentError(`--${name}`, raw, expectedObject);
  return json as Record<string, unknown>;
}
