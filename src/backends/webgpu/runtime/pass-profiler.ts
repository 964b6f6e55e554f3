/// <reference types="@webgpu/types" />
/**
 * GPU timing for benchmarks: fenced series of runs (fencedRuns), and per-kernel time from timestamp
 * queries: while a PassProfiler is attached to a
 * device, every dispatch that goes through encodeProgram (every kernel of this library) writes a
 * timestamp at the start and end of its compute pass. After the profiled work is submitted,
 * `read()` resolves the queries in a later command buffer and returns each pass's label and ms.
 * This is what splits a method into its steps (XAttention: estimation, selection, block list,
 * attention) where a queue fence only gives the total. Needs the `timestamp-query` feature; Dawn may
 * quantize timestamps (unless its unsafe APIs are allowed), so very short passes read coarsely.
 */
import { BufferUsage } from './webgpu-device.js';

const QUERY_RESOLVE = 0x200; // GPUBufferUsage.QUERY_RESOLVE

export interface PassTime {
  /** The kernel variant's label (program name and spec, see variantKey). */
  label: string;
  ms: number;
}

export class PassProfiler {
  private readonly querySet: GPUQuerySet;
  private readonly resolveBuffer: GPUBuffer;
  private readonly readBuffer: GPUBuffer;
  private labels: string[] = [];
  /** Passes beyond the capacity run unprofiled; how many did. */
  dropped = 0;

  constructor(private readonly device: GPUDevice, readonly capacity = 256) {
    if (!device.features.has('timestamp-query')) throw new Error('PassProfiler needs a device with the timestamp-query feature');
    this.querySet = device.createQuerySet({ label: 'pass-profiler', type: 'timestamp', count: 2 * capacity });
    this.resolveBuffer = device.createBuffer({ label: 'pass-profiler.resolve', size: 16 * capacity, usage: QUERY_RESOLVE | BufferUsage.COPY_SRC });
    this.readBuffer = device.createBuffer({ label: 'pass-profiler.read', size: 16 * capacity, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  }

  /** The timestampWrites of the next pass, or undefined once the capacity is used. */
  timestampWrites(label: string): GPUComputePassTimestampWrites | undefined {
    const i = this.labels.length;
    if (i >= this.capacity) {
      this.dropped++;
      return undefined;
    }
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Resolves and reads the passes recorded since the last read (their work must be submitted). */
  async read(): Promise<PassTime[]> {
    const n = this.labels.length;
    if (n === 0) return [];
    const encoder = this.device.createCommandEncoder({ label: 'pass-profiler.resolve' });
    encoder.resolveQuerySet(this.querySet, 0, 2 * n, this.resolveBuffer, 0);
    encoder.copyBufferToBuffer(this.resolveBuffer, 0, this.readBuffer, 0, 16 * n);
    this.device.queue.submit([encoder.finish()]);
    await this.readBuffer.mapAsync(0x1 /* GPUMapMode.READ */, 0, 16 * n);
    const ticks = new BigUint64Array(this.readBuffer.getMappedRange(0, 16 * n).slice(0));
    this.readBuffer.unmap();
    const out = this.labels.map((label, i) => ({ label, ms: Number(ticks[2 * i + 1] - ticks[2 * i]) / 1e6 }));
    this.labels = [];
    return out;
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuffer.destroy();
    this.readBuffer.destroy();
  }
}

const attached = new WeakMap<GPUDevice, PassProfiler>();

/** Profiles every pass encoded for `device` until detached. */
export function attachProfiler(device: GPUDevice, profiler: PassProfiler): void {
  attached.set(device, profiler);
}

export function detachProfiler(device: GPUDevice): void {
  attached.delete(device);
}

export function activeProfiler(device: GPUDevice): PassProfiler | undefined {
  return attached.get(device);
}

/** GPU ms per kernel program of one run, e.g. { 'xattention-estimate': 2.1, 'attention': 20.3 }. */
export type KernelMs = Record<string, number>;

/** ms per program name (the label up to its spec), summed over passes, in first-seen order. */
export function msByProgram(times: readonly PassTime[]): KernelMs {
  const out: KernelMs = {};
  for (const t of times) {
    const name = t.label.replace(/\{.*$/, '');
    out[name] = (out[name] ?? 0) + t.ms;
  }
  return out;
}

let profilingBroken = false;

/**
 * One run under a PassProfiler: ms per kernel program, or undefined without timestamp queries.
 * Benchmarks call it after their timed runs, so timestamps cannot perturb those. The split is
 * extra information: if a profiled run fails, it says why once and profiling stays off.
 */
export async function profileRun(device: GPUDevice, run: () => Promise<unknown>): Promise<KernelMs | undefined> {
  if (!device.features.has('timestamp-query') || profilingBroken) return undefined;
  device.pushErrorScope('validation');
  let popped = false;
  const profiler = new PassProfiler(device);
  attachProfiler(device, profiler);
  try {
    await run();
    detachProfiler(device);
    const times = await profiler.read();
    const err = await device.popErrorScope();
    popped = true;
    if (err) throw new Error(err.message);
    return msByProgram(times);
  } catch (err) {
    profilingBroken = true;
    console.error(`per-kernel timestamps disabled: ${(err as Error).message}`);
    return undefined;
  } finally {
    detachProfiler(device);
    if (!popped) await device.popErrorScope().catch(() => undefined);
    profiler.destroy();
  }
}

/** GPU work per warm-up submit (ms), and at most this many runs (each holds its products until the fence). */
const WARM_BATCH_MS = 50;
const WARM_BATCH_RUNS = 16;

/**
 * How a timed series runs: `warmRuns` untimed runs at least (1 compiles the pipelines), more (queued
 * back to back) until `warmMs` have passed (GPU clocks ramp up under load), then `iterations` timed
 * runs, then, with `profile`, one run under a PassProfiler.
 */
export interface TimerRuns {
  iterations: number;
  warmMs: number;
  warmRuns: number;
  /**
   * Most warm runs queued under one fence (default 16); 1 where an encode needs the previous run done
   * on the GPU (it frees that run's products, or takes its pooled workspaces).
   */
  warmBatch?: number;
  profile?: boolean;
}

/**
 * GPU time of runs on inputs already on the device: `encode` records one run into a fresh encoder
 * and returns the buffers it made (destroyed after the run); each run is submitted alone and the
 * clock stops when the queue is done (GPU work only, no transfers).
 */
export async function fencedRuns(
  device: GPUDevice, encode: (encoder: GPUCommandEncoder) => Promise<GPUBuffer[]>, t: TimerRuns,
): Promise<{ ms: number[]; kernelMs?: KernelMs }> {
  // n runs back to back under one fence; ms per run. Products are destroyed once the queue is done.
  const runs = async (n: number, label: string) => {
    const made: GPUBuffer[] = [];
    const commands: GPUCommandBuffer[] = [];
    for (let i = 0; i < n; i++) {
      const encoder = device.createCommandEncoder({ label });
      made.push(...(await encode(encoder)));
      commands.push(encoder.finish());
    }
    const t0 = performance.now();
    device.queue.submit(commands);
    await device.queue.onSubmittedWorkDone();
    const ms = (performance.now() - t0) / n;
    for (const b of made) b.destroy();
    return ms;
  };
  const run = () => runs(1, 'timed-run');
  const warmStart = performance.now();
  let last: number | undefined;
  for (let i = 0; i < t.warmRuns; i++) last = await run();
  // Warm runs go back to back under one fence (about WARM_BATCH_MS of work each), so the GPU never
  // idles between them: a 4K kernel submitted and awaited alone kept an H200 at 345 MHz through
  // 1.5 s of warm-up (dense 4K 6.4 ms, 1.3 warm; bench/results/2026-12-04g-h200/bench-structured.json).
  while (performance.now() - warmStart < t.warmMs) {
    // The first batch is one run: its time sizes the next (unknown, one run might fill the memory 16 would).
    const n = last === undefined ? 1 : Math.min(t.warmBatch ?? WARM_BATCH_RUNS, Math.max(1, Math.ceil(WARM_BATCH_MS / Math.max(last, 0.01))));
    last = await runs(n, 'warm-run');
  }
  const ms: number[] = [];
  for (let i = 0; i < t.iterations; i++) ms.push(await run());
  return { ms, kernelMs: t.profile ? await profileRun(device, run) : undefined };
}
