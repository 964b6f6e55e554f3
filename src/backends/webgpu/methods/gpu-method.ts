/// <reference types="@webgpu/types" />
/**
 * What a method's GPU folder supplies to the backend: one row (GpuMethod) of methods/index.ts with
 * any of
 *   planner  encodes the method's block list on the GPU into the attention's command encoder, so no
 *            step runs on the CPU and nothing of size L×L is read back (benchmarks time it alone)
 *   plan     the backend's plan hook: the method's BlockPlan made on the GPU, same mask as its
 *            planBlockMask (the engine plans through it)
 *   run      the method whole on the GPU (plan and attention); `runPlanned(planner)` for block-list methods
 *   time     benchmarks: `run` timed on inputs uploaded once, when it is one command buffer
 * The backend's methodHooks are derived from the row (backends/webgpu/index.ts).
 *
 * After the attention dispatch a planned block list is read back (O(kept blocks) ints, plus the
 * method's block scores when it has them) so the returned BlockPlan has the same mask and
 * statistics as the CPU plan.
 */
import { type AttentionProblem, describeAttention } from '../../../core/attention-shape.js';
import { BlockMask, type BlockMaskDims } from '../../../core/block-mask.js';
import { phaseOf } from '../../../core/stats.js';
import type { HeadTensor } from '../../../core/tensor.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../../../methods/method.js';
import { type AttentionDispatchOptions, encodeAttention } from '../attention/attention-dispatch.js';
import { type GpuBlockList, readBlockMask, readBuffers } from '../attention/block-list.js';
import { createOutputTensor, type GpuTensorView, readTensor, uploadTensor } from '../runtime/buffers.js';
import type { KernelMs, TimerRuns } from '../runtime/pass-profiler.js';
import type { WebGpuContext } from '../runtime/webgpu-device.js';

/** A method's plan as encoded on the GPU. */
export interface GpuMethodPlan {
  dims: BlockMaskDims;
  /** The kept blocks; absent when every causally valid block is kept (attention runs dense). */
  blocks?: GpuBlockList;
  /** Per-block importance f32 [B, H, nQB, nKB], when the method estimates one. */
  blockScores?: GPUBuffer;
  destroy(): void;
  /** The BlockPlan the CPU method would return, from the read-back mask and scores. */
  finish(mask: BlockMask, blockScores: Float32Array | undefined, phase: BlockPlan['stats']['phase']): BlockPlan;
}

/** opts: the call's place in a longer one (PlanOptions.rowsAfter, promptRowsAfter), for rules that count it. */
export type GpuMethodPlanner = (
  ctx: WebGpuContext, encoder: GPUCommandEncoder, method: SparseAttentionMethod, views: { q: GpuTensorView; k: GpuTensorView }, p: AttentionProblem,
  opts?: Pick<PlanOptions, 'rowsAfter' | 'promptRowsAfter'>,
) => Promise<GpuMethodPlan>;

export type GpuMethodRunner = (
  ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions,
) => Promise<{ output: HeadTensor; plan: BlockPlan }>;

export type GpuMethodTimer = (
  ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions, runs: TimerRuns,
) => Promise<{ ms: number[]; kernelMs?: KernelMs }>;

/** The plan hook of one method instance, or undefined where the instance keeps its CPU plan (e.g. dense XAttention). */
/** k: host keys, or a GPU view of keys already on the device (the engine's resident cache, gathered there). */
export type GpuPlanHook = (method: SparseAttentionMethod) => ((ctx: WebGpuContext, q: HeadTensor, k: HeadTensor | GpuTensorView, opts: PlanOptions) => Promise<BlockPlan>) | undefined;

/** One method's GPU work; every field is optional (absent: the generic path, its CPU plan then the kernel). */
export interface GpuMethod {
  planner?: GpuMethodPlanner;
  plan?: GpuPlanHook;
  run?: GpuMethodRunner;
  time?: GpuMethodTimer;
}

export function dimsOf(p: AttentionProblem, blockRows: number, blockCols: number): BlockMaskDims {
  return { batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, blockRows, blockCols, causal: p.causal };
}

/** The whole-method runner of a block-list method planned on the GPU. */
export const runPlanned = (planner: GpuMethodPlanner): GpuMethodRunner => (ctx, method, q, k, v, opts) => runPlannedMethodWebGpu(ctx, planner, method, q, k, v, opts);

/**
 * Plans `method` on the GPU with `planner` and runs block-sparse attention with the plan, all in
 * one submit. q [B, H, Lq, D], k/v [B, Hkv, Lk, D|Dv] → output [B, H, Lq, Dv] in q's layout and
 * dtype, and the plan read back.
 */
export async function runPlannedMethodWebGpu(
  ctx: WebGpuContext, planner: GpuMethodPlanner, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions,
): Promise<{ output: HeadTensor; plan: BlockPlan }> {
  const p = describeAttention(q, k, v, opts);
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) t.assertFinite(name);
  const { device } = ctx;
  const label = `${method.name}-attention`;
  const views = {
    q: uploadTensor(device, q, `${label}.q`),
    k: uploadTensor(device, k.toDType(q.dtype), `${label}.k`),
    v: uploadTensor(device, v.toDType(q.dtype), `${label}.v`),
    o: createOutputTensor(device, { batch: q.batch, heads: q.heads, length: q.length, headDim: v.headDim }, q.layout, q.dtype, `${label}.o`),
  };
  let plan: GpuMethodPlan | undefined;
  let uniforms: GPUBuffer[] = [];
  try {
    const encoder = device.createCommandEncoder({ label });
    plan = await planner(ctx, encoder, method, views, p, opts);
    const attention: AttentionDispatchOptions = {
      causal: p.causal, scale: p.scale, blocks: { kind: 'all' },
    };
    if (plan.blocks) {
      const { rowPtr, colIdx, dims, tokenRule } = plan.blocks;
      attention.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: dims.blockRows, blockCols: dims.blockCols };
      attention.tokenRule = tokenRule;
    }
    uniforms = await encodeAttention(device, encoder, views, attention);
    device.queue.submit([encoder.finish()]);
    const output = await readTensor(device, views.o, q.layout);
    const mask = plan.blocks ? await readBlockMask(device, plan.blocks) : BlockMask.full(plan.dims);
    let blockScores: Float32Array | undefined;
    if (plan.blockScores) {
      const n = mask.batch * mask.heads * mask.numQueryBlocks * mask.numKeyBlocks;
      blockScores = new Float32Array((await readBuffers(device, [{ buffer: plan.blockScores, bytes: n * 4 }]))[0]);
    }
    return { output, plan: plan.finish(mask, blockScores, opts.phase ?? phaseOf(p.queryLength)) };
  } finally {
    plan?.destroy();
    for (const u of uniforms) u.destroy();
    for (const t of Object.values(views)) t.buffer.destroy();
  }
}
