/// <reference types="@webgpu/types" />
/**
 * Block-list methods planned on the GPU: a planner encodes the method's whole plan (its block list
 * on the GPU) into the same command encoder as the block-sparse attention dispatch, so no step of
 * the method runs on the CPU and nothing of size L×L is read back. method-runners.ts lists the
 * methods (GPU_METHOD_RUNNERS) that the WebGPU backend's methodAttention runs this way.
 *
 * After the attention dispatch the block list is read back (O(kept blocks) ints, plus XAttention's
 * W [B, H, nQB, nKB]) so the returned BlockPlan has the same mask and statistics as the CPU plan.
 */
import { type AttentionProblem, describeAttention } from '../../../core/attention-shape.js';
import { BlockMask, type BlockMaskDims } from '../../../core/block-mask.js';
import { phaseOf, statsFromMask } from '../../../core/stats.js';
import type { HeadTensor } from '../../../core/tensor.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../../../methods/method.js';
import { TriShapeMethod, triShapeTokenRule } from '../../../methods/tri-shape.js';
import { XAttentionMethod } from '../../../methods/xattention.js';
import { InvalidArgumentError } from '../../../core/errors.js';
import { type AttentionDispatchOptions, encodeAttention } from '../attention/attention-dispatch.js';
import { type GpuBlockList, readBlockMask, readBuffers } from '../attention/block-list.js';
import { createOutputTensor, type GpuTensorView, readTensor, uploadTensor } from '../runtime/buffers.js';
import type { WebGpuContext } from '../runtime/webgpu-device.js';
import { encodeTriShapePlan } from './tri-shape/trishape-blocks.js';
import { encodeXAttentionPlan } from './xattention/xattention-plan.js';

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

export type GpuMethodPlanner = (
  ctx: WebGpuContext, encoder: GPUCommandEncoder, method: SparseAttentionMethod, views: { q: GpuTensorView; k: GpuTensorView }, p: AttentionProblem,
) => Promise<GpuMethodPlan>;

function dimsOf(p: AttentionProblem, blockRows: number, blockCols: number): BlockMaskDims {
  return { batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, blockRows, blockCols, causal: p.causal };
}

export const planXAttentionOnGpu: GpuMethodPlanner = async (ctx, encoder, method, views, p) => {
  if (!(method instanceof XAttentionMethod)) throw new InvalidArgumentError('method', method.name, 'an XAttentionMethod');
  const s = method.settings;
  const dims = dimsOf(p, s.blockSize, s.blockSize);
  if (s.dense) {
    return { dims, destroy() {}, finish: (mask, _w, phase) => ({ mask, stats: { ...statsFromMask(method.name, mask), phase } }) };
  }
  const plan = await encodeXAttentionPlan(ctx.device, encoder, views, s, { causal: p.causal, scale: p.scale });
  return {
    dims, blocks: plan.blocks, blockScores: plan.blockScores, destroy: plan.destroy,
    finish: (mask, blockScores, phase) => ({ mask, blockScores, stats: { ...statsFromMask(method.name, mask, { threshold: s.threshold }), phase } }),
  };
};

export const planTriShapeOnGpu: GpuMethodPlanner = async (ctx, encoder, method, _views, p) => {
  if (!(method instanceof TriShapeMethod)) throw new InvalidArgumentError('method', method.name, 'a TriShapeMethod');
  if (!p.causal) throw new InvalidArgumentError('causal', false, 'true: tri-shape is defined for causal attention only');
  const { br, bc } = method.settings;
  const dims = dimsOf(p, br, bc);
  const plan = await encodeTriShapePlan(ctx.device, encoder, dims, triShapeTokenRule(method.settings));
  return { dims, blocks: plan.blocks, destroy: plan.destroy, finish: (mask, _w, phase) => ({ mask, stats: { ...statsFromMask(method.name, mask), phase } }) };
};

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
  let uniform: GPUBuffer | undefined;
  try {
    const encoder = device.createCommandEncoder({ label });
    plan = await planner(ctx, encoder, method, views, p);
    const attention: AttentionDispatchOptions = {
      causal: p.causal, scale: p.scale, blocks: { kind: 'all' },
    };
    if (plan.blocks) {
      const { rowPtr, colIdx, dims, tokenRule } = plan.blocks;
      attention.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: dims.blockRows, blockCols: dims.blockCols };
      attention.tokenRule = tokenRule;
    }
    uniform = await encodeAttention(device, encoder, views, attention);
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
    uniform?.destroy();
    for (const t of Object.values(views)) t.buffer.destroy();
  }
}
