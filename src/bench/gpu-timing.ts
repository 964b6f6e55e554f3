/// <reference types="@webgpu/types" />
/**
 * How every GPU benchmark times work on inputs already on the device: the warm-up policy, then
 * fencedRuns (each run submitted alone, clock stopped when the queue is done: GPU work only, no
 * transfers), then one run under the PassProfiler for the per-kernel split. The case harness's
 * WebGPU target and the bench/ scripts share it, so their figures mean the same thing.
 */
import { fencedRuns, type KernelMs, type TimerRuns } from '../backends/webgpu/runtime/pass-profiler.js';
import { median } from './harness.js';

/**
 * Minimum warm-up before a timed series on a GPU: an idle H100 sits at 345 MHz and needs some
 * hundreds of ms of load to reach its boost clock (a 4K case measured cold ran at 30% of warm).
 * None on a software adapter, whose speed does not ramp.
 */
export const GPU_WARM_MS = 1500;

/** The timed series of a benchmark on this device: one untimed run (compiles), the warm-up, `iterations` timed runs, a profiled run. */
export function timerRuns(ctx: { report: { softwareAdapter: boolean } }, iterations: number, profile = true): TimerRuns {
  return { iterations, warmMs: ctx.report.softwareAdapter ? 0 : GPU_WARM_MS, warmRuns: 1, profile };
}

/** What one run makes and must free after it: buffers, uniform blocks, GPU plans. */
export interface Destroyable {
  destroy(): void;
}

export interface DeviceTiming {
  /** Median of the timed runs. */
  ms: number;
  minMs: number;
  runs: number[];
  /** GPU ms per kernel program of the profiled run, where the device has timestamp queries. */
  kernelMs?: KernelMs;
}

/** fencedRuns over an encoder callback whose products need only destroy() (not only GPUBuffers). */
export async function timeOnDevice(device: GPUDevice, encode: (encoder: GPUCommandEncoder) => Promise<Destroyable[]>, runs: TimerRuns): Promise<DeviceTiming> {
  // fencedRuns calls nothing but destroy() on what a run returns.
  const { ms, kernelMs } = await fencedRuns(device, async (encoder) => (await encode(encoder)) as GPUBuffer[], runs);
  return { ms: median(ms), minMs: Math.min(...ms), runs: ms, ...(kernelMs ? { kernelMs } : {}) };
}
