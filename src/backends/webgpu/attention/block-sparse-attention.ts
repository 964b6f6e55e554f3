/// <reference types="@webgpu/types" />
/**
 * Block-sparse flash attention on WebGPU: the attention skeleton with the 'csr' block list, so a
 * workgroup visits only the key blocks a BlockMask keeps for its (b, h, query block), plus the
 * mask's optional token rule (tri-shape; one per head when they differ) evaluated in WGSL. Also the paged-KV form, where K/V are
 * read from a cache [numPages, Hkv, pageSize, D] through a block table. Reference twins:
 * backends/cpu/flash-attention.ts with the same mask, and, for paged KV, the same after
 * gatherPagedKv (backends/cpu/paged-kv.ts).
 *
 *   q [B, H, Lq, D], k/v [B, Hkv, Lk, D|Dv] → out [B, H, Lq, Dv] in q's layout and dtype
 */
import { type AttentionOptions, describeAttention } from '../../../core/attention-shape.js';
import type { BlockMask } from '../../../core/block-mask.js';
import { InvalidArgumentError } from '../../../core/errors.js';
import { HeadTensor } from '../../../core/tensor.js';
import { checkMaskFits } from '../../cpu/naive-attention.js';
import { type AttentionDispatchOptions, encodeAttention, maskTokenRules } from './attention-dispatch.js';
import { createOutputTensor, type GpuTensorView, readTensor, uploadArray, uploadTensor } from '../runtime/buffers.js';
import { BufferUsage, type WebGpuContext } from '../runtime/webgpu-device.js';

export async function blockSparseAttentionWebGpu(
  ctx: WebGpuContext, q: HeadTensor, k: HeadTensor, v: HeadTensor, mask: BlockMask, opts: AttentionOptions = {},
): Promise<HeadTensor> {
  const p = describeAttention(q, k, v, opts);
  checkMaskFits(mask, q, k, p.causal);
  return runAttentionOnHost(ctx, q, k, v, { causal: p.causal, scale: p.scale, mask, label: 'block-sparse-attention' });
}

export interface PagedAttentionOptions extends AttentionOptions {
  /** Keys of each sequence (all sequences of the batch have the same length here). */
  keyLength: number;
  /** Int32 [batch, tableStride]: logical key block (keys [n·pageSize, (n+1)·pageSize)) → page. */
  blockTable: Int32Array;
  tableStride: number;
  /** Kept blocks; dense when absent. Its keyLength must equal `keyLength`. */
  mask?: BlockMask;
}

/**
 * Attention over a paged KV cache. kCache/vCache are HeadTensors of shape
 * [numPages, Hkv, pageSize, D] in BHLD (batch = pages, length = page size), uploaded for the call,
 * or GPU views of that shape already on the device (a resident cache, read in place).
 */
export async function pagedAttentionWebGpu(
  ctx: WebGpuContext, q: HeadTensor, kCache: HeadTensor | GpuTensorView, vCache: HeadTensor | GpuTensorView, opts: PagedAttentionOptions,
): Promise<HeadTensor> {
  const { keyLength, blockTable, tableStride } = opts;
  for (const [name, t] of [['kCache', kCache], ['vCache', vCache]] as const) {
    if (t instanceof HeadTensor && t.layout !== 'BHLD') throw new InvalidArgumentError(`${name}.layout`, t.layout, '"BHLD" ([numPages, Hkv, pageSize, D])');
  }
  const pageSize = kCache.length;
  if (vCache.length !== pageSize || vCache.batch !== kCache.batch || vCache.heads !== kCache.heads) {
    throw new InvalidArgumentError('vCache shape', dimsOf(vCache), `pages, heads and page size equal to kCache's ${JSON.stringify(dimsOf(kCache))}`);
  }
  const pages = Math.ceil(keyLength / pageSize);
  if (!Number.isInteger(tableStride) || tableStride < pages) throw new InvalidArgumentError('tableStride', tableStride, `an integer >= ceil(keyLength / pageSize) = ${pages}`);
  if (blockTable.length !== q.batch * tableStride) throw new InvalidArgumentError('blockTable.length', blockTable.length, `${q.batch * tableStride} (batch · tableStride)`);
  for (let b = 0; b < q.batch; b++)
    for (let n = 0; n < pages; n++) {
      const page = blockTable[b * tableStride + n];
      if (!(page >= 0 && page < kCache.batch)) throw new InvalidArgumentError(`blockTable[${b}, ${n}]`, page, `a page index in [0, ${kCache.batch})`);
    }
  if (q.headDim !== kCache.headDim) throw new InvalidArgumentError('kCache.headDim', kCache.headDim, `equal to q.headDim (${q.headDim})`);
  if (q.heads % kCache.heads !== 0) throw new InvalidArgumentError('kCache.heads', kCache.heads, `a divisor of q.heads (${q.heads})`);
  const causal = opts.causal ?? false;
  if (opts.mask) {
    const want = { batch: q.batch, heads: q.heads, queryLength: q.length, keyLength, causal };
    for (const [field, value] of Object.entries(want)) {
      const got = opts.mask[field as keyof typeof want];
      if (got !== value) throw new InvalidArgumentError(`mask.${field}`, got, `${value} to match the attention call`);
    }
  }
  return runAttentionOnHost(ctx, q, kCache, vCache, {
    causal, scale: opts.scale ?? 1 / Math.sqrt(q.headDim), mask: opts.mask, label: 'paged-attention',
    paged: { blockTable, tableStride, keyLength, pageSize },
  });
}

export interface HostRun {
  causal: boolean;
  /** Which kernel serves the call (AttentionDispatchOptions.kernel); default 'auto'. */
  kernel?: AttentionDispatchOptions['kernel'];
  tensorCore?: AttentionDispatchOptions['tensorCore'];
  scale: number;
  mask?: BlockMask;
  paged?: { blockTable: Int32Array; tableStride: number; keyLength: number; pageSize: number };
  label: string;
}

/**
 * Uploads, dispatches once, reads back and frees: the host-level path of every attention kernel.
 * K and V given as GPU views (a resident cache) are read in place, neither uploaded nor freed.
 */
export async function runAttentionOnHost(ctx: WebGpuContext, q: HeadTensor, k: HeadTensor | GpuTensorView, v: HeadTensor | GpuTensorView, run: HostRun): Promise<HeadTensor> {
  q.assertFinite('q');
  for (const [name, t] of [['k', k], ['v', v]] as const) if (t instanceof HeadTensor) t.assertFinite(name);
  const { device } = ctx;
  const label = run.label;
  const kv = (t: HeadTensor | GpuTensorView, name: string) => (t instanceof HeadTensor ? uploadTensor(device, t.toDType(q.dtype), `${label}.${name}`) : t);
  const views = {
    q: uploadTensor(device, q, `${label}.q`),
    k: kv(k, 'k'),
    v: kv(v, 'v'),
    o: createOutputTensor(device, { batch: q.batch, heads: q.heads, length: q.length, headDim: v.headDim }, q.layout, q.dtype, `${label}.o`),
  };
  const owned = [views.q.buffer, views.o.buffer];
  if (k instanceof HeadTensor) owned.push(views.k.buffer);
  if (v instanceof HeadTensor) owned.push(views.v.buffer);
  try {
    const opts: AttentionDispatchOptions = { causal: run.causal, scale: run.scale, blocks: { kind: 'all' }, keyLength: run.paged?.keyLength, kernel: run.kernel, tensorCore: run.tensorCore };
    const mask = run.mask;
    // A mask that keeps every causally valid block and has no token rule is dense: skip the list.
    if (mask && (mask.hasTokenRule || mask.keptValidBlocks !== mask.validBlocks)) {
      // COPY_SRC: per-head token rules dispatch runs of heads, each with a copy of its rows.
      const rowPtr = uploadArray(device, mask.rowPtr, `${label}.rowPtr`, BufferUsage.COPY_SRC);
      const colIdx = uploadArray(device, mask.colIdx, `${label}.colIdx`);
      owned.push(rowPtr, colIdx);
      opts.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: mask.blockRows, blockCols: mask.blockCols };
      Object.assign(opts, maskTokenRules(mask));
    }
    if (run.paged) {
      const blockTable = uploadArray(device, run.paged.blockTable, `${label}.blockTable`, BufferUsage.COPY_SRC);
      owned.push(blockTable);
      opts.paged = { blockTable, tableStride: run.paged.tableStride, pageSize: run.paged.pageSize };
    }
    const encoder = device.createCommandEncoder({ label });
    owned.push(...(await encodeAttention(device, encoder, views, opts)));
    device.queue.submit([encoder.finish()]);
    return await readTensor(device, views.o, q.layout);
  } finally {
    for (const b of owned) b.destroy();
  }
}

const dimsOf = (t: HeadTensor | GpuTensorView): number[] => [t.batch, t.heads, t.length, t.headDim];
