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
// Configuration: ModelOpt-style SparseAttentionConfig, JSON load/save, per-module resolution.
export {
  ATTRIBUTE_DEFAULTS, BACKEND_ALIASES, BACKENDS, CALIBRATION_DEFAULTS, DEFAULT_THRESHOLD_TRIALS, attributeConfigSchema, fillAttributeDefaults, resolveCalibration, thresholdForPhase,
  type BackendChoice, type CalibrationConfig, type CalibrationInput, type PhaseThreshold, type SparseAttentionAttributeConfig, type SparseAttentionAttributeInput, type Threshold,
} from './config/attribute-config.js';
export {
  DEFAULT_PATTERN, FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT, SPARSE_ATTENTION_CONFIG_DEFAULT, flashSkipSoftmaxConfig, patternLabel, sparseAttentionConfig,
  type FlashSkipSoftmaxConfig, type ModulePredicate, type SparseAttentionConfig, type SparseAttentionConfigInput, type SparseAttentionConfigJson, type SparseCfgEntry, type SparseCfgPattern,
} from './config/sparse-config.js';
export { loadSparseAttentionConfig, saveSparseAttentionConfig } from './config/json.js';
export { createModuleMethod, decidingEntry, resolveModuleConfig, resolveModuleConfigs, type ResolvedModuleConfig, type ResolveOptions } from './config/resolve.js';
export { compileGlob, globMatches, type NameMatcher } from './config/glob.js';
export { ConfigValidationError, type ConfigIssue } from './config/issues.js';
