/**
 * Backend selection by name. The WebGPU backend is imported dynamically, so choosing 'cpu' never
 * loads Dawn or any WebGPU code.
 *   'cpu'    the reference backend
 *   'webgpu' the default WebGPU device; throws the one clear error when there is no adapter
 *   'auto'   WebGPU when an adapter exists, else CPU
 */
import { InvalidArgumentError, UnsupportedError } from '../core/errors.js';
import type { AttentionBackend } from './backend.js';
import { cpuBackend } from './cpu/index.js';

export type BackendChoice = 'cpu' | 'webgpu' | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['cpu', 'webgpu', 'auto'];

export async function createBackend(choice: BackendChoice = 'auto'): Promise<AttentionBackend> {
  if (!BACKEND_CHOICES.includes(choice)) throw new InvalidArgumentError('backend', choice, `one of ${BACKEND_CHOICES.map((c) => `"${c}"`).join(', ')}`);
  if (choice === 'cpu') return cpuBackend;
  const webgpu = await import('./webgpu/index.js');
  try {
    await webgpu.webgpuBackend.context(); // acquire now, so "no adapter" surfaces here
    return webgpu.webgpuBackend;
  } catch (err) {
    if (choice === 'auto' && err instanceof UnsupportedError) return cpuBackend;
    throw err;
  }
}

/** A backend object as given, or the one a name selects. */
export async function resolveBackend(backend: AttentionBackend | BackendChoice | undefined): Promise<AttentionBackend> {
  if (backend === undefined) return cpuBackend;
  return typeof backend === 'string' ? createBackend(backend) : backend;
}
