/// <reference types="@webgpu/types" />
import type { AttentionProblem } from '../../core/attention-shape.js';
import { UnsupportedError } from '../../core/errors.js';
import type { BlockList } from './attention-dispatch.js';
import type { GpuTensorView } from './buffers.js';

export async function encodeSageSparsePart(
  _device: GPUDevice, _encoder: GPUCommandEncoder, _p: AttentionProblem,
  _views: { q: GpuTensorView; k: GpuTensorView; v: GpuTensorView; o: GpuTensorView; kMean: GPUBuffer }, _blocks: BlockList & { kind: 'csr' }, _own: (b: GPUBuffer) => GPUBuffer,
): Promise<void> {
  throw new UnsupportedError('SageSLA on WebGPU: the int8 sparse part is not built yet');
}
