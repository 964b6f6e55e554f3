/** Option values shared by the commands: one integer parser, so every command words the error alike. */
import { InvalidArgumentError } from '../core/errors.js';

/** `--name`'s text as an integer >= min (default 1), or an error naming the option and the value. */
export function intOption(name: string, raw: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`--${name}`, raw, `an integer >= ${min}`);
  return n;
}
