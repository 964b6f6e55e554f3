/// <reference types="@webgpu/types" />
/**
 * Head tensors on the GPU as *views*: a buffer plus an element offset and element strides of the
 * batch, head and position axes (the head-dim stride is 1). Both layouts (BHLD, BLHD), a slice of
 * a larger buffer and a KV cache are all views, so kernels read them in place with no copy.
 */
import { UnsupportedError } from '../../../core/errors.js';
import { HeadTensor, type DType, type HeadTensorShape, type Layout } from '../../../core/tensor.js';
import { BufferUsage, MapMode } from './webgpu-device.js';

export interface GpuTensorView extends HeadTensorShape {
  buffer: GPUBuffer;
  dtype: DType;
  offset: number;
  strideB: number;
  strideH: number;
  strideL: number;
}

export const bytesPerElement = (dtype: DType): number => (dtype === 'f32' ? 4 : 2);

/** A storage buffer holding `data` (padded to 4 bytes, at least 4 bytes so empty lists bind). */
export function uploadArray(device: GPUDevice, data: Float32Array | Uint16Array | Int32Array, label: string, extraUsage = 0): GPUBuffer {
  const size = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
  const buffer = device.createBuffer({ label, size, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | extraUsage, mappedAtCreation: true });
  const dst = new Uint8Array(buffer.getMappedRange());
  dst.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buffer.unmap();
  return buffer;
}

/** Uploads a HeadTensor as a view over a buffer of its own. */
export function uploadTensor(device: GPUDevice, t: HeadTensor, label: string): GpuTensorView {
  return { ...t.shape, buffer: uploadArray(device, t.data, label), dtype: t.dtype, offset: 0, strideB: t.strideB, strideH: t.strideH, strideL: t.strideL };
}

/** Element strides (B, H, L) of a dense tensor of `shape` in `layout`, as HeadTensor has them. */
export function denseStrides(shape: HeadTensorShape, layout: Layout): { strideB: number; strideH: number; strideL: number } {
  const { heads: H, length: L, headDim: D } = shape;
  return layout === 'BHLD' ? { strideB: H * L * D, strideH: L * D, strideL: D } : { strideB: L * H * D, strideH: D, strideL: H * D };
}

/** A zero-filled output view of `shape` in `layout`, readable back to the host. */
export function createOutputTensor(device: GPUDevice, shape: HeadTensorShape, layout: Layout, dtype: DType, label: string): GpuTensorView {
  const bytes = shape.batch * shape.heads * shape.length * shape.headDim * bytesPerElement(dtype);
  const buffer = device.createBuffer({ label, size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST });
  const { batch, heads, length, headDim } = shape;
  return { batch, heads, length, headDim, buffer, dtype, offset: 0, ...denseStrides(shape, layout) };
}

/** Reads a dense view (offset 0, made by createOutputTensor in `layout`) back into a HeadTensor. */
export async function readTensor(device: GPUDevice, view: GpuTensorView, layout: Layout): Promise<HeadTensor> {
  const n = view.batch * view.heads * view.length * view.headDim;
  const out = HeadTensor.zeros(view, layout, view.dtype);
  if (view.offset !== 0 || out.strideB !== view.strideB || out.strideH !== view.strideH || out.strideL !== view.strideL) {
    throw new UnsupportedError(`readTensor reads only dense ${layout} views at offset 0`);
  }
  const bytes = Math.ceil((n * bytesPerElement(view.dtype)) / 4) * 4;
  if (bytes === 0) return out;
  const staging = device.createBuffer({ label: `${view.buffer.label}.readback`, size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder({ label: `${view.buffer.label}.readback` });
  encoder.copyBufferToBuffer(view.buffer, 0, staging, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(MapMode.READ);
  const src = staging.getMappedRange();
  new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength).set(new Uint8Array(src, 0, out.data.byteLength));
  staging.unmap();
  staging.destroy();
  return out;
}

/** Copies the first `bytes` of a storage buffer (made with COPY_SRC) back to the host. */
export async function readBuffer(device: GPUDevice, buffer: GPUBuffer, bytes: number): Promise<ArrayBuffer> {
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  const staging = device.createBuffer({ label: `${buffer.label}.readback`, size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder({ label: `${buffer.label}.readback` });
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(MapMode.READ);
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  return out;
}

/** A zero-filled storage buffer of `bytes` (at least 4), readable back with readBuffer. */
export function createStorageBuffer(device: GPUDevice, bytes: number, label: string): GPUBuffer {
  return device.createBuffer({ label, size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST });
}
