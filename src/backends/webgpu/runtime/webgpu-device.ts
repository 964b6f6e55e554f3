/// <reference types="@webgpu/types" />
/**
 * WebGPU device acquisition and the adapter report.
 *
 * Node: Dawn through npm `webgpu`, imported dynamically so the CPU-only parts of the library never
 * load a native module. Browsers: `navigator.gpu`. We ask for every optional feature the kernels
 * can use (shader-f16, subgroups, timestamp-query, subgroup matrices) when the adapter has it, and
 * for the adapter's maximum limits, since the defaults (128 MiB storage bindings, 16 KiB workgroup
 * memory) are far below what long-context attention needs.
 */
import { UnsupportedError } from '../../../core/errors.js';
import { watchDeviceLoss } from './gpu-faults.js';

/** Dawn features we always enable: subgroup matrices are behind allow_unsafe_apis; NVIDIA f16 is off without the second. */
export const DAWN_FEATURES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'] as const;
/** Dawn's instance options for those features (npm `webgpu` create()). */
export const DAWN_TOGGLES = [`enable-dawn-features=${DAWN_FEATURES.join(',')}`];

export const OPTIONAL_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'] as const;

/** Numeric WebGPU flags, so we need not install Dawn's globals (GPUBufferUsage etc.) into globalThis. */
export const BufferUsage = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80 } as const;
export const ShaderStage = { COMPUTE: 0x4 } as const;
export const MapMode = { READ: 0x1 } as const;

/** Limits the kernels care about, quoted in the report and checked by `supports()`. */
const KEY_LIMITS = [
  'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxUniformBufferBindingSize',
  'maxStorageBuffersPerShaderStage', 'maxBindGroups',
] as const;

/** Every limit we may request; the adapter's value is taken where the adapter defines it. */
const ALL_LIMITS = [
  ...KEY_LIMITS, 'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupSizeZ', 'maxBindingsPerBindGroup',
  'maxUniformBuffersPerShaderStage', 'minStorageBufferOffsetAlignment', 'minUniformBufferOffsetAlignment',
] as const;

export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface AdapterReport {
  runtime: 'dawn-node' | 'browser';
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** Whether buffer accesses are bounds-clamped (Dawn's robustness, on unless the context turned it off). */
  robustness: boolean;
  /** A CPU implementation (lavapipe/llvmpipe, SwiftShader): kernels pick variants that compile fast. */
  softwareAdapter: boolean;
  /** Every adapter feature, sorted. */
  features: string[];
  /** Optional features the device was created with. */
  enabledFeatures: string[];
  shaderF16: boolean;
  timestampQuery: boolean;
  subgroups: { supported: boolean; minSize: number | null; maxSize: number | null };
  subgroupMatrix: { supported: boolean; configs: SubgroupMatrixConfig[] };
  limits: Record<(typeof KEY_LIMITS)[number], number>;
}

export interface WebGpuContext {
  readonly device: GPUDevice;
  readonly adapter: GPUAdapter;
  readonly report: AdapterReport;
  /** Destroys the device; the context is unusable afterwards. */
  destroy(): void;
}

export interface WebGpuOptions {
  /** A GPU object to use instead of navigator.gpu / Dawn (tests, custom Dawn builds). */
  gpu?: GPU;
  /**
   * Dawn's robustness: every storage access is clamped to its binding, so an out-of-range index reads
   * or writes inside the buffer instead of elsewhere. On by default. `false` (Node/Dawn only, toggle
   * `disable_robustness`) removes the clamps: 15–45% faster GEMMs measured on the H200, and our kernels
   * are tested to stay in bounds with it off (test/webgpu-robustness.test.ts), but an access out of
   * range (a bug, or a view you built wrong) is then undefined behaviour: it may read another buffer's
   * data or corrupt it instead of being clamped. Browsers keep robustness; `false` throws there.
   */
  robustness?: boolean;
  /** Extra Dawn features to enable in Node (names as in Dawn's toggle list, e.g. skip_validation). */
  dawnToggles?: string[];
  powerPreference?: GPUPowerPreference;
}

let dawnGpu: Promise<GPU> | undefined;
const extraInstances: GPU[] = [];

/** The GPU entry point: navigator.gpu in a browser, else Dawn (created once per process). */
async function gpuEntry(opts: WebGpuOptions): Promise<{ gpu: GPU; runtime: AdapterReport['runtime'] }> {
  if (opts.gpu) return { gpu: opts.gpu, runtime: 'browser' };
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) {
    if (opts.robustness === false) throw new UnsupportedError('robustness: false is a Dawn (Node) option; a browser keeps WebGPU\'s bounds checks');
    return { gpu: nav.gpu, runtime: 'browser' };
  }
  const extra = [...(opts.robustness === false ? ['disable_robustness'] : []), ...(opts.dawnToggles ?? [])];
  const toggles = [`enable-dawn-features=${[...DAWN_FEATURES, ...extra].join(',')}`];
  if (extra.length) {
    // A Dawn instance that is garbage-collected takes its devices' event processing with it
    // (waits on the GPU then abort the process), so every instance we create stays referenced.
    const gpu = (await loadDawn()).create(toggles);
    extraInstances.push(gpu);
    return { gpu, runtime: 'dawn-node' };
  }
  dawnGpu ??= loadDawn().then((m) => m.create(toggles));
  return { gpu: await dawnGpu, runtime: 'dawn-node' };
}

async function loadDawn(): Promise<{ create(options: string[]): GPU }> {
  try {
    return (await import('webgpu')) as { create(options: string[]): GPU };
  } catch (err) {
    throw new UnsupportedError(`WebGPU is unavailable: the npm package "webgpu" (Dawn for Node) could not be loaded (${(err as Error).message})`);
  }
}

/**
 * A device with every optional feature the adapter offers and its maximum limits. Throws one
 * UnsupportedError naming the likely fix when there is no adapter.
 */
export async function createWebGpuContext(opts: WebGpuOptions = {}): Promise<WebGpuContext> {
  const { gpu, runtime } = await gpuEntry(opts);
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new UnsupportedError(
      runtime === 'dawn-node'
        ? 'No WebGPU adapter found: Dawn (npm "webgpu") sees no GPU. On Linux without a GPU install Mesa lavapipe (.ci/install-lavapipe.sh); on a GPU machine check that the Vulkan loader and the driver\'s ICD are installed.'
        : 'No WebGPU adapter found: navigator.gpu.requestAdapter() returned null (WebGPU disabled or no supported GPU).',
    );
  }
  const enabledFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  const limits = adapter.limits as unknown as Record<string, number | undefined>;
  for (const name of ALL_LIMITS) if (typeof limits[name] === 'number') requiredLimits[name] = limits[name] as number;
  const device = await adapter.requestDevice({
    label: 'sparse-attention',
    requiredFeatures: enabledFeatures as unknown as GPUFeatureName[],
    requiredLimits,
  });
  const report = adapterReport(adapter, runtime, enabledFeatures, opts.robustness !== false || runtime === 'browser');
  if (report.softwareAdapter) softwareDevices.add(device);
  if (report.subgroupMatrix.configs.some((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16)) {
    tensorCoreDevices.add(device);
  }
  let destroyed = false;
  void watchDeviceLoss(device);
  device.lost.then((info) => {
    if (!destroyed) console.error(`sparse-attention: WebGPU device lost (${info.reason}): ${info.message}`);
  });
  return {
    device,
    adapter,
    report,
    destroy() {
      destroyed = true;
      device.destroy();
    },
  };
}

const softwareDevices = new WeakSet<GPUDevice>();

/** Whether a device made by createWebGpuContext runs on a CPU implementation (lavapipe, SwiftShader). */
/** Devices whose adapter has an f16→f32 16×16×16 subgroup-matrix configuration (tensor cores). */
const tensorCoreDevices = new WeakSet<GPUDevice>();

export function hasTensorCores(device: GPUDevice): boolean {
  return tensorCoreDevices.has(device);
}

export function isSoftwareDevice(device: GPUDevice): boolean {
  return softwareDevices.has(device);
}

let shared: Promise<WebGpuContext> | undefined;

/** The process-wide default context, created on first use. */
export function defaultWebGpuContext(): Promise<WebGpuContext> {
  if (shared) return shared;
  const made = createWebGpuContext().catch((err) => {
    if (shared === made) shared = undefined;
    throw err;
  });
  // A lost device is never handed out again: the next call creates a fresh one.
  made.then((ctx) => ctx.device.lost.then(() => {
    if (shared === made) shared = undefined;
  }), () => undefined);
  shared = made;
  return shared;
}

/** Destroys the default context (so a Node process can exit) and forgets it. */
export async function releaseDefaultWebGpuContext(): Promise<void> {
  const ctx = shared;
  shared = undefined;
  if (ctx) (await ctx.catch(() => undefined))?.destroy();
}

/** Whether an adapter exists, and if not, why not (never throws). */
export async function probeWebGpu(): Promise<{ available: true; context: WebGpuContext } | { available: false; reason: string }> {
  try {
    return { available: true, context: await defaultWebGpuContext() };
  } catch (err) {
    return { available: false, reason: (err as Error).message };
  }
}

function adapterReport(adapter: GPUAdapter, runtime: AdapterReport['runtime'], enabled: readonly string[], robustness: boolean): AdapterReport {
  const info = adapter.info as GPUAdapterInfo & {
    subgroupMinSize?: number;
    subgroupMaxSize?: number;
    isFallbackAdapter?: boolean;
    subgroupMatrixConfigs?: Iterable<Partial<SubgroupMatrixConfig>>;
  };
  const limits = adapter.limits as unknown as Record<string, number>;
  const keyLimits = Object.fromEntries(KEY_LIMITS.map((k) => [k, limits[k]])) as AdapterReport['limits'];
  const subgroups = adapter.features.has('subgroups');
  const matrix = adapter.features.has('chromium-experimental-subgroup-matrix');
  return {
    runtime,
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: info.isFallbackAdapter ?? false,
    robustness,
    softwareAdapter: (info.isFallbackAdapter ?? false) || /llvmpipe|lavapipe|swiftshader/i.test(`${info.vendor} ${info.architecture} ${info.description}`),
    features: [...adapter.features].map(String).sort(),
    enabledFeatures: [...enabled],
    shaderF16: adapter.features.has('shader-f16'),
    timestampQuery: adapter.features.has('timestamp-query'),
    subgroups: { supported: subgroups, minSize: subgroups ? info.subgroupMinSize ?? null : null, maxSize: subgroups ? info.subgroupMaxSize ?? null : null },
    subgroupMatrix: {
      supported: matrix,
      configs: [...(info.subgroupMatrixConfigs ?? [])].map((c) => ({
        componentType: String(c.componentType), resultComponentType: String(c.resultComponentType),
        M: Number(c.M), N: Number(c.N), K: Number(c.K),
      })),
    },
    limits: keyLimits,
  };
}

/** A human-readable multi-line summary of a report (the CLI's non-JSON output). */
export function formatAdapterReport(r: AdapterReport): string {
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  const cfgs = r.subgroupMatrix.configs.map((c) => `${c.componentType}→${c.resultComponentType} ${c.M}×${c.N}×${c.K}`);
  return [
    `adapter      ${r.description || r.device || '(no description)'} [${r.runtime}]`,
    `vendor/arch  ${r.vendor || '?'} / ${r.architecture || '?'}${r.softwareAdapter ? ' (software adapter)' : ''}`,
    `shader-f16   ${r.shaderF16 ? 'yes' : 'no'}`,
    `subgroups    ${r.subgroups.supported ? `yes, size ${r.subgroups.minSize}..${r.subgroups.maxSize}` : 'no'}`,
    `subgroup-mat ${r.subgroupMatrix.supported ? (cfgs.length ? cfgs.join(', ') : 'yes, no configs') : 'no'}`,
    `timestamps   ${r.timestampQuery ? 'yes' : 'no'}`,
    `robustness   ${r.robustness ? 'on (bounds-clamped accesses)' : 'off (disable_robustness)'}`,
    `workgroup    ${r.limits.maxComputeInvocationsPerWorkgroup} invocations, ${r.limits.maxComputeWorkgroupStorageSize} B shared memory`,
    `buffers      storage binding ${mib(r.limits.maxStorageBufferBindingSize)}, buffer ${mib(r.limits.maxBufferSize)}`,
  ].join('\n');
}
