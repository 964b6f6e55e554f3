/**
 * Public API of sparse-attention: what a user calls. Kernel internals live behind subpath exports:
 *   sparse-attention/webgpu   the WebGPU backend's device, programs and per-method GPU work
 *   sparse-attention/cpu      the CPU reference kernels (the oracle of every test)
 *   sparse-attention/bench    benchmark cases, the validate → time → JSON harness, sweeps
 *
 * This is the Node entry: the browser entry (browser.ts) plus what needs Node's fs and os.
 */
export * from './browser.js';
export { decodePng, encodePng } from './viz/png.js';

// Real models from files: Hugging Face Llama checkpoints, sparsify by module name, needle prompts, the accuracy eval.
export { SafetensorsFile, writeSafetensors, type F32Tensor, type SafetensorsDType, type TensorEntry } from './model/safetensors.js';
export { loadLlamaCheckpoint, type LinearWeights, type LlamaCheckpoint, type LlamaLayerWeights, type LlamaWeights } from './model/checkpoint.js';
export {
  LlamaModel, argmax, logProb, prefill as prefillPrompt, generateGreedy,
  type AttentionModule, type ForwardOptions, type ForwardResult, type GenerateOptions,
} from './model/llama.js';
export {
  sparsify, desparsify, disableSparseAttention, enableSparseAttention, printSparseAttentionSummary, sparseAttentionSummary, sparsifiedModules,
  type ForwardLoop, type SparsifiedModule, type SparsifyCalibration, type SparsifyOptions, type SparsifyResult,
} from './model/sparsify.js';
export { exportSparseAttentionConfig, LLAMA_ATTENTION_CLASS } from './model/hf-export.js';
export { buildNeedlePrompt, loadCorpus, type NeedlePrompt } from './model/needle.js';
export { scorePrompt, type PromptScore, type ScoreOptions } from './model/prompt-score.js';
export {
  fitSlaProjection, solveSlaProjection, slaProjectionJson, RIDGE_GRID as SLA_PROJECTION_RIDGE_GRID,
  type CapturedSlaAttention, type SlaProjectionFitOptions, type SlaProjectionFitRow, type SlaProjectionRows, type SlaProjectionWeights,
} from './calibration/sla-projection-fit.js';
export { captureAttentionInputs, slaProjectionConfig, type CaptureOptions, type ProjectionConfigOptions } from './model/sla-projection-capture.js';
export { formatAccuracyTable, runAccuracyEval, sparseConfigFor, type AccuracyOptions, type AccuracyReport, type AccuracyRow } from './model/accuracy.js';
export { LlamaEngineProducer, generateWithEngine, type EngineGeneration } from './model/engine-runner.js';
export { formatEvictionTable, runEvictionEval, type EvictionEvalConfig, type EvictionEvalOptions, type EvictionEvalReport, type EvictionEvalRow } from './model/eviction-eval.js';
