/// <reference types="@webgpu/types" />
/**
 * flash-skip-softmax's row of the GPU method table (methods/index.ts): the in-loop kernel
 * (webgpu-flash-skip-attention.ts) runs the method whole; the plan IS the kernel's kept tiles.
 * v1's cummax rule and v2's sequential rule agree in exact arithmetic (threshold < 1), so both
 * run it. The timer runs it on inputs uploaded once (one command buffer).
 */
import { describeAttention } from '../../../../core/attention-shape.js';
import { UnsupportedError } from '../../../../core/errors.js';
import { phaseOf } from '../../../../core/stats.js';
import type { HeadTensor } from '../../../../core/tensor.js';
import { FlashSkipSoftmax } from '../../../../methods/flash-skip-softmax/flash-skip-softmax.js';
import type { PlanOptions, SparseAttentionMethod } from '../../../../methods/method.js';
import { createOutputTensor, createStorageBuffer, uploadTensor } from '../../runtime/buffers.js';
import { fencedRuns, type TimerRuns } from '../../runtime/pass-profiler.js';
import type { WebGpuContext } from '../../runtime/webgpu-device.js';
import type { GpuMethod } from '../gpu-method.js';
import { encodeFlashSkipAttention, flashSkipAttentionWebGpu } from './webgpu-flash-skip-attention.js';

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

export const FLASH_SKIP_GPU: GpuMethod = { run: runFlashSkip, time: timeFlashSkip };
