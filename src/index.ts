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
// WebGPU backend and backend selection (the npm `webgpu` package itself is imported only on first device use)
export { createBackend, resolveBackend, BACKEND_CHOICES, type BackendChoice } from './backends/index.js';
export { gatherPagedKv } from './backends/cpu/paged-kv.js';
export * from './backends/webgpu/index.js';
