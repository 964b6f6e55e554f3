/// <reference types="@webgpu/types" />
/**
 * SLA (and SageSLA) whole on the GPU, one command buffer: K smoothing and mean pooling
 * (sla-pool.ts), pooled scores and top-k → sparseMap / lut / CSR (sla-block-select.ts), the sparse
 * part Os through the block-sparse attention skeleton (or its int8 twin for SageSLA,
 * sage-sla-attention.ts), the linear part and the projection (sla-linear.ts). Only the output and
 * the block map ([B, H, nQB, nKB], for the plan) come back; no L×L matrix exists anywhere.
 * Reference twin: methods/sla.ts (SlaMethod.attention) and methods/sage-sla.ts.
 *
 *   q [B, H, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv] (either layout, f32 or f16; read as f32)
 *   → out [B, H, Lq, Dv] f32 in q's layout
 */
import { type AttentionProblem, describeAttention } from '../../../../core/attention-shape.js';
import { InvalidArgumentError, UnsupportedError } from '../../../../core/errors.js';
import type { HeadTensor } from '../../../../core/tensor.js';
import { type SlaBlockMap, slaWindowTopk } from '../../../../methods/sla/sla-block-map.js';
import type { FeatureMap, LinearBlocks } from '../../../../methods/sla/sla-linear-part.js';
import { checkProjectionSize, projectionIsZero, type SlaProjection } from '../../../../methods/sla/sla-projection.js';
import { type AttentionDispatchOptions, encodeAttention } from '../../attention/attention-dispatch.js';
import { encodeTensorCoreAttention, tensorCoreSpecFor } from '../../attention/tensor-core-attention.js';
import { createOutputTensor, createStorageBuffer, type GpuTensorView, readBuffer, readTensor, uploadArray, uploadTensor } from '../../runtime/buffers.js';
import { BufferUsage, hasTensorCores, type WebGpuContext } from '../../runtime/webgpu-device.js';
import { encodeSageSparsePart } from '../sage-sla/sage-sla-attention.js';
import { checkSlaLimits } from './sla-limits.js';
import { encodeBlockSelect, selectedCounts, type SelectDims } from './sla-block-select.js';
import { encodeGrid } from './sla-grid.js';
import { LINEAR_ROWS_MAX_E, slaLinearRowsProgram } from './sla-linear-rows.js';
import { slaBlockSumsProgram, slaFeatureMapProgram, slaPrefixSumsProgram, slaProjectionProgram, slaQueryBlockSumsProgram, type SlaLinearParam } from './sla-linear.js';
import { encodeMeanPool, encodePoolCenter } from './sla-pool.js';

export interface SlaGpuOptions {
  causal: boolean;
  scale?: number;
  topkRatio: number;
  BLKQ: number;
  BLKK: number;
  featureMap: FeatureMap;
  linearBlocks: LinearBlocks;
  proj: SlaProjection;
  /** SageSLA: the sparse part on int8 Q/K (per-block scales) and f16 V. */
  sage?: boolean;
  /** Keys of the whole call after k (a causal window cut from it): top-k counts their blocks too, as the CPU's getBlockMap. */
  keysAfter?: number;
}

export interface SlaGpuResult {
  output: HeadTensor;
  /** The block map the GPU selected (counts are the shape's: min(topk, valid blocks)). */
  map: SlaBlockMap;
}

/** Dense BHLD f32 view of a tensor, uploaded. */
function uploadBhld(device: GPUDevice, t: HeadTensor, label: string): GpuTensorView {
  return uploadTensor(device, t.toDType('f32').toLayout('BHLD'), label);
}

function checkSlaCall(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: SlaGpuOptions): AttentionProblem {
  const p = describeAttention(q, k, v, { causal: opts.causal, scale: opts.scale });
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) t.assertFinite(name);
  checkProjectionSize(opts.proj, p.valueDim, p.heads);
  for (const [name, x] of [['BLKQ', opts.BLKQ], ['BLKK', opts.BLKK]] as const) {
    if (!Number.isInteger(x) || x < 1) throw new InvalidArgumentError(name, x, 'an integer >= 1');
  }
  return p;
}

/** SLA's inputs on the device: dense BHLD f32 q, k, v and the f32 output. */
export interface SlaGpuInputs {
  q: GpuTensorView;
  k: GpuTensorView;
  v: GpuTensorView;
  o: GpuTensorView;
  /**
   * f16 copies of q, k, v (dense BHLD) when the inputs are f16 and the adapter has tensor cores: the
   * sparse part then runs on the tensor-core kernel, which writes O as f32 straight from its
   * accumulators (on f32 copies it took the portable kernel: 2.8 ms of SLA's 5.0 at 4K on the H200).
   */
  half?: { q: GpuTensorView; k: GpuTensorView; v: GpuTensorView };
}

/** Every buffer of the inputs (the caller destroys them). */
export function slaInputBuffers(inputs: SlaGpuInputs): GPUBuffer[] {
  const { q, k, v, o, half } = inputs;
  return [q, k, v, o, ...(half ? [half.q, half.k, half.v] : [])].map((t) => t.buffer);
}

/** Uploads q, k, v as SLA reads them and allocates the output; the caller destroys the buffers. */
export function uploadSlaInputs(device: GPUDevice, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: SlaGpuOptions): { inputs: SlaGpuInputs; problem: AttentionProblem } {
  const p = checkSlaCall(q, k, v, opts);
  checkSlaLimits(device.limits, p, { BLKQ: opts.BLKQ, BLKK: opts.BLKK, linear: !projectionIsZero(opts.proj) });
  const inputs: SlaGpuInputs = {
    q: uploadBhld(device, q, 'sla.q'), k: uploadBhld(device, k, 'sla.k'), v: uploadBhld(device, v, 'sla.v'),
    o: createOutputTensor(device, { batch: p.batch, heads: p.heads, length: p.queryLength, headDim: p.valueDim }, 'BHLD', 'f32', 'sla.o'),
  };
  // Only where the tensor-core kernel could take the call (its other conditions are checked at encode).
  if (!opts.sage && hasTensorCores(device) && [q, k, v].every((t) => t.dtype === 'f16') && (p.headDim === 64 || p.headDim === 128) && p.valueDim === p.headDim) {
    const half = (t: HeadTensor, label: string) => uploadTensor(device, t.toLayout('BHLD'), label);
    inputs.half = { q: half(q, 'sla.q16'), k: half(k, 'sla.k16'), v: half(v, 'sla.v16') };
  }
  return { inputs, problem: p };
}

/**
 * Encodes the whole method on device inputs into `encoder`: the block map, the sparse part and the
 * linear part, writing inputs.o. Every buffer it creates goes to `own` (destroy them after the work
 * is done); the returned handles let the caller read the block map back.
 */
export async function encodeSlaAttention(
  device: GPUDevice, encoder: GPUCommandEncoder, p: AttentionProblem, inputs: SlaGpuInputs, opts: SlaGpuOptions, own: (b: GPUBuffer) => GPUBuffer,
): Promise<{ dims: SelectDims; selection: BlockMapBuffers }> {
  const views = { q: inputs.q, k: inputs.k, v: inputs.v };
  const dims: SelectDims = {
    batch: p.batch, heads: p.heads, kvHeads: p.kvHeads, queryLength: p.queryLength, keyLength: p.keyLength,
    blockQ: opts.BLKQ, blockK: opts.BLKK, causal: p.causal, topk: slaWindowTopk(opts.topkRatio, p.keyLength, opts.keysAfter ?? 0, opts.BLKK), headDim: p.headDim,
  };
  const sel = await encodeBlockMap(device, encoder, p, dims, views, own);
  const blocks = { kind: 'csr' as const, rowPtr: sel.rowPtr, colIdx: sel.colIdx, blockRows: opts.BLKQ, blockCols: opts.BLKK };
  if (opts.sage) await encodeSageSparsePart(device, encoder, p, { ...views, o: inputs.o, kMean: sel.kMean }, blocks, own);
  else await encodeSparsePart(device, encoder, p, inputs, blocks, own);
  if (!projectionIsZero(opts.proj)) await encodeLinearPart(device, encoder, p, dims, { ...views, o: inputs.o.buffer, lut: sel.lut }, opts, own);
  return { dims, selection: sel };
}

/** Os on the tensor-core kernel from the f16 copies where it takes the shape, else the dispatcher on f32. */
async function encodeSparsePart(
  device: GPUDevice, encoder: GPUCommandEncoder, p: AttentionProblem, inputs: SlaGpuInputs, blocks: AttentionDispatchOptions['blocks'], own: (b: GPUBuffer) => GPUBuffer,
): Promise<void> {
  const call: AttentionDispatchOptions = { causal: p.causal, scale: p.scale, blocks, kernel: 'tensor-core' };
  if (inputs.half) {
    const views = { ...inputs.half, o: inputs.o };
    const spec = tensorCoreSpecFor(device, views, call);
    if (typeof spec !== 'string') {
      own(await encodeTensorCoreAttention(device, encoder, views, call, spec));
      return;
    }
  }
  (await encodeAttention(device, encoder, { q: inputs.q, k: inputs.k, v: inputs.v, o: inputs.o }, { causal: p.causal, scale: p.scale, blocks })).forEach(own);
}

export async function slaAttentionWebGpu(ctx: WebGpuContext, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: SlaGpuOptions): Promise<SlaGpuResult> {
  const { device } = ctx;
  const { inputs, problem: p } = uploadSlaInputs(device, q, k, v, opts);
  const owned: GPUBuffer[] = slaInputBuffers(inputs);
  const own = <T extends GPUBuffer>(b: T): T => (owned.push(b), b);
  try {
    const encoder = device.createCommandEncoder({ label: 'sla' });
    const { dims, selection } = await encodeSlaAttention(device, encoder, p, inputs, opts, own);
    device.queue.submit([encoder.finish()]);
    const output = (await readTensor(device, inputs.o, 'BHLD')).toLayout(q.layout);
    return { output, map: await readBlockMap(device, dims, selection) };
  } finally {
    for (const b of owned) b.destroy();
  }
}

export interface BlockMapBuffers {
  kMean: GPUBuffer;
  scores: GPUBuffer;
  sparseMap: GPUBuffer;
  lut: GPUBuffer;
  rowPtr: GPUBuffer;
  colIdx: GPUBuffer;
  counts: Int32Array;
}

async function encodeBlockMap(
  device: GPUDevice, encoder: GPUCommandEncoder, p: AttentionProblem, dims: SelectDims,
  views: { q: GpuTensorView; k: GpuTensorView }, own: (b: GPUBuffer) => GPUBuffer,
): Promise<BlockMapBuffers> {
  const D = p.headDim;
  const nQB = Math.ceil(p.queryLength / dims.blockQ);
  const nKB = Math.ceil(p.keyLength / dims.blockK);
  const rows = p.batch * p.heads * nQB;
  const kMean = own(createStorageBuffer(device, p.batch * p.kvHeads * D * 4, 'sla.kMean'));
  const pooledQ = own(createStorageBuffer(device, rows * D * 4, 'sla.pooledQ'));
  const pooledK = own(createStorageBuffer(device, p.batch * p.kvHeads * nKB * D * 4, 'sla.pooledK'));
  own(await encodeMeanPool(device, encoder, views.q.buffer, pooledQ, p.batch * p.heads, p.queryLength, D, dims.blockQ));
  own(await encodeMeanPool(device, encoder, views.k.buffer, pooledK, p.batch * p.kvHeads, p.keyLength, D, dims.blockK));
  own(await encodePoolCenter(device, encoder, pooledK, kMean, p.batch * p.kvHeads, p.keyLength, D, dims.blockK));
  const counts = selectedCounts(dims);
  const rowPtr = new Int32Array(rows + 1);
  for (let r = 0; r < rows; r++) rowPtr[r + 1] = rowPtr[r] + counts[r];
  const buf = {
    pooledQ, pooledK,
    scores: own(createStorageBuffer(device, rows * nKB * 4, 'sla.scores')),
    sparseMap: own(createStorageBuffer(device, rows * nKB * 4, 'sla.sparseMap')),
    rowPtr: own(uploadArray(device, rowPtr, 'sla.rowPtr')),
    lut: own(uploadArray(device, new Int32Array(rows * dims.topk).fill(-1), 'sla.lut', BufferUsage.COPY_SRC)),
    colIdx: own(createStorageBuffer(device, rowPtr[rows] * 4, 'sla.colIdx')),
  };
  (await encodeBlockSelect(device, encoder, dims, buf)).forEach(own);
  return { kMean, scores: buf.scores, sparseMap: buf.sparseMap, lut: buf.lut, rowPtr: buf.rowPtr, colIdx: buf.colIdx, counts };
}

export async function readBlockMap(device: GPUDevice, dims: SelectDims, sel: BlockMapBuffers): Promise<SlaBlockMap> {
  const nQB = Math.ceil(dims.queryLength / dims.blockQ);
  const nKB = Math.ceil(dims.keyLength / dims.blockK);
  const n = dims.batch * dims.heads * nQB * nKB;
  return {
    batch: dims.batch, heads: dims.heads, queryLength: dims.queryLength, keyLength: dims.keyLength,
    blockQ: dims.blockQ, blockK: dims.blockK, causal: dims.causal, numQueryBlocks: nQB, numKeyBlocks: nKB, topk: dims.topk,
    sparseMap: Uint8Array.from(new Uint32Array(await readBuffer(device, sel.sparseMap, n * 4))),
    lut: new Int32Array(await readBuffer(device, sel.lut, dims.batch * dims.heads * nQB * dims.topk * 4)),
    counts: sel.counts,
    pooledScores: new Float32Array(await readBuffer(device, sel.scores, n * 4)),
  };
}

async function encodeLinearPart(
  device: GPUDevice, encoder: GPUCommandEncoder, p: AttentionProblem, dims: SelectDims,
  buf: { q: GpuTensorView; k: GpuTensorView; v: GpuTensorView; o: GPUBuffer; lut: GPUBuffer }, opts: SlaGpuOptions, own: (b: GPUBuffer) => GPUBuffer,
): Promise<void> {
  const D = p.headDim;
  const Dv = p.valueDim;
  if (Dv > 64 * LINEAR_ROWS_MAX_E) throw new UnsupportedError(`SLA's linear part on WebGPU keeps ${LINEAR_ROWS_MAX_E} value channels per thread: Dv must be at most ${64 * LINEAR_ROWS_MAX_E}, got ${Dv}`);
  const W = Dv + 1;
  const nQB = Math.ceil(p.queryLength / dims.blockQ);
  const nKB = Math.ceil(p.keyLength / dims.blockK);
  const kvRows = p.batch * p.kvHeads;
  const qRows = p.batch * p.heads * p.queryLength;
  const phiQ = own(createStorageBuffer(device, qRows * D * 4, 'sla.phiQ'));
  const phiK = own(createStorageBuffer(device, kvRows * p.keyLength * D * 4, 'sla.phiK'));
  const sums = own(createStorageBuffer(device, kvRows * nKB * D * W * 4, 'sla.blockSums'));
  const prefix = own(createStorageBuffer(device, kvRows * (nKB + 1) * D * W * 4, 'sla.prefixSums'));
  const hq = own(createStorageBuffer(device, p.batch * p.heads * nQB * D * W * 4, 'sla.queryBlockSums'));
  const ol = own(createStorageBuffer(device, qRows * Dv * 4, 'sla.ol'));
  const map = { map: opts.featureMap };
  own(await encodeGrid(device, encoder, slaFeatureMapProgram, map, { headDim: D }, { x: buf.q.buffer, phi: phiQ }, qRows));
  own(await encodeGrid(device, encoder, slaFeatureMapProgram, map, { headDim: D }, { x: buf.k.buffer, phi: phiK }, kvRows * p.keyLength));
  own(await encodeGrid(device, encoder, slaBlockSumsProgram, {}, { keyLength: p.keyLength, headDim: D, valueDim: Dv, blockK: dims.blockK, numKeyBlocks: nKB },
    { phiK, v: buf.v.buffer, sums }, kvRows * nKB * D * W));
  own(await encodeGrid(device, encoder, slaPrefixSumsProgram, {}, { width: D * W, numKeyBlocks: nKB }, { sums, prefix }, kvRows * D * W));
  const spec = { unselected: opts.linearBlocks === 'unselected' };
  const params: Record<SlaLinearParam, number> = {
    heads: p.heads, groupSize: p.groupSize, queryLength: p.queryLength, keyLength: p.keyLength,
    queryOffset: Math.max(0, p.queryOffset),  // read only when causal, where Lq <= Lk
    causal: p.causal ? 1 : 0, numQueryBlocks: nQB, numKeyBlocks: nKB, topk: dims.topk, blockQ: dims.blockQ, blockK: dims.blockK, headDim: D, valueDim: Dv,
  };
  own(await encodeGrid(device, encoder, slaQueryBlockSumsProgram, spec, params, { prefix, sums, lut: buf.lut, hq }, p.batch * p.heads * nQB * D * W));
  // One 64-thread workgroup per query row.
  own(await encodeGrid(device, encoder, slaLinearRowsProgram, spec, params, { phiQ, phiK, v: buf.v.buffer, hq, lut: buf.lut, ol }, qRows * 64));
  const proj = opts.proj;
  const projBuffers: Record<string, GPUBuffer> = { ol, out: buf.o };
  if (proj.kind === 'weights') {
    projBuffers.weight = own(uploadArray(device, proj.weight, 'sla.projWeight'));
    if (proj.bias) projBuffers.bias = own(uploadArray(device, proj.bias, 'sla.projBias'));
  }
  const projSpec = { kind: proj.kind === 'weights' ? 'weights' as const : 'identity' as const, bias: proj.kind === 'weights' && proj.bias !== null };
  const projHeads = proj.kind === 'weights' ? proj.heads : 1;
  own(await encodeGrid(device, encoder, slaProjectionProgram, projSpec, { valueDim: Dv, queryLength: p.queryLength, projHeads }, projBuffers, qRows * Dv));
}
