/// <reference types="@webgpu/types" />
/**
 * Per-head knob values (methods/per-head.ts) on the GPU forward pass: as on the CPU, each query
 * head runs its own instance of the method alone, here by encoding that instance's GPU kernels
 * over one-head views of the same buffers (the views are strided, so head h of q/o and KV head
 * floor(h·Hkv/H) of k/v are an element offset away; nothing is copied). Every knob of every method
 * with GPU kernels therefore works per head, at the cost of H dispatches per layer instead of one.
 * The per-head plans are assembled into one BlockPlan over all heads for the statistics, as
 * PerHeadMethod assembles its CPU plans (block counts summed; method figures averaged weighted
 * by valid blocks).
 */
import type { AttentionProblem } from '../core/attention-shape.js';
import { BlockMask } from '../core/block-mask.js';
import type { StorageType } from '../backends/webgpu/model/gemm.js';
import type { KernelEncoder } from '../backends/webgpu/model/model-kernels.js';
import type { GpuTensorView } from '../backends/webgpu/runtime/buffers.js';
import type { WebGpuContext } from '../backends/webgpu/runtime/webgpu-device.js';
import type { BlockPlan, SparseAttentionMethod } from '../methods/method.js';
import { kvHead, mergeStats, type PerHeadMethod } from '../methods/per-head.js';
import type { ModelAttentionViews, PendingPlan } from './gpu-attention.js';

type EncodeOne = (ctx: WebGpuContext, enc: KernelEncoder, method: SparseAttentionMethod, views: ModelAttentionViews, p: AttentionProblem, dtype: StorageType) => Promise<PendingPlan | undefined>;

export async function encodePerHead(
  ctx: WebGpuContext, enc: KernelEncoder, method: PerHeadMethod, views: ModelAttentionViews, p: AttentionProblem, dtype: StorageType, encodeOne: EncodeOne,
): Promise<PendingPlan> {
  if (method.values.length !== p.heads) {
    throw new RangeError(`per_head ${method.setting} has ${method.values.length} values; the module has ${p.heads} query heads`);
  }
  const one = (v: GpuTensorView, h: number): GpuTensorView => ({ ...v, heads: 1, offset: v.offset + h * v.headDim });
  const pending: PendingPlan[] = [];
  const problem = { ...p, heads: 1, kvHeads: 1, groupSize: 1 };
  try {
    for (let h = 0; h < p.heads; h++) {
      const kh = kvHead(h, p.heads, p.kvHeads);
      const hv = { q: one(views.q, h), k: one(views.k, kh), v: one(views.v, kh), o: one(views.o, h) };
      const plan = await encodeOne(ctx, enc, method.heads[h], hv, problem, dtype);
      if (!plan) throw new RangeError(`per-head method "${method.name}": head ${h} planned nothing`);
      pending.push(plan);
    }
  } catch (err) {
    for (const x of pending) x.destroy();
    throw err;
  }
  return {
    destroy: () => pending.forEach((x) => x.destroy()),
    read: async () => assembleHeadPlans(method.name, await Promise.all(pending.map((x) => x.read()))),
  };
}

/** One-head plans (batch 1) as one plan over all heads, each head with its own token rule. */
export function assembleHeadPlans(name: string, plans: BlockPlan[]): BlockPlan {
  const masks = plans.map((x) => x.mask);
  const d = masks[0].dims;
  const nQB = masks[0].numQueryBlocks;
  const rowPtr = new Int32Array(masks.length * nQB + 1);
  const cols: number[] = [];
  let r = 0;
  for (const m of masks) {
    for (let qb = 0; qb < nQB; qb++) {
      for (const kb of m.keptBlocks(0, 0, qb)) cols.push(kb);
      rowPtr[++r] = cols.length;
    }
  }
  const mask = new BlockMask({ ...d, batch: 1, heads: masks.length }, rowPtr, Int32Array.from(cols), masks.map((m) => m.tokenRuleFor(0)));
  const plan: BlockPlan = { mask, stats: mergeStats(name, plans.map((x) => x.stats)) };
  if (plans.every((x) => x.blockScores)) {
    const per = nQB * masks[0].numKeyBlocks;
    const scores = new Float32Array(plans.length * per);
    plans.forEach((x, h) => scores.set(x.blockScores!.subarray(0, per), h * per));
    plan.blockScores = scores;
  }
  return plan;
}
