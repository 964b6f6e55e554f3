/// <reference types="@webgpu/types" />
/**
 * One layer's attention inside the GPU forward pass (gpu-llama.ts), over views of the model's
 * activations and KV cache, for every method with GPU kernels:
 *   dense                 the flash kernel over every causal block
 *   xattention, tri_shape the method's GPU planner, then the block-sparse kernel over its block list
 *   flash_skip_softmax    its in-loop kernel (the skip decision inside the flash loop; the plan is the
 *                         kept tiles it writes)
 *   sla, sage_sla         its whole-method encoding; SLA reads dense BHLD f32, so q/k/v are gathered
 *                         into that layout first and its f32 output scattered back (a few memory-bound
 *                         passes, small next to the attention itself)
 *   per-head values       each head's own instance of any of these, on one-head views (gpu-per-head.ts)
 * Each sparse method leaves a PendingPlan: after the pass's submit it reads back what the statistics
 * need (block list or kept flags, O(blocks) ints) and returns the BlockPlan the CPU method would.
 */
import type { AttentionProblem } from '../core/attention-shape.js';
import { BlockMask } from '../core/block-mask.js';
import { InvalidArgumentError, UnsupportedError } from '../core/errors.js';
import { phaseOf, statsFromMask } from '../core/stats.js';
import { type AttentionDispatchOptions, encodeAttention } from '../backends/webgpu/attention/attention-dispatch.js';
import type { AttentionViews } from '../backends/webgpu/attention/attention-views.js';
import { readBlockMask, readBuffers } from '../backends/webgpu/attention/block-list.js';
import type { StorageType } from '../backends/webgpu/model/gemm.js';
import { flatGrid, headsLayoutProgram } from '../backends/webgpu/model/layer-ops.js';
import { type KernelEncoder, storageBuffer } from '../backends/webgpu/model/model-kernels.js';
import { encodeFlashSkipAttention } from '../backends/webgpu/methods/flash-skip-softmax/webgpu-flash-skip-attention.js';
import { gpuMethod } from '../backends/webgpu/methods/index.js';
import { encodeSlaAttention, readBlockMap } from '../backends/webgpu/methods/sla/sla-attention.js';
import type { GpuTensorView } from '../backends/webgpu/runtime/buffers.js';
import { readBuffer } from '../backends/webgpu/runtime/buffers.js';
import type { WebGpuContext } from '../backends/webgpu/runtime/webgpu-device.js';
import { FlashSkipSoftmax } from '../methods/flash-skip-softmax/flash-skip-softmax.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../methods/method.js';
import { SAGE_SLA_HEAD_DIMS, SageSlaMethod } from '../methods/sage-sla/sage-sla.js';
import { blockMapToMask } from '../methods/sla/sla-block-map.js';
import { checkProjectionSize, projectionIsZero } from '../methods/sla/sla-projection.js';
import { SlaMethod } from '../methods/sla/sla.js';
import { PerHeadMethod } from '../methods/per-head.js';
import { encodePerHead } from './gpu-per-head.js';
import { checkSlaLimits } from '../backends/webgpu/methods/sla/sla-limits.js';

/** A sparse layer's plan, to read back after the pass's submit. */
export interface PendingPlan {
  read(): Promise<BlockPlan>;
  destroy(): void;
}

/** Methods the GPU forward pass runs (besides dense). */
export const GPU_MODEL_METHODS = ['xattention', 'tri_shape', 'flash_skip_softmax', 'sla', 'sage_sla'] as const;

/** Model views: every tensor is [1, heads, length, D] with rows of `strideL` elements (BLHD inside a wider row). */
export interface ModelAttentionViews extends AttentionViews {
  q: GpuTensorView;
  k: GpuTensorView;
  v: GpuTensorView;
  o: GpuTensorView;
}

/**
 * Encodes attention of one layer with `method` into enc; o is written. p describes the call (causal,
 * queries at positions [p.queryOffset, p.keyLength)). Returns the pending plan of a sparse method.
 */
export async function encodeModelAttention(
  ctx: WebGpuContext, enc: KernelEncoder, method: SparseAttentionMethod, views: ModelAttentionViews, p: AttentionProblem, dtype: StorageType,
  planOpts: Pick<PlanOptions, 'promptRowsAfter'> = {},
): Promise<PendingPlan | undefined> {
  const device = ctx.device;
  const phase = phaseOf(p.queryLength);
  if (method.name === 'dense') {
    for (const b of await encodeAttention(device, enc.encoder, views, { causal: true, scale: p.scale, blocks: { kind: 'all' } })) enc.own(b);
    return undefined;
  }
  if (method instanceof PerHeadMethod) return encodePerHead(ctx, enc, method, views, p, dtype, (c, e, m, v, pp, d) => encodeModelAttention(c, e, m, v, pp, d, planOpts));
  if (method instanceof FlashSkipSoftmax) return encodeFlashSkip(ctx, enc, method, views, p);
  if (method instanceof SlaMethod) return encodeSla(ctx, enc, method, views, p, dtype);
  const planner = gpuMethod(method.name)?.planner;
  if (!planner) throw new UnsupportedError(`the GPU model runner has no GPU kernels for method "${method.name}" (it runs: ${GPU_MODEL_METHODS.join(', ')})`);
  const plan = await planner(ctx, enc.encoder, method, { q: views.q, k: views.k }, p, planOpts);
  const opts: AttentionDispatchOptions = { causal: true, scale: p.scale, blocks: { kind: 'all' } };
  if (plan.blocks) {
    const { rowPtr, colIdx, dims, tokenRule } = plan.blocks;
    opts.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: dims.blockRows, blockCols: dims.blockCols };
    opts.tokenRule = tokenRule;
  }
  for (const b of await encodeAttention(device, enc.encoder, views, opts)) enc.own(b);
  return {
    destroy: () => plan.destroy(),
    async read() {
      const mask = plan.blocks ? await readBlockMask(device, plan.blocks) : BlockMask.full(plan.dims);
      let scores: Float32Array | undefined;
      if (plan.blockScores) {
        const count = mask.batch * mask.heads * mask.numQueryBlocks * mask.numKeyBlocks;
        scores = new Float32Array((await readBuffers(device, [{ buffer: plan.blockScores, bytes: count * 4 }]))[0]);
      }
      return plan.finish(mask, scores, phase);
    },
  };
}

async function encodeFlashSkip(ctx: WebGpuContext, enc: KernelEncoder, method: FlashSkipSoftmax, views: ModelAttentionViews, p: AttentionProblem): Promise<PendingPlan> {
  const s = method.settings;
  if (s.groupConsensus && p.heads !== p.kvHeads) {
    throw new UnsupportedError('flash_skip_softmax.group_consensus on WebGPU: the in-loop kernel decides per query head; a group-wide vote needs one workgroup per KV head (not built)');
  }
  const device = ctx.device;
  const phase = phaseOf(p.queryLength);
  const threshold = method.thresholdFor(phase, p.keyLength);
  const br = phase === 'decode' ? 1 : s.br;
  const dims = { batch: 1, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, blockRows: br, blockCols: s.bc, causal: true };
  const keptBytes = p.heads * Math.ceil(p.queryLength / br) * Math.ceil(p.keyLength / s.bc) * 4;
  const kept = storageBuffer(device, keptBytes, 'fs.kept');
  const counters = storageBuffer(device, 12, 'fs.counters');
  enc.own(kept);
  enc.own(counters);
  enc.own(await encodeFlashSkipAttention(device, enc.encoder, views, { causal: true, scale: p.scale, threshold, br, bc: s.bc, kept, counters }));
  return {
    destroy() {},
    async read() {
      const keptView = Uint8Array.from(new Uint32Array(await readBuffer(device, kept, keptBytes)));
      const [, skipped, raised] = new Uint32Array(await readBuffer(device, counters, 12));
      const mask = BlockMask.fromDense(dims, keptView);
      const stats = method.stats(mask, keptView, raised, threshold, p.groupSize);
      return { mask, stats: { ...stats, phase, extra: { ...stats.extra, skipped_tiles: skipped } } };
    },
  };
}

async function encodeSla(
  ctx: WebGpuContext, enc: KernelEncoder, method: SlaMethod, views: ModelAttentionViews, p: AttentionProblem, dtype: StorageType,
): Promise<PendingPlan> {
  const sage = method instanceof SageSlaMethod;
  if (sage && !SAGE_SLA_HEAD_DIMS.includes(p.headDim)) {
    throw new InvalidArgumentError('head size', p.headDim, '64 or 128 for sage_sla (its int8 kernels are built for these; use sla for other sizes)');
  }
  const device = ctx.device;
  const s = method.settings;
  checkProjectionSize(s.proj, p.valueDim);
  checkSlaLimits(device.limits, p, { BLKQ: s.BLKQ, BLKK: s.BLKK, linear: !projectionIsZero(s.proj) });
  const own = <T extends GPUBuffer>(b: T): T => (enc.own(b), b);
  const D = p.headDim;
  const dense = (v: GpuTensorView, label: string): GpuTensorView => {
    const buffer = own(storageBuffer(device, v.heads * v.length * D * 4, label));
    return { batch: 1, heads: v.heads, length: v.length, headDim: D, buffer, dtype: 'f32', offset: 0, strideB: v.heads * v.length * D, strideH: v.length * D, strideL: D };
  };
  const layout = async (dir: 'gather' | 'scatter', strided: GpuTensorView, flat: GpuTensorView) => {
    const spec = dir === 'gather' ? { t: dtype, to: 'f32' as const, dir } : { t: 'f32' as const, to: dtype, dir };
    const buffers = dir === 'gather' ? { src: strided.buffer, dst: flat.buffer } : { src: flat.buffer, dst: strided.buffer };
    await enc.dispatch(headsLayoutProgram, spec, { rows: strided.length, heads: strided.heads, width: D, offset: strided.offset, stride: strided.strideL }, buffers, flatGrid(strided.heads * strided.length * D));
  };
  const inputs = { q: dense(views.q, 'sla.q'), k: dense(views.k, 'sla.k'), v: dense(views.v, 'sla.v'), o: dense(views.o, 'sla.o') };
  for (const name of ['q', 'k', 'v'] as const) await layout('gather', views[name], inputs[name]);
  const { dims, selection } = await encodeSlaAttention(device, enc.encoder, p, inputs, { ...s, causal: true, scale: p.scale, sage }, own);
  await layout('scatter', views.o, inputs.o);
  const phase = phaseOf(p.queryLength);
  return {
    destroy() {},
    async read() {
      const map = await readBlockMap(device, dims, selection);
      const mask = blockMapToMask(map);
      const stats = statsFromMask(method.name, mask, { topk: map.topk, topkRatio: s.topkRatio });
      return { mask, stats: { ...stats, phase }, blockScores: map.pooledScores };
    },
  };
}
