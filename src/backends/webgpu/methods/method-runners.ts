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
 * GPU_METHOD_TIMERS time the runners that are one command buffer on inputs uploaded once, for
 * the benchmark (the host-level runners include uploads and readbacks).
 */
import { describeAttention } from '../../../core/attention-shape.js';
import { InvalidArgumentError, UnsupportedError } from '../../../core/errors.js';
import { phaseOf, statsFromMask } from '../../../core/stats.js';
import type { HeadTensor } from '../../../core/tensor.js';
import { FlashSkipSoftmax } from '../../../methods/flash-skip-softmax.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../../../methods/method.js';
import { SAGE_SLA_HEAD_DIMS, SageSlaMethod } from '../../../methods/sage-sla.js';
import { blockMapToMask } from '../../../methods/sla-block-map.js';
import { SlaMethod } from '../../../methods/sla.js';
import { createOutputTensor, createStorageBuffer, uploadTensor } from '../runtime/buffers.js';
import type { WebGpuContext } from '../runtime/webgpu-device.js';
import { encodeFlashSkipAttention, flashSkipAttentionWebGpu } from './flash-skip-softmax/webgpu-flash-skip-attention.js';
import { fencedRuns, type KernelMs, type TimerRuns } from '../runtime/pass-profiler.js';
import { planTriShapeOnGpu, planXAttentionOnGpu, runPlannedMethodWebGpu } from './method-plans.js';
import { encodeSlaAttention, slaAttentionWebGpu, uploadSlaInputs } from './sla/sla-attention.js';

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

export type GpuMethodTimer = (
  ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions, runs: TimerRuns,
) => Promise<{ ms: number[]; kernelMs?: KernelMs }>;

async function timeFlashSkip(ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions, runs: TimerRuns) {
  if (!(method instanceof FlashSkipSoftmax)) throw new UnsupportedError(`method "${method.name}" is not a FlashSkipSoftmax instance`);
  const s = method.settings;
  const p = describeAttention(q, k, v, { causal: opts.causal ?? s.isCausal, scale: opts.scale });
  const phase = opts.phase ?? phaseOf(q.length);
  const threshold = method.thresholdFor(phase, k.length);
  const br = phase === 'decode' ? 1 : s.br;
  const { device } = ctx;
  const views = {
    q: uploadTensor(device, q, 'fs-timer.q'), k: uploadTensor(device, k.toDType(q.dtype), 'fs-timer.k'), v: uploadTensor(device, v.toDType(q.dtype), 'fs-timer.v'),
    o: createOutputTensor(device, { batch: p.batch, heads: p.heads, length: p.queryLength, headDim: p.valueDim }, q.layout, q.dtype, 'fs-timer.o'),
  };
  const keptBytes = p.batch * p.heads * Math.ceil(p.queryLength / br) * Math.ceil(p.keyLength / s.bc) * 4;
  try {
    return await fencedRuns(device, async (encoder) => {
      const kept = createStorageBuffer(device, keptBytes, 'fs-timer.kept');
      const counters = createStorageBuffer(device, 12, 'fs-timer.counters');
      const params = await encodeFlashSkipAttention(device, encoder, views, { causal: p.causal, scale: p.scale, threshold, br, bc: s.bc, kept, counters });
      return [kept, counters, params];
    }, runs);
  } finally {
    for (const t of Object.values(views)) t.buffer.destroy();
  }
}

async function timeSla(ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions, runs: TimerRuns) {
  if (!(method instanceof SlaMethod)) throw new UnsupportedError(`method "${method.name}" is not an SlaMethod instance`);
  const s = method.settings;
  const slaOpts = { ...s, causal: opts.causal ?? s.causal, scale: opts.scale, sage: method instanceof SageSlaMethod };
  const { device } = ctx;
  const { inputs, problem } = uploadSlaInputs(device, q, k, v, slaOpts);
  try {
    return await fencedRuns(device, async (encoder) => {
      const made: GPUBuffer[] = [];
      await encodeSlaAttention(device, encoder, problem, inputs, slaOpts, (b) => (made.push(b), b));
      return made;
    }, runs);
  } finally {
    for (const t of Object.values(inputs)) t.buffer.destroy();
  }
}

/** Benchmark timers of the whole-method runners whose every step is one command buffer. */
export const GPU_METHOD_TIMERS: Readonly<Record<string, GpuMethodTimer>> = {
  flash_skip_softmax: timeFlashSkip,
  sla: timeSla,
  sage_sla: timeSla,
};
