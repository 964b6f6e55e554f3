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
export * from './core/error-metrics.js';
export * from './methods/method.js';
export { MethodRegistry, compareVersions, type RegisteredMethod } from './methods/registry.js';
export { BUILTIN_METHODS, sparseMethods, registerSparseMethod, getSparseMethod, createSparseMethod } from './methods/index.js';
export { DenseMethod } from './methods/dense/dense.js';
export type { AttentionBackend, BackendName } from './backends/backend.js';
export { cpuBackend, flashAttention, naiveAttention, naiveBlockSparseAttention } from './backends/cpu/index.js';
export { sparseAttention, type SparseAttentionOptions, type SparseAttentionResult } from './attention.js';
// Tri-shape and XAttention (methods-tx)
export { TriShapeMethod, TRI_SHAPE_DEFAULTS, triShapeSettings, triShapeTokenRule, triShapeBlockMask, triShapeIsDense, type TriShapeSettings } from './methods/tri-shape/tri-shape.js';
export { XAttentionMethod, XATTENTION_DEFAULTS, xattentionSettings, type XAttentionSettings } from './methods/xattention/xattention.js';
export {
  estimateXAttention, estimateXAttentionChunk, checkXAttentionParams, selectBlocks as selectXAttentionBlocks,
  type XAttentionParams, type XAttentionEstimate,
} from './methods/xattention/antidiagonal-estimate.js';
// Configuration: ModelOpt-style SparseAttentionConfig, JSON load/save, per-module resolution.
export * from './config/index.js';

// Engine: OpenVINO-shaped scheduler config, paged KV cache, scheduler, chunked sparse prefill.
export {
  KV_BLOCK_SIZES, SparseAttentionMode, kvBlockBytes, parseSchedulerConfig, parseSparseAttentionConfig, resolveNumKvBlocks,
  type SchedulerConfig, type SchedulerConfigInput,
  type SparseAttentionConfig as OpenVinoSparseAttentionConfig, type SparseAttentionConfigInput as OpenVinoSparseAttentionConfigInput,
} from './config/openvino.js';
export { BlockAllocator, PagedKvCache, type GatheredKv, type PagedKvCacheShape } from './engine/paged-kv-cache.js';
export { TriShapeTokenSkipper, type ChunkPosition } from './methods/tri-shape/trishape-skipper.js';
export { xattentionChunkThreshold, type XAttentionChunkState } from './methods/xattention/xattention-chunk-rule.js';
export { SparsePrefillPlanner, type ChunkAttentionKind, type ChunkPlan, type ChunkToPlan } from './engine/sparse-prefill-plan.js';
export { Scheduler, type ScheduledChunk, type SchedulerSequenceStats, type SequenceRequest, type StepSchedule } from './engine/scheduler.js';
export { naivePagedAttention } from './backends/cpu/paged.js';
export type { PagedAttentionInput, PagedKvView, MethodHooks, TimingRuns, TimedRuns } from './backends/backend.js';
export { syntheticModel, type QkvChunk, type QkvProducer, type SyntheticModelShape } from './engine/synthetic-model.js';
export { Engine, type ChunkRecord, type EngineOptions, type SequenceStats } from './engine/engine.js';
// flash-skip-softmax (ModelOpt) and calibration of every method's knob.
export {
  FlashSkipSoftmax, FlashSkipSoftmaxSequential, DEFAULT_THRESHOLD as FLASH_SKIP_DEFAULT_THRESHOLD, flashSkipStatistics, groupConsensusView,
  parseFlashSkipSettings,
  type ExponentialFit, type FlashSkipCalibration, type FlashSkipCalibrationRequest, type FlashSkipSettings, type PhaseValues,
} from './methods/flash-skip-softmax/flash-skip-softmax.js';
export { TileSkipDecider, scoreTile, tileOperands, type FlashSkipVariant, type TileOperands } from './methods/flash-skip-softmax/flash-skip-tiles.js';
export { flashSkipAttention, type FlashSkipAttentionOptions, type FlashSkipAttentionResult } from './methods/flash-skip-softmax/flash-skip-cpu.js';
export {
  calibrate, createCalibratedMethod, type CalibrateOptions, type CalibrationData, type CalibrationResult, type CalibrationSample,
} from './calibration/calibrate.js';
export { FIT_SPARSITY_RANGE, fitExponential, flashSkipTileMargins, sparsityAt, type ExponentialFitResult, type TileMargins } from './methods/flash-skip-softmax/flash-skip-fit.js';
export { bisectKnob, knobSettings, methodKnob } from './calibration/knobs.js';

// SLA and SageSLA (sparse-linear attention)
export { SlaMethod, parseSlaSettings, bhldF32, type SlaSettings, type SlaVariant } from './methods/sla/sla.js';
export { SageSlaMethod, sageQuantize, quantizeInt8PerBlock, int8Logits, SAGE_SLA_HEAD_DIMS, type SageOperands } from './methods/sage-sla/sage-sla.js';
export {
  getBlockMap, slaTopk, selectTopBlocks as slaSelectTopBlocks, blockMapToMask as slaBlockMapToMask, selectedBlocks as slaSelectedBlocks,
  meanPool as slaMeanPool, sequenceMean as slaSequenceMean, type SlaBlockMap,
} from './methods/sla/sla-block-map.js';
export { slaLinearPart, applyFeatureMap, LINEAR_EPS, FEATURE_MAPS, type FeatureMap, type LinearBlocks } from './methods/sla/sla-linear-part.js';
export { slaSparsePart, floatLogits, type LogitsHook } from './methods/sla/sla-sparse-part.js';
export { parseProjection, loadProjectionFile, addProjection, type SlaProjection } from './methods/sla/sla-projection.js';

// Real models: Hugging Face Llama checkpoints on the CPU, sparsify by module name, accuracy eval.
export { SafetensorsFile, writeSafetensors, type F32Tensor, type SafetensorsDType, type TensorEntry } from './model/safetensors.js';
export { parseLlamaConfig, type LlamaConfig } from './model/llama-config.js';
export { loadLlamaCheckpoint, type LinearWeights, type LlamaCheckpoint, type LlamaLayerWeights, type LlamaWeights } from './model/checkpoint.js';
export { RopeTable } from './model/rope.js';
export { KvCache } from './model/kv-cache.js';
export {
  LlamaModel, argmax, logProb, prefill as prefillPrompt, generateGreedy,
  type AttentionModule, type ForwardOptions, type ForwardResult, type GenerateOptions,
} from './model/llama.js';
export { sparsify, desparsify, type SparsifiedModule, type SparsifyOptions, type SparsifyResult } from './model/sparsify.js';
export { buildNeedlePrompt, loadCorpus, type NeedlePrompt } from './model/needle.js';
export { scorePrompt, type PromptScore, type ScoreOptions } from './model/prompt-score.js';
export { plannedSparsity, searchSetting, type CapturedAttention, type SearchResult } from './model/sparsity-search.js';
export { formatAccuracyTable, machineName, runAccuracyEval, sparseConfigFor, type AccuracyOptions, type AccuracyReport, type AccuracyRow } from './model/accuracy.js';
export { LlamaEngineProducer, generateWithEngine, type EngineGeneration } from './model/engine-runner.js';
// WebGPU backend and backend selection (the npm `webgpu` package itself is imported only on first device use)
export { createBackend, resolveBackend, BACKEND_CHOICES, BACKEND_NAMES, BACKEND_ALIASES, parseBackendChoice, type BackendChoice } from './backends/index.js';
export { gatherPagedKv } from './backends/cpu/paged-kv.js';
export * from './backends/webgpu/index.js';
// Benchmarks: case lists with FLOPs/bytes and the validate-then-time harness (browser-safe; the node-only
// targets table and JSON report with peers live in src/bench/targets.ts and report.ts, used by the CLI).
export {
  benchCase, caseName, caseInputs, cpuPlanFlops, denseFlops, sparseFlops, keptPairFraction, minBytes, validationTwin,
  type BenchCase, type CaseSpec, type InputKind,
} from './bench/cases.js';
export {
  runBench, validateCase, compareOutputs, fillSpeedups, CPU_PLAN_MAX_FLOPS, DEFAULT_TIMING, VALIDATION_TOL,
  type BenchTarget, type BenchRecord, type DeviceInfo, type TimingOptions, type TimingSource, type Validation,
} from './bench/harness.js';
export { SWEEPS, issue8Sweep, smokeSweep, menuVariants, type SweepOptions } from './bench/sweeps.js';
