/**
 * Backend selection: one loader per backend name, each imported on first use, so choosing 'cpu'
 * never loads Dawn or any WebGPU code. Names, aliases and 'auto' are defined in backend.ts.
 *   'cpu'    the reference backend
 *   'webgpu' the default WebGPU device; throws the one clear error when there is no adapter
 *   'auto'   WebGPU when an adapter exists, else CPU
 */
import { UnsupportedError } from '../core/errors.js';
import { type AttentionBackend, type BackendChoice, type BackendName, parseBackendChoice } from './backend.js';

/** One row per backend: a new backend is a folder and a row here. */
export const BACKEND_LOADERS: Readonly<Record<BackendName, () => Promise<AttentionBackend>>> = {
  cpu: async () => (await import('./cpu/index.js')).cpuBackend,
  webgpu: async () => {
    const { webgpuBackend } = await import('./webgpu/index.js');
    await webgpuBackend.context(); // acquire now, so "no adapter" surfaces here
    return webgpuBackend;
  },
};

/** The backend a name, alias or 'auto' selects. */
export async function createBackend(choice: BackendChoice | string = 'auto'): Promise<AttentionBackend> {
  const c = parseBackendChoice('backend', choice);
  if (c !== 'auto') return BACKEND_LOADERS[c]();
  try {
    return await BACKEND_LOADERS.webgpu();
  } catch (err) {
    if (err instanceof UnsupportedError) return BACKEND_LOADERS.cpu();
    throw err;
  }
}

/** A backend object as given, or the one a name selects; the CPU reference when omitted. */
export async function resolveBackend(backend: AttentionBackend | BackendChoice | undefined): Promise<AttentionBackend> {
  return typeof backend === 'object' ? backend : createBackend(backend ?? 'cpu');
}

export { BACKEND_ALIASES, BACKEND_CHOICES, BACKEND_NAMES, parseBackendChoice, type BackendChoice, type BackendName } from './backend.js';
