/// <reference types="@webgpu/types" />
/**
 * XAttention's whole plan on the GPU: estimation (webgpu-xattention-estimate.ts, or on tensor cores
 * tensor-core-xattention-estimate.ts) → selection
 * (xattention-select.ts) → CSR block list (block-list.ts), four dispatches in one command encoder,
 * nothing read back before attention runs. The GPU twin of estimateXAttention
 * (methods/xattention-estimate.ts), which the tests compare it with: same block lists, W within
 * f32 tolerance.
 *
 *   q [B, H, Lq, D], k [B, Hkv, Lk, D] → W f32 [B, H, nQB, nKB], rowPtr i32 [B·H·nQB + 1], colIdx i32
 *
 * GPU memory: W and the kept-block bitmap (nQB·nKB floats and bits per head) and colIdx, sized by
 * the causally valid blocks; no (L/S)² score matrix exists.
 */
import { describeAttention } from '../../../../core/attention-shape.js';
import type { BlockMask, BlockMaskDims } from '../../../../core/block-mask.js';
import { InvalidArgumentError, UnsupportedError } from '../../../../core/errors.js';
import { HeadTensor } from '../../../../core/tensor.js';
import { checkXAttentionParams, diagonalBlock, stridedGeometry, type XAttentionEstimate, type XAttentionParams } from '../../../../methods/xattention/antidiagonal-estimate.js';
import { createStorage, encodeBlockList, flagWordsPerRow, type GpuBlockList, readBlockMask, readBuffers } from '../../attention/block-list.js';
import type { GpuTensorView } from '../../runtime/buffers.js';
import { uploadArray, uploadTensor } from '../../runtime/buffers.js';
import { isSoftwareDevice, type WebGpuContext } from '../../runtime/webgpu-device.js';
import { compileProgram, encodeProgram } from '../../runtime/program.js';
import { columnsPerThread, groupColumns, rowCapacity, type XAttentionEstimateSpec, xattentionEstimateProgram } from './webgpu-xattention-estimate.js';
import { selectSpec, xattentionSelectProgram } from './xattention-select.js';
import { encodeTensorCoreEstimate, type TcEstimateOptions, tcEstimateProgram, tensorCoreEstimateSpec } from './tensor-core-xattention-estimate.js';

export interface XAttentionGpuOptions {
  causal: boolean;
  scale: number;
  /** See XAttentionEstimateSpec.rowLoop; default 'rolled' on software adapters, else 'unrolled'. */
  rowLoop?: XAttentionEstimateSpec['rowLoop'];
  /**
   * 'auto' (default): the tensor-core estimation (tensor-core-xattention-estimate.ts) when the
   * adapter and the shape allow it, else the portable one; 'portable' / 'tensor-core' force one.
   */
  estimateKernel?: 'auto' | 'portable' | 'tensor-core';
  /** Tensor-core estimate variant (benchmarks; `emulate` only with estimateKernel 'tensor-core', for tests). */
  tensorCore?: TcEstimateOptions;
}

/** The plan's GPU buffers; the caller destroys them (destroy()) after attention has been submitted. */
export interface GpuXAttentionPlan {
  blocks: GpuBlockList;
  /** W f32 [B, H, nQB, nKB]. */
  blockScores: GPUBuffer;
  destroy(): void;
}

/** Kept blocks can only be causally valid ones (up to the diagonal) or, non-causal, any block. */
function blockCapacity(dims: BlockMaskDims): number {
  const g = stridedGeometry(dims.queryLength, dims.keyLength, { threshold: 1, blockSize: dims.blockRows, stride: 1 }, dims.causal);
  let perHead = 0;
  for (let a = 0; a < g.numQueryBlocks; a++) perHead += dims.causal ? diagonalBlock(g, a) + 1 : g.numKeyBlocks;
  return perHead * dims.batch * dims.heads;
}

/**
 * Encodes the XAttention plan of q and k (views; queries right-aligned to keys) into `encoder`.
 * Throws UnsupportedError with the reason when the device cannot run this shape.
 */
export async function encodeXAttentionPlan(
  device: GPUDevice, encoder: GPUCommandEncoder, views: { q: GpuTensorView; k: GpuTensorView }, params: XAttentionParams, opts: XAttentionGpuOptions,
): Promise<GpuXAttentionPlan> {
  checkXAttentionParams(params);
  const { q, k } = views;
  const dims: BlockMaskDims = {
    batch: q.batch, heads: q.heads, queryLength: q.length, keyLength: k.length, blockRows: params.blockSize, blockCols: params.blockSize, causal: opts.causal,
  };
  const estimate = await encodeXAttentionEstimate(device, encoder, views, params, opts);
  try {
    const selection = await encodeXAttentionSelection(device, encoder, estimate.blockScores, dims, params.threshold);
    return { blocks: selection.blocks, blockScores: estimate.blockScores, destroy: () => { selection.destroy(); estimate.destroy(); } };
  } catch (err) {
    estimate.destroy();
    throw err;
  }
}

/** Step 1-5: the estimation dispatch writing W f32 [B, H, nQB, nKB]; destroy() frees W and the Params. */
export async function encodeXAttentionEstimate(
  device: GPUDevice, encoder: GPUCommandEncoder, views: { q: GpuTensorView; k: GpuTensorView }, params: XAttentionParams, opts: XAttentionGpuOptions,
): Promise<{ blockScores: GPUBuffer; destroy(): void }> {
  const { q, k } = views;
  if (q.dtype !== k.dtype) throw new InvalidArgumentError('k.dtype', k.dtype, `equal to q.dtype (${q.dtype})`);
  if (q.heads % k.heads !== 0) throw new InvalidArgumentError('k.heads', k.heads, `a divisor of q.heads (${q.heads})`);
  if (opts.causal && q.length > k.length) throw new InvalidArgumentError('q.length', q.length, `at most k.length (${k.length}) for causal xattention`);
  if (q.dtype === 'f16' && !device.features.has('shader-f16')) throw new UnsupportedError('f16 estimation needs the shader-f16 feature, which this device lacks');
  const g = stridedGeometry(q.length, k.length, params, opts.causal);
  const { numQueryBlocks: nQB, numKeyBlocks: nKB } = g;
  const wBytes = q.batch * q.heads * nQB * nKB * 4;
  if (opts.tensorCore?.emulate && opts.estimateKernel !== 'tensor-core') throw new InvalidArgumentError('tensorCore.emulate', true, "only with estimateKernel 'tensor-core'");
  if ((opts.estimateKernel ?? 'auto') !== 'portable') {
    const tc = tensorCoreEstimateSpec(device, q, k, g.rowsPerBlock, params.stride, opts.causal, opts.tensorCore);
    const reason = typeof tc === 'string' ? tc : tcEstimateProgram.supports(tc, { queryLength: q.length, keyLength: k.length, stride: params.stride, heads: q.heads, batch: q.batch }, device.limits)
      ?? (Math.max(q.buffer.size, k.buffer.size, wBytes) > device.limits.maxStorageBufferBindingSize ? 'a buffer exceeds maxStorageBufferBindingSize' : null);
    // 'auto' takes the portable kernel wherever the tensor-core one cannot run (e.g. a device with
    // less workgroup memory than its tiles); only an explicit 'tensor-core' says why not.
    if (reason && opts.estimateKernel === 'tensor-core') {
      throw new UnsupportedError(typeof tc === 'string' ? `tensor-core XAttention estimation: ${tc}` : `tensor-core XAttention estimation cannot run this shape: ${reason}`);
    }
    if (!reason && typeof tc !== 'string') {
      const blockScores = createStorage(device, wBytes, 'xattention.blockScores');
      const owned = await encodeTensorCoreEstimate(device, encoder, q, k, blockScores, tc, {
        stride: params.stride, scale: opts.scale, keyCols: g.keyCols, causalOffset: g.offset, numQueryBlocks: nQB, numKeyBlocks: nKB,
      });
      return { blockScores, destroy: () => { blockScores.destroy(); owned.forEach((b) => b.destroy()); } };
    }
  }
  const rowLoop = opts.rowLoop ?? (isSoftwareDevice(device) ? 'rolled' : 'unrolled');
  const capacity = rowCapacity(g.rowsPerBlock, rowLoop);
  const spec: XAttentionEstimateSpec = { dtype: q.dtype, rowCapacity: capacity, rowLoop, columnsPerThread: columnsPerThread(capacity, rowLoop) };
  const reason = xattentionEstimateProgram.supports(spec, {
    rowsPerBlock: g.rowsPerBlock, numQueryBlocks: nQB, heads: q.heads, batch: q.batch, headDim: q.headDim, maxBindingBytes: Math.max(q.buffer.size, k.buffer.size, wBytes),
  }, device.limits);
  if (reason) throw new UnsupportedError(`WebGPU XAttention estimation cannot run this shape: ${reason}`);
  const compiled = await compileProgram(device, xattentionEstimateProgram, spec);
  const blockScores = createStorage(device, wBytes, 'xattention.blockScores');
  const uniform = encodeProgram(device, encoder, xattentionEstimateProgram, compiled, {
    params: {
      heads: q.heads, groupSize: q.heads / k.heads, queryLength: q.length, keyLength: k.length,
      stride: params.stride, queryRows: g.queryRows, keyCols: g.keyCols, causalOffset: g.offset,
      causal: opts.causal ? 1 : 0, scaleOverStride: opts.scale / params.stride, numQueryBlocks: nQB, numKeyBlocks: nKB,
      headDimVec4: q.headDim / 4, rowsPerBlock: g.rowsPerBlock, groupCols: groupColumns(g.rowsPerBlock, spec.columnsPerThread),
      qOffset: q.offset, qStrideB: q.strideB, qStrideH: q.strideH, qStrideL: q.strideL,
      kOffset: k.offset, kStrideB: k.strideB, kStrideH: k.strideH, kStrideL: k.strideL,
    },
    buffers: { q: q.buffer, k: k.buffer, blockSums: blockScores },
    workgroups: [nQB, q.heads, q.batch],
  });
  return { blockScores, destroy: () => { blockScores.destroy(); uniform.destroy(); } };
}

/**
 * Step 6/7 and the CSR list: W f32 [B, H, nQB, nKB] on the GPU → the kept blocks of `dims`
 * (blockRows = blockCols = B). The returned plan owns its buffers (not W). `algorithm` forces the
 * selection kernel's sort or tiled path (tests); 'auto' sorts whenever a row fits the sort.
 */
export async function encodeXAttentionSelection(
  device: GPUDevice, encoder: GPUCommandEncoder, blockScores: GPUBuffer, dims: BlockMaskDims, threshold: number,
  algorithm: 'auto' | 'sort' | 'tiled' = 'auto',
): Promise<{ blocks: GpuBlockList; destroy(): void }> {
  const nQB = Math.ceil(dims.queryLength / dims.blockRows);
  const nKB = Math.ceil(dims.keyLength / dims.blockCols);
  const rows = dims.batch * dims.heads * nQB;
  const words = flagWordsPerRow(nKB);
  const spec = selectSpec(nKB, device.limits, algorithm);
  const reason = xattentionSelectProgram.supports(spec, { workgroupsX: nQB, numKeyBlocks: nKB }, device.limits);
  if (reason) throw new UnsupportedError(`WebGPU XAttention selection cannot run this shape: ${reason}`);
  const compiled = await compileProgram(device, xattentionSelectProgram, spec);
  const flags = createStorage(device, rows * words * 4, 'xattention.flags');
  const counts = createStorage(device, rows * 4, 'xattention.counts');
  const uniforms = [encodeProgram(device, encoder, xattentionSelectProgram, compiled, {
    params: {
      heads: dims.heads, numQueryBlocks: nQB, numKeyBlocks: nKB, blockSize: dims.blockRows,
      queryLength: dims.queryLength, keyLength: dims.keyLength, causal: dims.causal ? 1 : 0, threshold, flagWords: words,
    },
    buffers: { blockSums: blockScores, flags, counts },
    workgroups: [nQB, dims.heads, dims.batch],
  })];
  const blocks = await encodeBlockList(device, encoder, { flags, counts, dims, capacity: blockCapacity(dims), label: 'xattention', uniforms });
  const owned = [flags, counts, blocks.rowPtr, blocks.colIdx, ...uniforms];
  return { blocks, destroy: () => owned.forEach((b) => b.destroy()) };
}

/**
 * Host-level twin of selectBlocks over every row: W [B, H, nQB, nKB] → the kept blocks, selected
 * on the GPU (for tests of the selection alone, e.g. on exact ties).
 */
export async function selectXAttentionBlocksWebGpu(
  ctx: WebGpuContext, blockScores: Float32Array, dims: BlockMaskDims, threshold: number, algorithm: 'auto' | 'sort' | 'tiled' = 'auto',
): Promise<BlockMask> {
  const w = uploadArray(ctx.device, blockScores, 'xattention.blockScores');
  const encoder = ctx.device.createCommandEncoder({ label: 'xattention-select' });
  let selection: { blocks: GpuBlockList; destroy(): void } | undefined;
  try {
    selection = await encodeXAttentionSelection(ctx.device, encoder, w, dims, threshold, algorithm);
    ctx.device.queue.submit([encoder.finish()]);
    return await readBlockMask(ctx.device, selection.blocks);
  } finally {
    selection?.destroy();
    w.destroy();
  }
}

/** The plan's mask and W read back to the host (O(nQB·nKB) per head). */
export async function readXAttentionPlan(device: GPUDevice, plan: GpuXAttentionPlan): Promise<XAttentionEstimate> {
  const mask: BlockMask = await readBlockMask(device, plan.blocks);
  const n = mask.batch * mask.heads * mask.numQueryBlocks * mask.numKeyBlocks;
  const [w] = await readBuffers(device, [{ buffer: plan.blockScores, bytes: n * 4 }]);
  return { mask, blockScores: new Float32Array(w) };
}

/**
 * Host-level twin of estimateXAttention: uploads q and k, plans on the GPU, reads the mask and W
 * back. q [B, H, Lq, D], k [B, Hkv, Lk, D] (GQA: head h reads KV head floor(h / (H/Hkv))); k given
 * as a GPU view (f32, like q) is read in place, not uploaded.
 */
export async function estimateXAttentionWebGpu(
  ctx: WebGpuContext, q: HeadTensor, k: HeadTensor | GpuTensorView, params: XAttentionParams,
  opts: { causal?: boolean; scale?: number } & Pick<XAttentionGpuOptions, 'rowLoop' | 'estimateKernel' | 'tensorCore'> = {},
): Promise<XAttentionEstimate> {
  const p = describeAttention(q, k, k, opts);
  q.assertFinite('q');
  const resident = !(k instanceof HeadTensor);
  if (k instanceof HeadTensor) k.assertFinite('k');
  const { device } = ctx;
  const views = { q: uploadTensor(device, q, 'xattention.q'), k: k instanceof HeadTensor ? uploadTensor(device, k.toDType(q.dtype), 'xattention.k') : k };
  let plan: GpuXAttentionPlan | undefined;
  try {
    const encoder = device.createCommandEncoder({ label: 'xattention-plan' });
    plan = await encodeXAttentionPlan(device, encoder, views, params, { causal: p.causal, scale: p.scale, rowLoop: opts.rowLoop, estimateKernel: opts.estimateKernel, tensorCore: opts.tensorCore });
    device.queue.submit([encoder.finish()]);
    return await readXAttentionPlan(device, plan);
  } finally {
    plan?.destroy();
    views.q.buffer.destroy();
    if (!resident) views.k.buffer.destroy();
  }
}
