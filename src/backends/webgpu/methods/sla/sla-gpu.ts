/// <reference types="@webgpu/types" />
/**
 * SLA's and SageSLA's row of the GPU method table (methods/index.ts): block map, sparse part
 * (SageSLA: the int8 kernels of sage-sla/), linear part and projection in one command buffer
 * (sla-attention.ts); the plan is the GPU's block map. The timer runs it on inputs uploaded once.
 */
import { InvalidArgumentError, UnsupportedError } from '../../../../core/errors.js';
import { phaseOf, statsFromMask } from '../../../../core/stats.js';
import type { HeadTensor } from '../../../../core/tensor.js';
import type { PlanOptions, SparseAttentionMethod } from '../../../../methods/method.js';
import { SAGE_SLA_HEAD_DIMS, SageSlaMethod } from '../../../../methods/sage-sla/sage-sla.js';
import { blockMapToMask } from '../../../../methods/sla/sla-block-map.js';
import { SlaMethod } from '../../../../methods/sla/sla.js';
import { fencedRuns, type TimerRuns } from '../../runtime/pass-profiler.js';
import type { WebGpuContext } from '../../runtime/webgpu-device.js';
import type { GpuMethod } from '../gpu-method.js';
import { encodeSlaAttention, slaAttentionWebGpu, slaInputBuffers, uploadSlaInputs } from './sla-attention.js';

async function runSla(ctx: WebGpuContext, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions) {
  if (!(method instanceof SlaMethod)) throw new UnsupportedError(`method "${method.name}" is not an SlaMethod instance`);
  const sage = method instanceof SageSlaMethod;
  if (sage && !SAGE_SLA_HEAD_DIMS.includes(q.headDim)) {
    throw new InvalidArgumentError('head size (q.headDim)', q.headDim, '64 or 128 for sage_sla (its int8 kernels are built for these; use sla for other sizes)');
  }
  const s = method.settings;
  const { output, map } = await slaAttentionWebGpu(ctx, q, k, v, { ...s, causal: opts.causal ?? s.causal, scale: opts.scale, sage, keysAfter: method.keysAfter(opts) });
  const mask = blockMapToMask(map);
  const stats = statsFromMask(method.name, mask, { topk: map.topk, topkRatio: s.topkRatio });
  return { output, plan: { mask, stats: { ...stats, phase: opts.phase ?? phaseOf(map.queryLength) }, blockScores: map.pooledScores } };
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
    for (const b of slaInputBuffers(inputs)) b.destroy();
  }
}

/** Both methods: runSla reads `sage` from the instance (SageSlaMethod extends SlaMethod). */
export const SLA_GPU: GpuMethod = { run: runSla, time: timeSla };
