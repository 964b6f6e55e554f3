/**
 * The built-in methods, as one plain table of descriptors (each from its folder's index.ts), and
 * the default registry built from it. A new method is one folder and one row here, or a
 * `sparseMethods.add(descriptor)` call from anywhere.
 */
import { DENSE } from './dense/index.js';
import { FLASH_SKIP_SOFTMAX_V1, FLASH_SKIP_SOFTMAX_V2 } from './flash-skip-softmax/index.js';
import { SAGE_SLA } from './sage-sla/index.js';
import { SLA } from './sla/index.js';
import { TRI_SHAPE } from './tri-shape/index.js';
import { XATTENTION } from './xattention/index.js';
import type { MethodDescriptor } from './descriptor.js';
import type { SparseMethodClass } from './method.js';
import { MethodRegistry } from './registry.js';

export const BUILTIN_METHODS: readonly MethodDescriptor[] = [DENSE, FLASH_SKIP_SOFTMAX_V1, FLASH_SKIP_SOFTMAX_V2, TRI_SHAPE, XATTENTION, SLA, SAGE_SLA];

export const sparseMethods = new MethodRegistry(BUILTIN_METHODS);

/** Registers a method class in the default registry; usable as a class decorator or a call. */
export function registerSparseMethod(name: string, version = 'v1') {
  return <T extends SparseMethodClass>(cls: T, _context?: ClassDecoratorContext): T => {
    sparseMethods.register(name, version, cls);
    return cls;
  };
}

/** The newest version of `name` when `version` is omitted. */
export function getSparseMethod(name: string, version?: string): SparseMethodClass {
  return sparseMethods.get(name, version);
}

/** Constructs a method from the default registry with its settings. */
export function createSparseMethod(name: string, settings: Record<string, unknown> = {}, version?: string) {
  return new (getSparseMethod(name, version))(settings);
}
