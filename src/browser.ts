/**
 * The package's browser entry (the `browser` condition of its exports): the whole user API except
 * what reads files or needs Node (checkpoint and safetensors loading, the Llama runner built on
 * them, needle corpora, the accuracy eval). Importing it pulls in no Node built-in and not Dawn:
 * the WebGPU backend uses navigator.gpu, and package.json's `browser` map empties the `webgpu`
 * package for bundlers. The Node entry (index.ts) re-exports all of this and adds the rest.
 */
// Tensors, masks, errors and small helpers.
export { InvalidArgumentError, SparseAttentionError, UnsupportedError } from './core/errors.js';
export { HeadTensor, type DType, type HeadTensorShape, type Layout } from './core/tensor.js';
export { f16BitsToF32, f32ToF16Bits, fromF16Bits, roundToF16, toF16Bits } from './core/f16.js';
export { Rng } from './core/rng.js';
export { describeAttention, type AttentionOptions, type AttentionProblem } from './core/attention-shape.js';
export { BlockMask, type BlockMaskDims } from './core/block-mask.js';
export type { TokenRule, TriShapeTokenRule } from './core/token-rule.js';
export { computeScores, type Scores } from './core/scores.js';
export { StatsAggregator, phaseOf, statsFromMask, type Phase, type SparsityStats } from './core/stats.js';
export { structuredQKV, type StructuredInputOptions } from './core/structured-inputs.js';
export { INPUT_KINDS, inputsOfKind, parseInputKind, type InputKind, type InputShape } from './core/input-kinds.js';
export { outputError, relativeL2Error } from './core/error-metrics.js';

// Pictures of block masks (PNG files through encodePng in the Node entry).
export {
  MASK_COLORS, heatColor, maskFigure, panelPixels, pictureTitle, planPicture,
  type FigurePanel, type FigureRect, type FigureText, type MaskFigure, type MaskFigureInput, type MaskFigureOptions, type Rgb,
} from './viz/mask-figure.js';
export { figureToRgba, figureToSvg, renderMaskImage, renderMaskSvg, type RgbaImage } from './viz/render.js';

// The one-call API and backends.
export { resolveAttentionCall, sparseAttention, type ResolvedAttentionCall, type SparseAttentionOptions, type SparseAttentionResult } from './attention.js';
export { optionalBoolean, rejectUnknownKeys, requireBoolean, requireEnum, tensorStorage, TENSOR_DATA_KINDS } from './core/validate.js';
export { createBackend, resolveBackend, BACKEND_CHOICES, BACKEND_NAMES, BACKEND_ALIASES, parseBackendChoice, type BackendChoice } from './backends/index.js';
export type { AttentionBackend, BackendName, MethodHooks, PagedAttentionInput, PagedKvView, TimedRuns, TimingRuns } from './backends/backend.js';
export { cpuBackend } from './backends/cpu/index.js';

// Methods: the contract, the registry of descriptors, the built-in methods.
export * from './methods/method.js';
export type { BenchEntry, BenchVariant, ChunkDecision, EngineChunk, EngineHook, MethodDescriptor, MethodKnob } from './methods/descriptor.js';
export { MethodRegistry, compareVersions, type RegisteredMethod } from './methods/registry.js';
export { BUILTIN_METHODS, sparseMethods, registerSparseMethod, getSparseMethod, createSparseMethod } from './methods/index.js';
export * from './methods/dense/index.js';
export * from './methods/tri-shape/index.js';
export * from './methods/xattention/index.js';
export * from './methods/flash-skip-softmax/index.js';
export * from './methods/sla/index.js';
export * from './methods/sage-sla/index.js';
export { PerHeadMethod, perHeadValues, headSettings, headSlice, kvHead, type PerHeadOptions } from './methods/per-head.js';

// Configuration: ModelOpt-style SparseAttentionConfig, JSON load/save, per-module resolution.
export * from './config/index.js';

// Calibration of every method's knob.
export { calibrate, createCalibratedMethod, type CalibrateOptions, type CalibrationData, type CalibrationResult, type CalibrationSample } from './calibration/calibrate.js';
export { bisectKnob, knobSettings, methodKnob } from './calibration/knobs.js';
export {
  calibratePerHead, HeadProblem, knobEnds, knobGrid, perHeadConfig, searchBudget,
  type CapturedHeads, type HeadCalibration, type HeadPoint, type PerHeadCalibrationOptions, type PerHeadCalibrationResult,
} from './calibration/per-head.js';
export { chooseForTarget, type GridPoint, type TargetChoice } from './calibration/per-head-target.js';

// Engine: OpenVINO-shaped scheduler config, paged KV cache, scheduler, chunked sparse prefill.
export {
  KV_BLOCK_SIZES, SparseAttentionMode, kvBlockBytes, parseCacheEvictionConfig, parseSchedulerConfig, parseSparseAttentionConfig, resolveNumKvBlocks,
  type SchedulerConfig, type SchedulerConfigInput,
  type SparseAttentionConfig as OpenVinoSparseAttentionConfig, type SparseAttentionConfigInput as OpenVinoSparseAttentionConfigInput,
} from './config/openvino.js';
export { AggregationMode, KVCrushAnchorPointMode, evictableSize, type CacheEvictionConfig, type CacheEvictionConfigInput } from './config/cache-eviction-config.js';
export { loadSchedulerConfigJson, schedulerConfigToJson } from './config/openvino-json.js';
export { CacheEvictionAlgorithm, type EvictableRange } from './engine/cache-eviction.js';
export { EvictionScoreManager, snapkvScoresToAggregate, type EvictionScoreManagerOptions } from './engine/eviction-scores.js';
export { AdaptiveRKVBlockCalculator, adaptiveRkvDiversity } from './engine/adaptive-rkv.js';
export { EvictionController, evictionBlockBound } from './engine/eviction-controller.js';
export { pagedAttentionScores } from './engine/attention-scores.js';
export { BlockAllocator, PagedKvCache, type GatheredKv, type PagedKvCacheShape } from './engine/paged-kv-cache.js';
export { SparsePrefillPlanner, engineMethodFor, type ChunkAttentionKind, type ChunkPlan, type ChunkToPlan } from './engine/sparse-prefill-plan.js';
export { Scheduler, type ScheduledChunk, type SchedulerSequenceStats, type SequenceRequest, type StepSchedule } from './engine/scheduler.js';
export { syntheticModel, type QkvChunk, type QkvProducer, type SyntheticModelShape } from './engine/synthetic-model.js';
export { Engine, type ChunkRecord, type EngineOptions, type SequenceStats } from './engine/engine.js';

// Real models, the parts that need no model: config parsing, the sparsity-knob search.
export { parseLlamaConfig, type LlamaConfig } from './model/llama-config.js';
export { plannedSparsity, searchSetting, type CapturedAttention, type SearchResult } from './model/sparsity-search.js';
