/// <reference types="@webgpu/types" />
/**
 * GPU faults as named errors. A device lost mid-call (driver reset, `device.destroy()`, a GPU
 * process crash) makes Dawn reject pending work with a bare AbortError; the backend turns that
 * into a DeviceLostError, and the default context is replaced on the next call
 * (defaultWebGpuContext), so one loss costs one call, not the process.
 */
import { SparseAttentionError } from '../../../core/errors.js';

export class DeviceLostError extends SparseAttentionError {
  override readonly name = 'DeviceLostError';
  constructor(
    readonly operation: string,
    readonly reason: string,
    detail: string,
  ) {
    super(`WebGPU device lost during ${operation} (${reason}${detail ? `: ${detail}` : ''}); the call's result is gone, the next call gets a fresh device`);
  }
}

const lost = new WeakMap<GPUDevice, GPUDeviceLostInfo>();

/** Records the device's loss when it happens (call once per device). */
export function watchDeviceLoss(device: GPUDevice): Promise<GPUDeviceLostInfo> {
  return device.lost.then((info) => {
    lost.set(device, info);
    return info;
  });
}

export function deviceLostInfo(device: GPUDevice): GPUDeviceLostInfo | undefined {
  return lost.get(device);
}

/**
 * Runs `fn` on `device`; an error thrown while the device is (or becomes) lost is a
 * DeviceLostError. Other errors pass through unchanged.
 */
export async function withDeviceFaults<T>(device: GPUDevice, operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof SparseAttentionError) throw err;
    // Dawn may reject pending work a moment before `lost` resolves: give it one macrotask.
    const info = lost.get(device) ?? (await Promise.race([device.lost, new Promise<undefined>((r) => setTimeout(() => r(undefined), 10))]));
    if (info) throw new DeviceLostError(operation, info.reason, info.message);
    throw err;
  }
}
