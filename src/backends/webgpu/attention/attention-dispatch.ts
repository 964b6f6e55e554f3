/// <reference types="@webgpu/types" />
/**
 * Encodes one attention dispatch of the skeleton in attention-program.ts from GPU tensor views.
 * This is the level the engine uses (views into a resident KV cache, a block table it owns); the
 * host-level functions in webgpu-flash-attention.ts and block-sparse-attention.ts upload HeadTensors and
 * call it. Per-head token rules are split here into runs of heads (head-rule-split.ts), so every
 * kernel below sees one rule per dispatch.
 */
import type { BlockMask } from '../../../core/block-mask.js';
import { InvalidArgumentError, UnsupportedError } from '../../../core/errors.js';
import { tokenRuleParams } from '../methods/gpu-token-rules.js';
import { bytesPerElement, type GpuTensorView } from '../runtime/buffers.js';
import { compileProgram, encodeProgram } from '../runtime/program.js';
import { isSoftwareDevice } from '../runtime/webgpu-device.js';
import { ATTENTION_WORKGROUP_SIZE, type AttentionParamName, type AttentionSpec, attentionProgram } from './attention-program.js';
import type { AttentionDispatchOptions, AttentionViews } from './attention-views.js';
import { needsHeadSplit, oneRuleOptions, splitByHeadRules } from './head-rule-split.js';
import { encodeTensorCoreAttention, tensorCoreSpecFor } from './tensor-core-attention.js';

export type { AttentionDispatchOptions, AttentionViews, BlockList, PagedKvBinding, TensorCoreOptions } from './attention-views.js';

/** The spec a dispatch with these views and options uses (exposed for tests and benchmarks). */
export function attentionSpecFor(device: GPUDevice, views: AttentionViews, opts: AttentionDispatchOptions): AttentionSpec {
  return {
    blocks: opts.blocks.kind,
    tokenRule: oneRuleOptions(opts).tokenRule?.kind ?? 'none',
    kv: opts.paged ? 'paged' : 'strided',
    dtype: views.q.dtype,
    headDim: views.q.headDim,
    valueDim: views.v.headDim,
    headDimLoop: opts.headDimLoop ?? (isSoftwareDevice(device) ? 'rolled' : 'unrolled'),
  };
}

/**
 * Compiles (once per device and variant) and encodes the call into `encoder`: one dispatch, or one
 * per run of heads with equal token rules. Returns the buffers made for it (Params uniforms, block
 * rows of head runs): destroy them once the submitted work is done, or leave them to GC.
 */
export async function encodeAttention(device: GPUDevice, encoder: GPUCommandEncoder, views: AttentionViews, opts: AttentionDispatchOptions): Promise<GPUBuffer[]> {
  checkAttentionCall(views, opts);
  if (!needsHeadSplit(opts)) return [await encodeOneRule(device, encoder, views, oneRuleOptions(opts))];
  const made: GPUBuffer[] = [];
  try {
    for (const sub of splitByHeadRules(device, encoder, views, opts, (b) => made.push(b))) made.push(await encodeOneRule(device, encoder, sub.views, sub.opts));
  } catch (err) {
    for (const b of made) b.destroy();
    throw err;
  }
  return made;
}

/** The dispatch options carrying a mask's token rules: its one rule, or one per head. */
export function maskTokenRules(mask: BlockMask): Pick<AttentionDispatchOptions, 'tokenRule' | 'headTokenRules'> {
  return mask.headTokenRules ? { headTokenRules: mask.headTokenRules } : { tokenRule: mask.tokenRule };
}

async function encodeOneRule(device: GPUDevice, encoder: GPUCommandEncoder, views: AttentionViews, opts: AttentionDispatchOptions): Promise<GPUBuffer> {
  if ((opts.kernel ?? 'auto') !== 'portable') {
    const tc = tensorCoreSpecFor(device, views, opts, opts.tensorCore);
    if (typeof tc !== 'string') return encodeTensorCoreAttention(device, encoder, views, opts, tc);
    if (opts.kernel === 'tensor-core') throw new UnsupportedError(`tensor-core attention: ${tc}`);
  }
  const spec = attentionSpecFor(device, views, opts);
  const d = attentionDispatch(device, views, opts, spec, ATTENTION_WORKGROUP_SIZE);
  const reason = attentionProgram.supports(spec, d.shape, device.limits);
  if (reason) throw new UnsupportedError(`WebGPU attention cannot run this shape: ${reason}`);
  const compiled = await compileProgram(device, attentionProgram, spec);
  return encodeProgram(device, encoder, attentionProgram, compiled, d);
}

/** The checks every attention call makes on its views; returns the key length. */
function checkAttentionCall(views: AttentionViews, opts: AttentionDispatchOptions): number {
  const { q, k, v, o } = views;
  const Lq = q.length;
  const Lk = opts.keyLength ?? (opts.paged ? NaN : k.length);
  if (!Number.isInteger(Lk) || Lk < 1) throw new InvalidArgumentError('keyLength', opts.keyLength, 'a positive integer (required with paged KV)');
  for (const [name, t] of [['k', k], ['v', v], ['o', o]] as const) {
    if (t.dtype !== q.dtype) throw new InvalidArgumentError(`${name}.dtype`, t.dtype, `equal to q.dtype (${q.dtype})`);
  }
  if (q.heads % k.heads !== 0) throw new InvalidArgumentError('k.heads', k.heads, `a divisor of q.heads (${q.heads})`);
  if (opts.causal && Lq > Lk) throw new InvalidArgumentError('q.length', Lq, `at most keyLength (${Lk}) for causal attention`);
  if (opts.headTokenRules && opts.headTokenRules.length !== q.heads) throw new InvalidArgumentError('headTokenRules.length', opts.headTokenRules.length, `${q.heads} (q.heads)`);
  return Lk;
}

/**
 * The checks, Params, buffers and grid of one dispatch of the portable skeleton with
 * `workgroupRows` rows per workgroup; shared by every program built on the skeleton (they add
 * their own params and buffers).
 */
export function attentionDispatch(device: GPUDevice, views: AttentionViews, opts: AttentionDispatchOptions, spec: AttentionSpec, workgroupRows: number) {
  const { q, k, v, o } = views;
  const Lq = q.length;
  const Lk = checkAttentionCall(views, opts);
  if (spec.dtype === 'f16' && !device.features.has('shader-f16')) throw new UnsupportedError('f16 attention needs the shader-f16 feature, which this device lacks');
  const blocks = opts.blocks;
  const blockRows = blocks.kind === 'csr' ? blocks.blockRows : workgroupRows;
  const numQueryBlocks = Math.ceil(Lq / blockRows);
  const chunksPerBlock = Math.ceil(blockRows / workgroupRows);
  const bytes = (t: GpuTensorView) => t.buffer.size;
  const shape = { batch: q.batch, heads: q.heads, workgroupsX: numQueryBlocks * chunksPerBlock, maxBindingBytes: Math.max(bytes(q), bytes(k), bytes(v), bytes(o)) };
  checkViewFits('o', o, Lq, bytesPerElement(o.dtype));
  const params: Record<AttentionParamName, number> = {
    batch: q.batch, heads: q.heads, groupSize: q.heads / k.heads, queryLength: Lq, keyLength: Lk,
    // Causal calls have Lq <= Lk; a non-causal call with Lq > Lk uses the offset only in a token
    // rule's window, where a negative offset cannot travel in a u32: clamp it.
    queryOffset: Math.max(0, Lk - Lq),
    causal: opts.causal ? 1 : 0, scaleLog2e: opts.scale * Math.LOG2E,
    blockRows, blockCols: blocks.kind === 'csr' ? blocks.blockCols : Lk, numQueryBlocks, chunksPerBlock,
    qOffset: q.offset, qStrideB: q.strideB, qStrideH: q.strideH, qStrideL: q.strideL,
    kOffset: k.offset, kStrideB: k.strideB, kStrideH: k.strideH, kStrideL: k.strideL,
    vOffset: v.offset, vStrideB: v.strideB, vStrideH: v.strideH, vStrideL: v.strideL,
    oOffset: o.offset, oStrideB: o.strideB, oStrideH: o.strideH, oStrideL: o.strideL,
    ...tokenRuleParams(oneRuleOptions(opts).tokenRule, Lq, Lk),
    pageSize: opts.paged?.pageSize ?? 1, tableStride: opts.paged?.tableStride ?? 0,
    headDimVec4: q.headDim / 4, valueDimVec4: v.headDim / 4,
  };
  const buffers: Record<string, GPUBuffer> = { q: q.buffer, k: k.buffer, v: v.buffer, o: o.buffer };
  if (blocks.kind === 'csr') Object.assign(buffers, { rowPtr: blocks.rowPtr, colIdx: blocks.colIdx });
  if (opts.paged) buffers.blockTable = opts.paged.blockTable;
  return { params, buffers, shape, workgroups: [shape.workgroupsX, q.heads, q.batch] as [number, number, number] };
}

/** The output is written, so an out-of-range view would be a silent robustness clamp: refuse it. */
function checkViewFits(name: string, t: GpuTensorView, length: number, elementBytes: number): void {
  const last = t.offset + (t.batch - 1) * t.strideB + (t.heads - 1) * t.strideH + (length - 1) * t.strideL + t.headDim;
  if (last * elementBytes > t.buffer.size) {
    throw new InvalidArgumentError(`${name} view`, `${last} elements`, `within its buffer (${t.buffer.size} B)`);
  }
}
