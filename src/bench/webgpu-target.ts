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
import { BufferUsage } from '../backends/webgpu/runtime/webgpu-device.js';
import { phaseOf } from '../core/stats.js';
import type { HeadTensor } from '../core/tensor.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../methods/method.js';
import {
  type AttentionDispatchOptions, createOutputTensor, encodeAttention, type GpuMethodPlan, gpuMethod,
  maskTokenRules, readBlockMask, uploadArray, uploadTensor, webgpuBackend,
} from '../backends/webgpu/index.js';
import { fencedRuns, type KernelMs } from '../backends/webgpu/runtime/pass-profiler.js';
import { type BenchCase, CPU_MAX_FLOPS, denseFlops } from './cases.js';
import { webgpuDeviceInfo } from './device-info.js';
import { timerRuns } from './gpu-timing.js';
import type { BenchTarget } from './harness.js';

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
    if (mask.hasTokenRule || mask.keptValidBlocks !== mask.validBlocks) {
      const rowPtr = uploadArray(device, mask.rowPtr, 'bench.rowPtr', BufferUsage.COPY_SRC);
      const colIdx = uploadArray(device, mask.colIdx, 'bench.colIdx');
      owned.push(rowPtr, colIdx);
      dispatch.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: mask.blockRows, blockCols: mask.blockCols };
      Object.assign(dispatch, maskTokenRules(mask));
    }
    return await fencedRuns(device, (encoder) => encodeAttention(device, encoder, views, dispatch), timerRuns(ctx, iterations));
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
  let last: GpuMethodPlan | undefined;
  try {
    // The attention's warm-up policy (timerRuns): a plan timed after one compiling run, right after
    // the CPU-bound validation, measured a 32K estimation at 17.8 ms in one H200 run against 3.9 warm
    // (an idle H200 sits at 345 MHz; the cause is likely, not proven).
    // Runs are awaited one by one (warm-up too: warmBatch 1), so a plan is done on the GPU when the
    // next one is encoded: it is freed first (its workspaces then serve the next), and only the newest
    // is kept (every plan makes the same mask), for its block list to be read back.
    const timed = await fencedRuns(device, async (encoder) => {
      last?.destroy();
      last = undefined;
      last = await planner(ctx, encoder, method, views, p);
      return [];
    }, { ...timerRuns(ctx, 1), warmBatch: 1 });
    const plan = last!;
    const mask = plan.blocks ? await readBlockMask(device, plan.blocks) : BlockMask.full(plan.dims);
    return { plan: plan.finish(mask, undefined, opts.phase ?? phaseOf(p.queryLength)), ms: timed.ms[0], kernelMs: timed.kernelMs };
  } finally {
    last?.destroy();
    views.q.buffer.destroy();
    views.k.buffer.destroy();
  }
}

export async function webgpuTarget(): Promise<BenchTarget> {
  const r = (await webgpuBackend.context()).report;
  return {
    name: 'webgpu',
    backend: webgpuBackend,
    describe: async () => webgpuDeviceInfo(r),
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
      return { ...(await timer(ctx, method, q, k, v, opts, timerRuns(ctx, iterations))), source: 'gpu-fence' };
    },
    plans: (name) => gpuMethod(name)?.planner !== undefined,
    planBlockMask: planOnGpu,
    async timeBlockSparse(q, k, v, mask, opts, iterations) {
      return { ...(await timeDispatches(q, k, v, mask, opts, iterations)), source: 'gpu-fence' };
    },
    dispose: () => webgpuBackend.dispose?.(),
  };
}
