/**
 * Methods whose every step runs on the GPU, keyed by method name: the WebGPU backend's
 * `methodAttention` looks a method up here and runs it whole (plan and attention), so no step
 * falls back to the CPU and no L×L matrix is read back. A method absent from this table takes
 * the generic path: its CPU plan, then the block-sparse kernel.
 *
 *   xattention  estimation, selection and the CSR block list on the GPU (xattention-plan.ts), then
 *               the block-sparse kernel on that list; `dense: true` runs dense attention
 *   tri_shape   the block list from a GPU kernel (trishape-blocks.ts) and the token rule in WGSL
 */
import type { HeadTensor } from '../../core/tensor.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../../methods/method.js';
import type { WebGpuContext } from './device.js';
import { planTriShapeOnGpu, planXAttentionOnGpu, runPlannedMethodWebGpu } from './method-plans.js';

export type GpuMethodRunner = (
  ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions,
) => Promise<{ output: HeadTensor; plan: BlockPlan }>;

export const GPU_METHOD_RUNNERS: Readonly<Record<string, GpuMethodRunner>> = {
  xattention: (ctx, method, q, k, v, opts) => runPlannedMethodWebGpu(ctx, planXAttentionOnGpu, method, q, k, v, opts),
  tri_shape: (ctx, method, q, k, v, opts) => runPlannedMethodWebGpu(ctx, planTriShapeOnGpu, method, q, k, v, opts),
};
