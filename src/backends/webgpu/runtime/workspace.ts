/// <reference types="@webgpu/types" />
/**
 * Scratch buffers handed from one call to the next. Allocating a large workspace per call is what
 * cost: the XAttention log-sum-exp workspace is 1 GiB at 128K tokens (32 heads, blockSize 128), and
 * a plan-alone call measured 77 ms of wall time against 51 ms of kernels on the H200.
 *
 * A call takes a workspace and gives it back when it is done with it, which is when its owner is
 * destroyed: after its command buffer is submitted (as every buffer a plan owns). A buffer given back
 * may be taken by the next call at once: the queue runs command buffers in order, so the earlier
 * call's dispatches finish with it before the later call's start. Calls encoded side by side before
 * one submit each hold their own buffer (the pool is empty for the second). One buffer per name stays
 * pooled, the largest given back, until releaseWorkspaces(device) or the device's destruction.
 */
import { BufferUsage } from './webgpu-device.js';

const pools = new WeakMap<GPUDevice, Map<string, GPUBuffer>>();

function poolOf(device: GPUDevice): Map<string, GPUBuffer> {
  let pool = pools.get(device);
  if (!pool) pools.set(device, (pool = new Map()));
  return pool;
}

/** A storage buffer of at least `bytes` for `name` (the pooled one if large enough); `destroy()` gives it back. */
export function takeWorkspace(device: GPUDevice, name: string, bytes: number): { buffer: GPUBuffer; destroy(): void } {
  const pool = poolOf(device);
  const size = Math.max(4, Math.ceil(bytes / 4) * 4);
  let buffer = pool.get(name);
  pool.delete(name);
  if (!buffer || buffer.size < size) {
    buffer?.destroy(); // no call holds it: it was given back
    buffer = device.createBuffer({ label: `workspace.${name}`, size, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST });
  }
  const taken = buffer;
  let given = false;
  return {
    buffer: taken,
    destroy() {
      if (given) return;
      given = true;
      const pool = poolOf(device); // afresh: releaseWorkspaces may have dropped the one it came from
      const pooled = pool.get(name);
      if (pooled && pooled.size >= taken.size) { taken.destroy(); return; }
      pooled?.destroy();
      pool.set(name, taken);
    },
  };
}

/** Bytes pooled on this device (buffers given back, not those held by calls). */
export function pooledWorkspaceBytes(device: GPUDevice): number {
  let total = 0;
  for (const b of pools.get(device)?.values() ?? []) total += b.size;
  return total;
}

/** Frees this device's pooled workspaces (a call that needs one again allocates it). */
export function releaseWorkspaces(device: GPUDevice): void {
  for (const b of pools.get(device)?.values() ?? []) b.destroy();
  pools.delete(device);
}
