/**
 * The built-in methods, as one plain table, and the default registry built from it.
 * A new method is one file in this folder and one row here.
 */
import { DenseMethod } from './dense/dense.js';
import { FlashSkipSoftmax, FlashSkipSoftmaxSequential } from './flash-skip-softmax/flash-skip-softmax.js';
import { TriShapeMethod } from './tri-shape/tri-shape.js';
import { XAttentionMethod } from './xattention/xattention.js';
import { SageSlaMethod } from './sage-sla/sage-sla.js';
import { SlaMethod } from './sla/sla.js';
import type { SparseMethodClass } from './method.js';
import { MethodRegistry, type RegisteredMethod } from './registry.js';

export const BUILTIN_METHODS: readonly RegisteredMethod[] = [
  { name: 'dense', version: 'v1', cls: DenseMethod },
  { name: 'flash_skip_softmax', version: 'v1', cls: FlashSkipSoftmax },
  { name: 'flash_skip_softmax', version: 'v2', cls: FlashSkipSoftmaxSequential },
  { name: 'tri_shape', version: 'v1', cls: TriShapeMethod },
  { name: 'xattention', version: 'v1', cls: XAttentionMethod },
  { name: 'sla', version: 'v1', cls: SlaMethod },
  { name: 'sage_sla', version: 'v1', cls: SageSlaMethod },
];

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
