/** The configuration layer: ModelOpt-style SparseAttentionConfig, JSON load/save, resolution by module name. */
export {
  ATTRIBUTE_DEFAULTS, CALIBRATION_DEFAULTS, DEFAULT_THRESHOLD_TRIALS, fillAttributeDefaults, resolveCalibration, thresholdForPhase,
  type CalibrationConfig, type CalibrationInput, type PhaseThreshold, type SparseAttentionAttributeConfig, type SparseAttentionAttributeInput, type Threshold,
} from './attribute-config.js';
export {
  DEFAULT_PATTERN, FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT, SPARSE_ATTENTION_CONFIG_DEFAULT, flashSkipSoftmaxConfig, patternLabel, sparseAttentionConfig,
  type FlashSkipSoftmaxConfig, type ModulePredicate, type SparseAttentionConfig, type SparseAttentionConfigInput, type SparseAttentionConfigJson, type SparseCfgEntry, type SparseCfgPattern,
} from './sparse-config.js';
export { loadSparseAttentionConfig, saveSparseAttentionConfig } from './json.js';
export { createModuleMethod, decidingEntry, resolveModuleConfig, resolveModuleConfigs, type ResolvedModuleConfig, type ResolveOptions } from './resolve.js';
export { compileGlob, globMatches, type NameMatcher } from './glob.js';
export { ConfigValidationError, type ConfigIssue } from './issues.js';
