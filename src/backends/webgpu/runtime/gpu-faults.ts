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

/** A buffer (or other GPU allocation) that the device could not make: its memory is exhausted. */
export class GpuOutOfMemoryError extends SparseAttentionError {
  override readonly name = 'GpuOutOfMemoryError';
  constructor(
    readonly operation: string,
    detail: string,
  ) {
    super(`WebGPU ran out of memory during ${operation}${detail ? ` (${detail})` : ''}; the call's result is gone: free GPU memory or run a smaller shape`);
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
 * Runs `fn` on `device` inside an out-of-memory error scope. An allocation that failed for lack of
 * memory (reported to the scope, or thrown as a RangeError by a buffer mapped at creation) is a
 * GpuOutOfMemoryError; an error thrown while the device is (or becomes) lost is a DeviceLostError.
 * Other errors pass through unchanged. Error scopes are per device, so an allocation failure of a
 * call running concurrently on the same device may be reported by this one instead.
 */
export async function withDeviceFaults<T>(device: GPUDevice, operation: string, fn: () => Promise<T>): Promise<T> {
  device.pushErrorScope('out-of-memory');
  let result: T | undefined;
  let failure: unknown;
  let failed = false;
  try {
    result = await fn();
  } catch (err) {
    failed = true;
    failure = err;
  }
  // A lost device rejects the pop; its loss is reported below.
  const oom = await device.popErrorScope().catch(() => null);
  if (oom) throw new GpuOutOfMemoryError(operation, oom.message);
  if (!failed) return result as T;
  if (failure instanceof SparseAttentionError) throw failure;
  if (failure instanceof RangeError && /alloc|memory|map/i.test(failure.message)) throw new GpuOutOfMemoryError(operation, failure.message);
  // Dawn may reject pending work a moment before `lost` resolves: give it one macrotask.
  const info = lost.get(device) ?? (await Promise.race([device.lost, new Promise<undefined>((r) => setTimeout(() => r(undefined), 10))]));
  if (info) throw new DeviceLostError(operation, info.reason, info.message);
  throw failure;
}
