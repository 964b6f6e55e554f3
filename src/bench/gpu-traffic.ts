/// <reference types="@webgpu/types" />
/**
 * Host → GPU bytes while `fn` runs: handed to queue.writeBuffer (`written`) and in buffers created
 * mapped (`uploaded`). The resident-cache test and bench/engine-resident-kv.ts count with it.
 */
export async function gpuTraffic(device: GPUDevice, fn: () => Promise<unknown>): Promise<{ written: number; uploaded: number }> {
  const counts = { written: 0, uploaded: 0 };
  const { queue } = device;
  const writeBuffer = queue.writeBuffer;
  const createBuffer = device.createBuffer;
  queue.writeBuffer = function (this: GPUQueue, ...args: Parameters<GPUQueue['writeBuffer']>) {
    const [, , data, dataOffset, size] = args;
    const bpe = ArrayBuffer.isView(data) && 'BYTES_PER_ELEMENT' in data ? (data as Float32Array).BYTES_PER_ELEMENT : 1;
    counts.written += size !== undefined ? size * bpe : data.byteLength - (dataOffset ?? 0) * bpe;
    return writeBuffer.apply(this, args);
  };
  device.createBuffer = function (this: GPUDevice, desc: GPUBufferDescriptor) {
    if (desc.mappedAtCreation) counts.uploaded += desc.size;
    return createBuffer.call(this, desc);
  };
  try {
    await fn();
  } finally {
    queue.writeBuffer = writeBuffer;
    device.createBuffer = createBuffer;
  }
  return counts;
}
