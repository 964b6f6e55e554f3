/** The configuration layer: ModelOpt-style SparseAttentionConfig, JSON load/save, resolution by module name. */
export {
  ATTRIBUTE_DEFAULTS, CALIBRATION_DEFAULTS, DEFAULT_THRESHOLD_TRIALS, DEFAULT_THRESHOLDS, MODELOPT_ONLY_DEFAULTS, fillAttributeDefaults, resolveCalibration, thresholdForPhase, thresholdLists,
  type CalibrationConfig, type CalibrationInput, type PhaseThreshold, type PhaseThresholdLists, type SparseAttentionAttributeConfig, type SparseAttentionAttributeInput, type Threshold,
} from './attribute-config.js';
export {
  CALIBRATION_KEY, DEFAULT_PATTERN, FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT, MODELOPT_FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT, SKIP_SOFTMAX_CALIB, SKIP_SOFTMAX_DEFAULT, SPARSE_ATTENTION_CONFIG_DEFAULT,
  calibrationRequest, flashSkipSoftmaxConfig, patternLabel, sparseAttentionConfig,
  type FlashSkipSoftmaxConfig, type ModulePredicate, type SparseAttentionConfig, type SparseAttentionConfigInput, type SparseAttentionConfigJson, type SparseCfgEntry, type SparseCfgPattern,
} from './sparse-config.js';
export { loadSparseAttentionConfig, saveSparseAttentionConfig } from './json.js';
export { createModuleMethod, decidingEntry, resolveModuleConfig, resolveModuleConfigs, type ResolvedModuleConfig, type ResolveOptions } from './resolve.js';
export { compileGlob, globMatches, type NameMatcher } from './glob.js';
export { ConfigValidationError, type ConfigIssue } from './issues.js';
export {
  PRODUCER, attentionClassOf, sparseAttentionHfBlock, sparseConfigFromHfBlock, withSparseAttentionBlock,
  type PhaseFit, type SparseAttentionExport, type SparseSoftmaxMetadata,
} from './hf-sparse-attention.js';
