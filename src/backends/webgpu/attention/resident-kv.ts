/// <reference types="@webgpu/types" />
/**
 * The engine's paged KV cache resident on the GPU: per layer one buffer for K and one for V, f32 or
 * f16 (half the memory and bytes written; attention then runs in f16), in the cache's own layout
 * [numBlocks, Hkv, blockSize, D], so the engine's block tables index the buffers directly and paged
 * attention binds them with no upload.
 *
 * The copy is made on a device the first time a paged call meets the cache there (one upload of
 * the whole storage), then the cache writes every new row through (queue.writeBuffer of only those
 * rows). Blocks never move: eviction, preemption and freeing only edit block tables, which are
 * uploaded per call (a few bytes). A fresh device after a lost one gets a fresh copy from the host
 * storage, which stays the reference (and serves the engine's CPU reads: masks planned on the CPU,
 * eviction scores, Adaptive R-KV diversity), so nothing the GPU holds is ever the only copy.
 */
import { InvalidArgumentError } from '../../../core/errors.js';
import { fromF16Bits, toF16Bits } from '../../../core/f16.js';
import type { DType } from '../../../core/tensor.js';
import type { PagedKvDeviceCopy, PagedKvView } from '../../backend.js';
import { type GpuTensorView, readBuffer } from '../runtime/buffers.js';
import { BufferUsage } from '../runtime/webgpu-device.js';

/** Bytes moved host → GPU by a resident copy, by kind (tests and benchmarks read them). */
export interface ResidentKvTraffic {
  /** Whole-storage uploads when the copy was made (once per device). */
  initialBytes: number;
  /** Rows written through since. */
  rowBytes: number;
  rowWrites: number;
}

export class WebGpuResidentKv implements PagedKvDeviceCopy {
  readonly keys: GPUBuffer[];
  readonly values: GPUBuffer[];
  readonly traffic: ResidentKvTraffic = { initialBytes: 0, rowBytes: 0, rowWrites: 0 };
  private disposed = false;

  constructor(readonly device: GPUDevice, readonly cache: PagedKvView, readonly dtype: DType = 'f32') {
    // writeBuffer moves 4-byte words: f16 row runs (offsets and sizes in whole rows) need D even.
    if (dtype === 'f16' && cache.headDim % 2 !== 0) throw new InvalidArgumentError('headDim', cache.headDim, 'even for an f16 resident cache');
    const make = (what: string, layer: number, rows: Float32Array) => {
      const host = this.encode(rows);
      const buffer = device.createBuffer({
        label: `paged-kv.${what}${layer}`, size: Math.max(4, host.byteLength),
        usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC,
      });
      device.queue.writeBuffer(buffer, 0, host.buffer, host.byteOffset, host.byteLength);
      this.traffic.initialBytes += host.byteLength;
      return buffer;
    };
    this.keys = cache.keys.map((h, l) => make('k', l, h));
    this.values = cache.values.map((h, l) => make('v', l, h));
  }

  writeRows(layer: number, elementOffset: number, k: Float32Array, v: Float32Array): void {
    if (this.disposed) return;
    if (k.length !== v.length) throw new InvalidArgumentError('v rows', v.length, `as many elements as k (${k.length})`);
    const q = this.device.queue;
    const bytes = this.elementBytes;
    for (const [buffer, rows] of [[this.keys[layer], this.encode(k)], [this.values[layer], this.encode(v)]] as const) {
      q.writeBuffer(buffer, elementOffset * bytes, rows.buffer, rows.byteOffset, rows.byteLength);
      this.traffic.rowBytes += rows.byteLength;
      this.traffic.rowWrites++;
    }
  }

  private get elementBytes(): number {
    return this.dtype === 'f32' ? 4 : 2;
  }

  private encode(rows: Float32Array): Float32Array | Uint16Array {
    return this.dtype === 'f32' ? rows : toF16Bits(rows);
  }

  /** K and V of one layer as GPU views [numBlocks, Hkv, blockSize, D] (batch = blocks), for paged attention. */
  views(layer: number): { k: GpuTensorView; v: GpuTensorView } {
    const { numBlocks, kvHeads, blockSize, headDim } = this.cache;
    const shape = { batch: numBlocks, heads: kvHeads, length: blockSize, headDim, dtype: this.dtype, offset: 0 };
    const strides = { strideB: kvHeads * blockSize * headDim, strideH: blockSize * headDim, strideL: headDim };
    return { k: { ...shape, ...strides, buffer: this.keys[layer] }, v: { ...shape, ...strides, buffer: this.values[layer] } };
  }

  /**
   * The keys of `logicalBlocks` (ascending) of a block table below `contextLength`, copied on the
   * GPU into a new dense [1, Hkv, n, D] buffer (one buffer-to-buffer copy per block and head, nothing
   * crosses to or from the host): what a method's GPU planner reads. The caller destroys the buffer.
   */
  gatherKeys(layer: number, blockTable: readonly number[], logicalBlocks: readonly number[], contextLength: number): GpuTensorView {
    const { kvHeads, blockSize: bs, headDim: D } = this.cache;
    const rows = logicalBlocks.map((lb) => Math.min(bs, contextLength - lb * bs));
    if (rows.some((r) => !(r > 0))) throw new InvalidArgumentError('logicalBlocks', [...logicalBlocks], `blocks below ${Math.ceil(contextLength / bs)}`);
    const n = rows.reduce((a, r) => a + r, 0);
    const e = this.elementBytes;
    const buffer = this.device.createBuffer({ label: 'paged-kv.gathered-k', size: Math.max(4, kvHeads * n * D * e), usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC });
    const encoder = this.device.createCommandEncoder({ label: 'paged-kv.gather-k' });
    let at = 0;
    logicalBlocks.forEach((lb, i) => {
      for (let h = 0; h < kvHeads; h++) {
        const src = ((blockTable[lb] * kvHeads + h) * bs) * D * e;
        encoder.copyBufferToBuffer(this.keys[layer], src, buffer, (h * n + at) * D * e, rows[i] * D * e);
      }
      at += rows[i];
    });
    this.device.queue.submit([encoder.finish()]);
    return { batch: 1, heads: kvHeads, length: n, headDim: D, dtype: this.dtype, offset: 0, strideB: kvHeads * n * D, strideH: n * D, strideL: D, buffer };
  }

  /** Reads one layer's K and V storage back as f32 (tests compare it with the host storage). */
  async read(layer: number): Promise<{ k: Float32Array; v: Float32Array }> {
    const bytes = this.cache.keys[layer].length * this.elementBytes;
    const [k, v] = await Promise.all([readBuffer(this.device, this.keys[layer], bytes), readBuffer(this.device, this.values[layer], bytes)]);
    const decode = (b: ArrayBuffer) => (this.dtype === 'f32' ? new Float32Array(b) : fromF16Bits(new Uint16Array(b)));
    return { k: decode(k), v: decode(v) };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of [...this.keys, ...this.values]) b.destroy();
  }
}

/**
 * The cache's resident copy on `device` in `dtype`: the attached one when it lives there, else a new
 * one attached in its place (a previous copy on a lost device, or in the other dtype, is disposed).
 * Null when the cache cannot hold a copy (a PagedKvView without attachDeviceCopy): the caller uploads
 * per call instead.
 */
export function residentKvFor(device: GPUDevice, cache: PagedKvView, dtype: DType = 'f32'): WebGpuResidentKv | null {
  if (!cache.attachDeviceCopy) return null;
  const copy = cache.deviceCopy;
  if (copy instanceof WebGpuResidentKv && copy.device === device && copy.dtype === dtype) return copy;
  const fresh = new WebGpuResidentKv(device, cache, dtype);
  cache.attachDeviceCopy(fresh);
  return fresh;
}
