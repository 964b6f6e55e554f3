/**
 * Methods whose every step runs on the GPU, keyed by method name: the WebGPU backend's
 * `methodAttention` looks a method up here and runs it whole (plan and attention), so no step
 * falls back to the CPU and no L×L matrix is read back. A method absent from this table takes
 * the generic path: its CPU plan, then the block-sparse kernel.
 *
 *   xattention  estimation, selection and the CSR block list on the GPU (xattention-plan.ts), then
 *               the block-sparse kernel on that list; `dense: true` runs dense attention
 *   tri_shape   the block list from a GPU kernel (trishape-blocks.ts) and the token rule in WGSL
 *   flash_skip_softmax (v1, v2)  the in-loop kernel (flash-skip-attention.ts): the plan IS the
 *                                kernel's kept tiles. v1's cummax rule and v2's sequential rule
 *                                agree in exact arithmetic (threshold < 1), so both run it.
 *   sla, sage_sla                block map, sparse part, linear part and projection
 *                                (sla-attention.ts); the plan is the GPU's block map.
 */
import { InvalidArgumentError, UnsupportedError } from '../../core/errors.js';
import type { HeadTensor } from '../../core/tensor.js';
import { FlashSkipSoftmax } from '../../methods/flash-skip-softmax.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../../methods/method.js';
import { SAGE_SLA_HEAD_DIMS, SageSlaMethod } from '../../methods/sage-sla.js';
import { blockMapToMask } from '../../methods/sla-block-map.js';
import { SlaMethod } from '../../methods/sla.js';
import { phaseOf, statsFromMask } from '../../core/stats.js';
import type { WebGpuContext } from './device.js';
import { flashSkipAttentionWebGpu } from './flash-skip-attention.js';
import { planTriShapeOnGpu, planXAttentionOnGpu, runPlannedMethodWebGpu } from './method-plans.js';
import { slaAttentionWebGpu } from './sla-attention.js';

export type GpuMethodRunner = (
  ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions,
) => Promise<{ output: HeadTensor; plan: BlockPlan }>;

async function runFlashSkip(ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions) {
  if (!(method instanceof FlashSkipSoftmax)) throw new UnsupportedError(`method "${method.name}" is not a FlashSkipSoftmax instance`);
  const s = method.settings;
  const causal = opts.causal ?? s.isCausal;
  if (s.groupConsensus && q.heads !== k.heads) {
    throw new UnsupportedError('flash_skip_softmax.group_consensus on WebGPU: the in-loop kernel decides per query head; a group-wide vote needs one workgroup per KV head (not built)');
  }
  const phase = opts.phase ?? phaseOf(q.length);
  const threshold = method.thresholdFor(phase, k.length);
  const r = await flashSkipAttentionWebGpu(ctx, q, k, v, { causal, scale: opts.scale, threshold, br: s.br, bc: s.bc, phase });
  const stats = method.stats(r.kept, r.keptView, r.raisedRows, threshold, q.heads / k.heads);
  return { output: r.output, plan: { mask: r.kept, stats: { ...stats, phase, extra: { ...stats.extra, skipped_tiles: r.skippedTiles } } } };
}

async function runSla(ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions) {
  if (!(method instanceof SlaMethod)) throw new UnsupportedError(`method "${method.name}" is not an SlaMethod instance`);
  const sage = method instanceof SageSlaMethod;
  if (sage && !SAGE_SLA_HEAD_DIMS.includes(q.headDim)) {
    throw new InvalidArgumentError('head size (q.headDim)', q.headDim, '64 or 128 for sage_sla (its int8 kernels are built for these; use sla for other sizes)');
  }
  const s = method.settings;
  const { output, map } = await slaAttentionWebGpu(ctx, q, k, v, { ...s, causal: opts.causal ?? s.causal, scale: opts.scale, sage });
  const mask = blockMapToMask(map);
  const stats = statsFromMask(method.name, mask, { topk: map.topk, topkRatio: s.topkRatio });
  return { output, plan: { mask, stats: { ...stats, phase: opts.phase ?? phaseOf(map.queryLength) }, blockScores: map.pooledScores } };
}

export const GPU_METHOD_RUNNERS: Readonly<Record<string, GpuMethodRunner>> = {
  flash_skip_softmax: runFlashSkip,
  sla: runSla,
  sage_sla: runSla,
  xattention: (ctx, method, q, k, v, opts) => runPlannedMethodWebGpu(ctx, planXAttentionOnGpu, method, q, k, v, opts),
  tri_shape: (ctx, method, q, k, v, opts) => runPlannedMethodWebGpu(ctx, planTriShapeOnGpu, method, q, k, v, opts),
};
