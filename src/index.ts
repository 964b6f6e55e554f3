/** Public API of sparse-attention. */
export * from './core/errors.js';
export * from './core/tensor.js';
export * from './core/f16.js';
export * from './core/rng.js';
export * from './core/attention-shape.js';
export * from './core/token-rule.js';
export * from './core/block-mask.js';
export * from './core/scores.js';
export * from './core/stats.js';
export * from './core/structured-inputs.js';
export * from './methods/method.js';
export { MethodRegistry, compareVersions, type RegisteredMethod } from './methods/registry.js';
export { BUILTIN_METHODS, sparseMethods, registerSparseMethod, getSparseMethod, createSparseMethod } from './methods/index.js';
export { DenseMethod } from './methods/dense.js';
export type { AttentionBackend, BackendName } from './backends/backend.js';
export { cpuBackend, flashAttention, naiveAttention, naiveBlockSparseAttention } from './backends/cpu/index.js';
export { sparseAttention, type SparseAttentionOptions, type SparseAttentionResult } from './attention.js';
// Tri-shape and XAttention (methods-tx)
export { TriShapeMethod, TRI_SHAPE_DEFAULTS, triShapeSettings, triShapeTokenRule, triShapeBlockMask, triShapeIsDense, type TriShapeSettings } from './methods/tri-shape.js';
export { XAttentionMethod, XATTENTION_DEFAULTS, xattentionSettings, type XAttentionSettings } from './methods/xattention.js';
export {
  estimateXAttention, estimateXAttentionChunk, checkXAttentionParams, selectBlocks as selectXAttentionBlocks,
  type XAttentionParams, type XAttentionEstimate,
} from './methods/xattention-estimate.js';
