/// <reference types="@webgpu/types" />
/**
 * The WebGPU backend as a bench target. Validation goes through webgpuBackend.blockSparseAttention
 * (upload, dispatch, read back). Timing encodes the same dispatch on inputs uploaded once and
 * fences on the queue ('gpu-fence': GPU work alone, no transfers), as bench/webgpu-attention.ts
 * does. XAttention and tri-shape masks are planned by the backend's GPU planners (estimation,
 * selection and the block list on the GPU), timed the same way. Methods run whole (SLA: its own
 * output; flash-skip-softmax: the plan is made inside the kernel) go through the backend's
 * whole-method runner for validation and their plan, and are timed by their GPU_METHODS timer on
 * inputs uploaded once (queue fence). Imported lazily by targets.ts, so
 * the CPU target never loads Dawn.
 */
import { type AttentionOptions, describeAttention } from '../core/attention-shape.js';
import { BlockMask } from '../core/block-mask.js';
import { phaseOf } from '../core/stats.js';
import type { HeadTensor } from '../core/tensor.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../methods/method.js';
import {
  type AttentionDispatchOptions, createOutputTensor, encodeAttention, type GpuMethodPlan, gpuMethod,
  readBlockMask, uploadArray, uploadTensor, webgpuBackend,
} from '../backends/webgpu/index.js';
import { fencedRuns, type KernelMs, profileRun } from '../backends/webgpu/runtime/pass-profiler.js';
import { type BenchCase, CPU_MAX_FLOPS, denseFlops } from './cases.js';
import type { BenchTarget } from './harness.js';

/** Minimum warm-up before a timed series on a GPU (its clocks ramp up under load); none on a CPU adapter. */
const WARM_MS = 1500;
const warmMs = (ctx: { report: { softwareAdapter: boolean } }) => (ctx.report.softwareAdapter ? 0 : WARM_MS);

/** Submit, then wait for the queue: the wall clock of the GPU work alone. */
async function fenced(device: GPUDevice, encoder: GPUCommandEncoder): Promise<number> {
  const t0 = performance.now();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  return performance.now() - t0;
}

/** Dispatch times (ms) of `iterations` attention calls on device-resident q, k, v and block list. */
async function timeDispatches(q: HeadTensor, k: HeadTensor, v: HeadTensor, mask: BlockMask, opts: AttentionOptions, iterations: number): Promise<{ ms: number[]; kernelMs?: KernelMs }> {
  const ctx = await webgpuBackend.context();
  const { device } = ctx;
  const views = {
    q: uploadTensor(device, q, 'bench.q'),
    k: uploadTensor(device, k.toDType(q.dtype), 'bench.k'),
    v: uploadTensor(device, v.toDType(q.dtype), 'bench.v'),
    o: createOutputTensor(device, { batch: q.batch, heads: q.heads, length: q.length, headDim: v.headDim }, q.layout, q.dtype, 'bench.o'),
  };
  const owned = [views.q.buffer, views.k.buffer, views.v.buffer, views.o.buffer];
  try {
    const dispatch: AttentionDispatchOptions = { causal: opts.causal ?? false, scale: opts.scale ?? 1 / Math.sqrt(q.headDim), blocks: { kind: 'all' } };
    // The backend's rule: a mask keeping every valid block with no token rule runs dense.
    if (mask.tokenRule || mask.keptValidBlocks !== mask.validBlocks) {
      const rowPtr = uploadArray(device, mask.rowPtr, 'bench.rowPtr');
      const colIdx = uploadArray(device, mask.colIdx, 'bench.colIdx');
      owned.push(rowPtr, colIdx);
      dispatch.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: mask.blockRows, blockCols: mask.blockCols };
      dispatch.tokenRule = mask.tokenRule;
    }
    // An idle H100 sits at 345 MHz and needs some hundreds of ms of load to reach its boost
    // clock (a 4K case measured cold ran at 30% of warm): warm up before timing.
    return await fencedRuns(device, async (encoder) => [await encodeAttention(device, encoder, views, dispatch)], {
      iterations, warmMs: warmMs(ctx), warmRuns: 1, profile: true,
    });
  } finally {
    for (const b of owned) b.destroy();
  }
}

/** The method's mask from its GPU planner (second run timed; the first compiles), read back. */
async function planOnGpu(method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, opts: PlanOptions): Promise<{ plan: BlockPlan; ms: number; kernelMs?: KernelMs } | undefined> {
  const planner = gpuMethod(method.name)?.planner;
  if (!planner) return undefined;
  const ctx = await webgpuBackend.context();
  const { device } = ctx;
  const p = describeAttention(q, k, k, opts);
  const views = { q: uploadTensor(device, q, 'bench.plan.q'), k: uploadTensor(device, k.toDType(q.dtype), 'bench.plan.k') };
  const plans: GpuMethodPlan[] = [];
  try {
    const run = async () => {
      const encoder = device.createCommandEncoder({ label: `bench.plan.${method.name}` });
      plans.push(await planner(ctx, encoder, method, views, p));
      return fenced(device, encoder);
    };
    await run();
    const ms = await run();
    const last = plans[plans.length - 1];
    const mask = last.blocks ? await readBlockMask(device, last.blocks) : BlockMask.full(last.dims);
    const kernelMs = await profileRun(device, run);
    return { plan: last.finish(mask, undefined, opts.phase ?? phaseOf(p.queryLength)), ms, kernelMs };
  } finally {
    for (const pl of plans) pl.destroy();
    views.q.buffer.destroy();
    views.k.buffer.destroy();
  }
}

export async function webgpuTarget(): Promise<BenchTarget> {
  const r = (await webgpuBackend.context()).report;
  return {
    name: 'webgpu',
    backend: webgpuBackend,
    async describe() {
      return {
        name: r.description || r.device || 'unknown adapter', backend: 'webgpu', adapter: `${r.vendor} ${r.architecture} (${r.runtime})`,
        features: r.features, enabledFeatures: r.enabledFeatures, subgroupMatrix: r.subgroupMatrix, limits: r.limits, softwareAdapter: r.softwareAdapter,
      };
    },
    supports(c: BenchCase) {
      if (c.dtype === 'f16' && !r.shaderF16) return 'the adapter has no shader-f16';
      const el = c.dtype === 'f16' ? 2 : 4;
      const largest = el * c.batch * c.headDim * Math.max(c.heads * c.queryLength, c.kvHeads * c.keyLength);
      const limit = r.limits.maxStorageBufferBindingSize;
      if (largest > limit) return `a ${largest}-byte operand exceeds maxStorageBufferBindingSize (${limit})`;
      if (r.softwareAdapter && denseFlops(c) > CPU_MAX_FLOPS) return `software adapter: ${(denseFlops(c) / 1e9).toFixed(0)} GFLOP is beyond its reach`;
      return undefined;
    },
    // SLA (plan, sparse and linear parts) and flash-skip-softmax (the in-loop kernel): the
    // backend's whole-method GPU runners.
    methodAttention: async (method, q, k, v, opts) => webgpuBackend.methodHooks?.(method)?.run?.(q, k, v, opts),
    runsWhole: (name) => name === 'flash_skip_softmax',
    async timeWholeMethod(method, q, k, v, opts, iterations) {
      const timer = gpuMethod(method.name)?.time;
      if (!timer) return undefined;
      const ctx = await webgpuBackend.context();
      return { ...(await timer(ctx, method, q, k, v, opts, { iterations, warmMs: warmMs(ctx), warmRuns: 1, profile: true })), source: 'gpu-fence' };
    },
    plans: (name) => gpuMethod(name)?.planner !== undefined,
    planBlockMask: planOnGpu,
    async timeBlockSparse(q, k, v, mask, opts, iterations) {
      return { ...(await timeDispatches(q, k, v, mask, opts, iterations)), source: 'gpu-fence' };
    },
    dispose: () => webgpuBackend.dispose?.(),
  };
}
