/**
 * Small shared checks for method settings objects (each method validates its own fields with its
 * schema; these are the pieces every method has).
 */
import { InvalidArgumentError } from '../core/errors.js';

export function blockSizeSettings(method: string, settings: Record<string, unknown>, defaults: { br: number; bc: number }): { br: number; bc: number } {
  const br = settings.br ?? defaults.br;
  const bc = settings.bc ?? defaults.bc;
  for (const [field, v] of [['br', br], ['bc', bc]] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InvalidArgumentError(`${method}.${field}`, v, 'an integer >= 1');
  }
  return { br: br as number, bc: bc as number };
}
