/**
 * The WebGPU attention backend: block-sparse (and dense) flash attention on any WebGPU adapter,
 * from Node through Dawn (npm `webgpu`) or in a browser through navigator.gpu.
 *
 *   runtime/    device, buffers, the kernel program abstraction, the pass profiler
 *   attention/  the attention skeleton and its tensor-core variant, block lists, paged attention
 *   methods/    each method's GPU work, one row per method in methods/index.ts (GPU_METHODS);
 *               token rules' visibility hooks in methods/gpu-token-rules.ts
 */
import type { AttentionBackend, MethodHooks } from '../backend.js';
import type { SparseAttentionMethod } from '../../methods/method.js';
import { PerHeadMethod } from '../../methods/per-head.js';
import type { DType } from '../../core/tensor.js';
import { blockSparseAttentionWebGpu } from './attention/block-sparse-attention.js';
import { pagedAttentionOnWebGpu } from './attention/paged-backend.js';
import { residentKvFor } from './attention/resident-kv.js';
import { gpuMethod } from './methods/index.js';
import { withDeviceFaults } from './runtime/gpu-faults.js';
import { createWebGpuContext, defaultWebGpuContext, releaseDefaultWebGpuContext, type WebGpuContext, type WebGpuOptions } from './runtime/webgpu-device.js';

export interface WebGpuBackendOptions {
  /**
   * Element type of the engine's GPU-resident KV cache (attention/resident-kv.ts): 'f32' (default,
   * the CPU engine's results within f32 rounding) or 'f16' (half the memory; attention in f16).
   */
  kvCacheDtype?: DType;
}

export interface WebGpuBackend extends AttentionBackend {
  readonly name: 'webgpu';
  /** The device context this backend runs on (created on first use for the default backend). */
  context(): Promise<WebGpuContext>;
}

/**
 * A backend on `ctx`; on a device of its own made with `options` on first use (e.g.
 * `{ robustness: false }`); or on the process-wide default device when omitted. dispose() destroys
 * a device the backend made (so a Node process can exit); a context you pass in stays yours.
 * `backendOptions.kvCacheDtype` is the element type of the engine's GPU-resident KV cache.
 */
export function createWebGpuBackend(ctxOrOptions?: WebGpuContext | WebGpuOptions, backendOptions: WebGpuBackendOptions = {}): WebGpuBackend {
  const kvDtype = backendOptions.kvCacheDtype ?? 'f32';
  const given = ctxOrOptions && 'device' in ctxOrOptions ? ctxOrOptions : undefined;
  const options = ctxOrOptions && !('device' in ctxOrOptions) ? ctxOrOptions : undefined;
  let own: Promise<WebGpuContext> | undefined;
  const context = () => {
    if (given) return Promise.resolve(given);
    if (!options) return defaultWebGpuContext();
    own ??= createWebGpuContext(options);
    return own;
  };
  return {
    name: 'webgpu',
    context,
    async blockSparseAttention(q, k, v, mask, opts) {
      const c = await context();
      return withDeviceFaults(c.device, 'block-sparse attention', () => blockSparseAttentionWebGpu(c, q, k, v, mask, opts));
    },
    async pagedAttention(input) {
      const c = await context();
      return withDeviceFaults(c.device, 'paged attention', () => pagedAttentionOnWebGpu(c, input, { kvDtype }));
    },
    methodHooks: (method) => methodHooks(context, method, kvDtype),
    dispose() {
      if (own) void own.then((c) => c.destroy(), () => undefined);
      else if (!given) void releaseDefaultWebGpuContext();
      own = undefined;
    },
  };
}

/** The method's row of GPU_METHODS bound to this instance and device. */
function methodHooks(context: () => Promise<WebGpuContext>, method: SparseAttentionMethod, kvDtype: DType): MethodHooks | undefined {
  // A per-head method carries its inner method's name, but the row's planners take one instance of
  // that method: it plans on the CPU (per head) and runs its mask on this backend's block-sparse kernel.
  if (method instanceof PerHeadMethod) return undefined;
  const row = gpuMethod(method.name);
  if (!row) return undefined;
  const { run, time } = row;
  const plan = row.plan?.(method);
  const hooks: MethodHooks = {};
  // Each hook on the context of the moment (a lost default device is replaced), its faults named.
  const on = async <T>(what: string, fn: (c: WebGpuContext) => Promise<T>): Promise<T> => {
    const c = await context();
    return withDeviceFaults(c.device, `${method.name} ${what}`, () => fn(c));
  };
  if (run) hooks.run = (q, k, v, opts) => on('run', (c) => run(c, method, q, k, v, opts));
  if (time) hooks.time = (q, k, v, opts, runs) => on('timing', (c) => time(c, method, q, k, v, opts, { warmMs: 0, warmRuns: 1, ...runs }));
  if (plan) {
    hooks.plan = (q, k, opts) => on('plan', (c) => plan(c, q, k, opts));
    // The engine's keys: gathered on the GPU from the resident cache (the query in the cache's dtype).
    hooks.planPaged = (q, keys, opts) => on('plan', async (c) => {
      const resident = residentKvFor(c.device, keys.cache, kvDtype);
      if (!resident) return plan(c, q, keys.cache.gatherBlocks(keys.layer, keys.blockTable, keys.visibleBlocks, keys.contextLength).k, opts);
      const k = resident.gatherKeys(keys.layer, keys.blockTable, keys.visibleBlocks, keys.contextLength);
      try {
        return await plan(c, q.toDType(kvDtype), k, opts);
      } finally {
        k.buffer.destroy();
      }
    });
  }
  return Object.keys(hooks).length > 0 ? hooks : undefined;
}

/** The backend on the default device. */
export const webgpuBackend: WebGpuBackend = createWebGpuBackend();

// runtime
export {
  createWebGpuContext, defaultWebGpuContext, releaseDefaultWebGpuContext, probeWebGpu, formatAdapterReport, isSoftwareDevice,
  DAWN_FEATURES, DAWN_TOGGLES, OPTIONAL_FEATURES, type AdapterReport, type SubgroupMatrixConfig, type WebGpuContext, type WebGpuOptions,
} from './runtime/webgpu-device.js';
export {
  ParamsLayout, variantKey, wgslConstants, programSource, compileProgram, encodeProgram,
  type KernelProgram, type KernelSpec, type CompiledProgram, type BindingSpec, type Dispatch,
} from './runtime/program.js';
export { uploadTensor, uploadArray, createOutputTensor, readTensor, denseStrides, type GpuTensorView } from './runtime/buffers.js';
export { pooledWorkspaceBytes, releaseWorkspaces } from './runtime/workspace.js';
// attention
export { attentionProgram, attentionParams, tileKeys, type AttentionSpec, type AttentionShape, MAX_HEAD_DIM } from './attention/attention-program.js';
export { encodeAttention, attentionSpecFor, maskTokenRules, type AttentionViews, type AttentionDispatchOptions, type BlockList, type PagedKvBinding } from './attention/attention-dispatch.js';
export type { TokenRuleHook } from './attention/token-visibility.js';
export { flashAttentionWebGpu } from './attention/webgpu-flash-attention.js';
export { blockSparseAttentionWebGpu, pagedAttentionWebGpu, type PagedAttentionOptions } from './attention/block-sparse-attention.js';
export { blockListScanProgram, blockListCompactProgram, encodeBlockList, readBlockMask, type GpuBlockList } from './attention/block-list.js';
export { pagedAttentionOnWebGpu } from './attention/paged-backend.js';
export { residentKvFor, WebGpuResidentKv, type ResidentKvTraffic } from './attention/resident-kv.js';
// methods
export {
  GPU_METHODS, gpuMethod, GPU_TOKEN_RULES,
  type GpuMethod, type GpuMethodPlan, type GpuMethodPlanner, type GpuMethodRunner, type GpuMethodTimer, type GpuPlanHook, type TokenRuleKey,
} from './methods/index.js';
export { runPlannedMethodWebGpu } from './methods/gpu-method.js';
export { DeviceLostError, deviceLostInfo, GpuOutOfMemoryError, withDeviceFaults } from './runtime/gpu-faults.js';
export { planXAttentionOnGpu } from './methods/xattention/xattention-gpu.js';
export {
  encodeXAttentionPlan, encodeXAttentionEstimate, encodeXAttentionSelection, estimateXAttentionWebGpu, selectXAttentionBlocksWebGpu, readXAttentionPlan,
  type GpuXAttentionPlan, type XAttentionGpuOptions,
} from './methods/xattention/xattention-plan.js';
export { xattentionEstimateProgram, type XAttentionEstimateSpec } from './methods/xattention/webgpu-xattention-estimate.js';
export { xattentionSelectProgram, type XAttentionSelectSpec } from './methods/xattention/xattention-select.js';
export { planTriShapeOnGpu } from './methods/tri-shape/trishape-gpu.js';
export { encodeTriShapePlan, triShapeBlockMaskWebGpu, trishapeBlocksProgram, type GpuTriShapePlan } from './methods/tri-shape/trishape-blocks.js';
export {
  flashSkipAttentionWebGpu, encodeFlashSkipAttention, flashSkipAttentionProgram, flashSkipParams, flashSkipRows,
  type FlashSkipAttentionSpec, type FlashSkipGpuOptions, type FlashSkipGpuResult,
} from './methods/flash-skip-softmax/webgpu-flash-skip-attention.js';
