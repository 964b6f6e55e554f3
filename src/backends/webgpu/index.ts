/**
 * The WebGPU attention backend: block-sparse (and dense) flash attention on any WebGPU adapter,
 * from Node through Dawn (npm `webgpu`) or in a browser through navigator.gpu.
 */
import type { AttentionBackend, MethodHooks } from '../backend.js';
import { statsFromMask } from '../../core/stats.js';
import { phaseOf } from '../../core/stats.js';
import type { SparseAttentionMethod } from '../../methods/method.js';
import { XAttentionMethod } from '../../methods/xattention.js';
import { blockSparseAttentionWebGpu } from './attention/block-sparse-attention.js';
import { GPU_METHOD_RUNNERS, GPU_METHOD_TIMERS } from './methods/method-runners.js';
import { defaultWebGpuContext, releaseDefaultWebGpuContext, type WebGpuContext } from './runtime/webgpu-device.js';
import { pagedAttentionOnWebGpu } from './attention/paged-backend.js';
import { estimateXAttentionWebGpu } from './methods/xattention/xattention-plan.js';

export interface WebGpuBackend extends AttentionBackend {
  readonly name: 'webgpu';
  /** The device context this backend runs on (created on first use for the default backend). */
  context(): Promise<WebGpuContext>;
}

/**
 * A backend on `ctx`, or on the process-wide default device when omitted. dispose() destroys the
 * default device (so a Node process can exit); a context you pass in stays yours to destroy.
 */
export function createWebGpuBackend(ctx?: WebGpuContext): WebGpuBackend {
  const context = () => (ctx ? Promise.resolve(ctx) : defaultWebGpuContext());
  return {
    name: 'webgpu',
    context,
    async blockSparseAttention(q, k, v, mask, opts) {
      return blockSparseAttentionWebGpu(await context(), q, k, v, mask, opts);
    },
    async pagedAttention(input) {
      return pagedAttentionOnWebGpu(await context(), input);
    },
    methodHooks: (method) => methodHooks(context, method),
    dispose() {
      if (!ctx) void releaseDefaultWebGpuContext();
    },
  };
}

function methodHooks(context: () => Promise<WebGpuContext>, method: SparseAttentionMethod): MethodHooks | undefined {
  const run = GPU_METHOD_RUNNERS[method.name];
  const timer = GPU_METHOD_TIMERS[method.name];
  const hooks: MethodHooks = {};
  if (run) hooks.run = async (q, k, v, opts) => run(await context(), method, q, k, v, opts);
  if (timer) hooks.time = async (q, k, v, opts, runs) => timer(await context(), method, q, k, v, opts, { warmMs: 0, warmRuns: 1, ...runs });
  if (method instanceof XAttentionMethod && !method.settings.dense) {
    const s = method.settings;
    hooks.plan = async (q, k, opts) => {
      const { mask, blockScores } = await estimateXAttentionWebGpu(await context(), q, k, s, opts);
      return { mask, blockScores, stats: { ...statsFromMask(method.name, mask, { threshold: s.threshold }), phase: opts.phase ?? phaseOf(q.length) } };
    };
  }
  return Object.keys(hooks).length > 0 ? hooks : undefined;
}

/** The backend on the default device. */
export const webgpuBackend: WebGpuBackend = createWebGpuBackend();

export {
  createWebGpuContext, defaultWebGpuContext, releaseDefaultWebGpuContext, probeWebGpu, formatAdapterReport, isSoftwareDevice,
  DAWN_TOGGLES, OPTIONAL_FEATURES, type AdapterReport, type SubgroupMatrixConfig, type WebGpuContext, type WebGpuOptions,
} from './runtime/webgpu-device.js';
export {
  ParamsLayout, variantKey, wgslConstants, programSource, compileProgram, encodeProgram,
  type KernelProgram, type KernelSpec, type CompiledProgram, type BindingSpec, type Dispatch,
} from './runtime/program.js';
export { attentionProgram, attentionParams, tileKeys, type AttentionSpec, type AttentionShape, MAX_HEAD_DIM } from './attention/attention-program.js';
export { encodeAttention, attentionSpecFor, type AttentionViews, type AttentionDispatchOptions, type BlockList, type PagedKvBinding } from './attention/attention-dispatch.js';
export { uploadTensor, uploadArray, createOutputTensor, readTensor, denseStrides, type GpuTensorView } from './runtime/buffers.js';
export { flashAttentionWebGpu } from './attention/webgpu-flash-attention.js';
export { blockSparseAttentionWebGpu, pagedAttentionWebGpu, type PagedAttentionOptions } from './attention/block-sparse-attention.js';
// GPU plans of XAttention and tri-shape (gpu-xattn)
export { planXAttentionOnGpu, planTriShapeOnGpu, runPlannedMethodWebGpu, type GpuMethodPlan, type GpuMethodPlanner } from './methods/method-plans.js';
export {
  encodeXAttentionPlan, encodeXAttentionEstimate, encodeXAttentionSelection, estimateXAttentionWebGpu, selectXAttentionBlocksWebGpu, readXAttentionPlan,
  type GpuXAttentionPlan, type XAttentionGpuOptions,
} from './methods/xattention/xattention-plan.js';
export { xattentionEstimateProgram, type XAttentionEstimateSpec } from './methods/xattention/webgpu-xattention-estimate.js';
export { xattentionSelectProgram, type XAttentionSelectSpec } from './methods/xattention/xattention-select.js';
export { encodeTriShapePlan, triShapeBlockMaskWebGpu, trishapeBlocksProgram, type GpuTriShapePlan } from './methods/tri-shape/trishape-blocks.js';
export { blockListScanProgram, blockListCompactProgram, encodeBlockList, readBlockMask, type GpuBlockList } from './attention/block-list.js';
// GPU work of flash-skip-softmax and SLA (gpu-fssla)
export {
  flashSkipAttentionWebGpu, encodeFlashSkipAttention, flashSkipAttentionProgram, flashSkipParams, flashSkipRows,
  type FlashSkipAttentionSpec, type FlashSkipGpuOptions, type FlashSkipGpuResult,
} from './methods/flash-skip-softmax/webgpu-flash-skip-attention.js';
export { GPU_METHOD_RUNNERS, GPU_METHOD_TIMERS, type GpuMethodRunner, type GpuMethodTimer } from './methods/method-runners.js';
export { pagedAttentionOnWebGpu } from './attention/paged-backend.js';
