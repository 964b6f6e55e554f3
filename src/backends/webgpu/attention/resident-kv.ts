/// <reference types="@webgpu/types" />
/**
 * The engine's paged KV cache resident on the GPU: per layer one buffer for K and one for V, f32,
 * in the cache's own layout [numBlocks, Hkv, blockSize, D], so the block tables the engine keeps
 * index the buffers directly and paged attention binds them with no upload.
 *
 * The copy is made on a device the first time a paged call meets the cache there (one upload of
 * the whole storage), then the cache writes every new row through (queue.writeBuffer of only those
 * rows). Blocks never move: eviction, preemption and freeing only edit block tables, which are
 * uploaded per call (a few bytes). A fresh device after a lost one gets a fresh copy from the host
 * storage, which stays the reference (and serves the engine's CPU reads: masks planned on the CPU,
 * eviction scores, Adaptive R-KV diversity), so nothing the GPU holds is ever the only copy.
 */
import { InvalidArgumentError } from '../../../core/errors.js';
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

  constructor(readonly device: GPUDevice, readonly cache: PagedKvView) {
    const make = (what: string, layer: number, host: Float32Array) => {
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
    q.writeBuffer(this.keys[layer], elementOffset * 4, k.buffer, k.byteOffset, k.byteLength);
    q.writeBuffer(this.values[layer], elementOffset * 4, v.buffer, v.byteOffset, v.byteLength);
    this.traffic.rowBytes += k.byteLength + v.byteLength;
    this.traffic.rowWrites += 2;
  }

  /** K and V of one layer as GPU views [numBlocks, Hkv, blockSize, D] (batch = blocks), for paged attention. */
  views(layer: number): { k: GpuTensorView; v: GpuTensorView } {
    const { numBlocks, kvHeads, blockSize, headDim } = this.cache;
    const shape = { batch: numBlocks, heads: kvHeads, length: blockSize, headDim, dtype: 'f32' as const, offset: 0 };
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
    const buffer = this.device.createBuffer({ label: 'paged-kv.gathered-k', size: Math.max(4, kvHeads * n * D * 4), usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC });
    const encoder = this.device.createCommandEncoder({ label: 'paged-kv.gather-k' });
    let at = 0;
    logicalBlocks.forEach((lb, i) => {
      for (let h = 0; h < kvHeads; h++) {
        const src = ((blockTable[lb] * kvHeads + h) * bs) * D * 4;
        encoder.copyBufferToBuffer(this.keys[layer], src, buffer, (h * n + at) * D * 4, rows[i] * D * 4);
      }
      at += rows[i];
    });
    this.device.queue.submit([encoder.finish()]);
    return { batch: 1, heads: kvHeads, length: n, headDim: D, dtype: 'f32', offset: 0, strideB: kvHeads * n * D, strideH: n * D, strideL: D, buffer };
  }

  /** Reads one layer's K and V storage back (tests compare it with the host storage). */
  async read(layer: number): Promise<{ k: Float32Array; v: Float32Array }> {
    const bytes = this.cache.keys[layer].byteLength;
    const [k, v] = await Promise.all([readBuffer(this.device, this.keys[layer], bytes), readBuffer(this.device, this.values[layer], bytes)]);
    return { k: new Float32Array(k), v: new Float32Array(v) };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const b of [...this.keys, ...this.values]) b.destroy();
  }
}

/**
 * The cache's resident copy on `device`: the attached one when it lives there, else a new one
 * attached in its place (a previous copy on a lost device is disposed). Null when the cache cannot
 * hold a copy (a PagedKvView without attachDeviceCopy): the caller uploads per call instead.
 */
export function residentKvFor(device: GPUDevice, cache: PagedKvView): WebGpuResidentKv | null {
  if (!cache.attachDeviceCopy) return null;
  const copy = cache.deviceCopy;
  if (copy instanceof WebGpuResidentKv && copy.device === device) return copy;
  const fresh = new WebGpuResidentKv(device, cache);
  cache.attachDeviceCopy(fresh);
  return fresh;
}
