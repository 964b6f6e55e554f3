/**
 * `sparse-attention/gpu-model`: the Llama forward pass on WebGPU (docs/gpu-model.md). A subpath of
 * its own so that the root entry never loads Dawn; `LlamaModel` (the weights it uploads) comes from
 * the root entry.
 */
export { GpuKvCache, GpuLlamaModel, type GpuLlamaOptions } from './gpu-llama.js';
export { generateGreedyGpu, type GpuGenerateOptions, prefillGpu } from './gpu-generate.js';
export { checkFits, type GpuMemoryPlan, gpuMemoryPlan } from './gpu-memory.js';
export { GEMM_KERNELS, type GemmKernel } from '../backends/webgpu/model/model-kernels.js';
