/**
 * Time to first token of the GPU model runner: a prompt of L random token ids is prefilled in
 * chunks through GpuLlamaModel and the first token is taken from the last chunk's logits (the
 * read-back ends the clock), dense and with each method on every layer (its default settings
 * unless given). Before each length the memory plan (gpu-memory.ts) is checked against the
 * device's limits and the optional budget; a length that does not fit is a row saying so, not a
 * crash. One profiled run per row (timestamp queries, when the adapter has them) splits the GPU
 * time into attention (attention kernels and the method's planning) and the rest (GEMMs, norms,
 * RoPE, copies: the `model-*` programs), and records each layer's block sparsity.
 */
import { InvalidArgumentError } from '../core/errors.js';
import { StatsAggregator } from '../core/stats.js';
import { createSparseMethod } from '../methods/index.js';
import { DenseMethod } from '../methods/dense/dense.js';
import type { WebGpuContext } from '../backends/webgpu/runtime/webgpu-device.js';
import { attachProfiler, detachProfiler, type KernelMs, msByProgram, PassProfiler } from '../backends/webgpu/runtime/pass-profiler.js';
import { type GpuLlamaModel } from '../model/gpu-llama.js';
import { checkFits } from '../model/gpu-memory.js';
import { argmax } from '../model/llama.js';

export interface TtftOptions {
  lengths: number[];
  /** 'dense' and method names; each runs on every layer. */
  methods: string[];
  /** Settings per method name (defaults otherwise). */
  settings?: Record<string, Record<string, unknown>>;
  chunk: number;
  reps: number;
  /** Device memory the run may use, when known (WebGPU does not say). */
  budgetBytes?: number;
  seed: number;
  profile: boolean;
  onRow?: (row: TtftRow) => void;
}

export interface TtftRow {
  length: number;
  method: string;
  settings: Record<string, unknown>;
  /** Wall ms of each timed run: prefill of every chunk + the first token's logits read back. */
  ms: number[];
  medianMs: number;
  /** Dense median / this median at the same length. */
  speedupVsDense?: number;
  /** From the profiled run: GPU ms of attention (with planning) and of everything else. */
  attentionMs?: number;
  restMs?: number;
  kernelMs?: KernelMs;
  /** Mean prefill block sparsity over layers and chunks (profiled run). */
  sparsity?: number;
  firstToken?: number;
  /** Why the row did not run (does not fit, or the error). */
  skipped?: string;
  memory?: { weightsBytes: number; cacheBytes: number; scratchBytes: number; totalBytes: number };
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One prefill of `prompt` in chunks; returns the first generated token. */
async function prefillOnce(gpu: GpuLlamaModel, prompt: number[], chunk: number, perChunk?: () => Promise<void>): Promise<number> {
  const cache = gpu.newCache(prompt.length + 1);
  try {
    let logits: Float32Array | undefined;
    for (let s = 0; s < prompt.length; s += chunk) {
      logits = (await gpu.forward(prompt.slice(s, s + chunk), cache, { tokensAfter: Math.max(0, prompt.length - s - chunk) })).logits;
      await perChunk?.();
    }
    return argmax(logits!, gpu.model.config.vocabSize);
  } finally {
    cache.destroy();
  }
}

export async function runTtft(gpu: GpuLlamaModel, ctx: WebGpuContext, o: TtftOptions): Promise<TtftRow[]> {
  const model = gpu.model;
  const V = model.config.vocabSize;
  const rows: TtftRow[] = [];
  for (const name of o.methods) if (name !== 'dense') createSparseMethod(name, o.settings?.[name] ?? {});
  // Compiles every pipeline a method uses before anything is timed.
  const warm = Array.from({ length: Math.min(2 * o.chunk, Math.min(...o.lengths)) }, (_, i) => i % V);
  for (const length of o.lengths) {
    const next = lcg(o.seed + length);
    const prompt = Array.from({ length }, () => next() % V);
    const plan = gpu.memoryPlan(length + 1, Math.min(o.chunk, length));
    const memory = { weightsBytes: plan.weightsBytes, cacheBytes: plan.cacheBytes, scratchBytes: plan.scratchBytes, totalBytes: plan.totalBytes };
    let denseMs: number | undefined;
    for (const method of o.methods) {
      const settings = o.settings?.[method] ?? {};
      const row: TtftRow = { length, method, settings, ms: [], medianMs: NaN, memory };
      try {
        checkFits(plan, ctx.device.limits, o.budgetBytes);
        for (const m of model.attention) m.method = method === 'dense' ? new DenseMethod() : createSparseMethod(method, settings);
        model.stats = undefined;
        await prefillOnce(gpu, warm, o.chunk);
        for (let r = 0; r < o.reps; r++) {
          const t0 = performance.now();
          row.firstToken = await prefillOnce(gpu, prompt, o.chunk);
          row.ms.push(performance.now() - t0);
        }
        row.medianMs = median(row.ms);
        if (method === 'dense') denseMs = row.medianMs;
        if (denseMs !== undefined) row.speedupVsDense = denseMs / row.medianMs;
        if (o.profile) Object.assign(row, await profiledRun(gpu, ctx, prompt, o.chunk, method !== 'dense'));
      } catch (err) {
        row.skipped = (err as Error).message;
      } finally {
        model.stats = undefined;
      }
      rows.push(row);
      o.onRow?.(row);
    }
  }
  return rows;
}

async function profiledRun(gpu: GpuLlamaModel, ctx: WebGpuContext, prompt: number[], chunk: number, sparse: boolean): Promise<Partial<TtftRow>> {
  const device = ctx.device;
  if (!device.features.has('timestamp-query')) return {};
  const stats = sparse ? new StatsAggregator() : undefined;
  gpu.model.stats = stats;
  const profiler = new PassProfiler(device, 2048);
  const times: { label: string; ms: number }[] = [];
  attachProfiler(device, profiler);
  try {
    await prefillOnce(gpu, prompt, chunk, async () => void times.push(...(await profiler.read())));
  } finally {
    detachProfiler(device);
    profiler.destroy();
  }
  const kernelMs = msByProgram(times);
  let attentionMs = 0;
  let restMs = 0;
  for (const [program, ms] of Object.entries(kernelMs)) {
    if (program.startsWith('model-')) restMs += ms;
    else attentionMs += ms;
  }
  const out: Partial<TtftRow> = { kernelMs, attentionMs, restMs };
  if (stats) {
    let kept = 0;
    let total = 0;
    for (const m of stats.modules) for (const s of stats.calls(m)) if (s.phase === 'prefill') {
      kept += s.keptBlocks;
      total += s.totalBlocks;
    }
    out.sparsity = total > 0 ? 1 - kept / total : undefined;
  }
  return out;
}

export function parseLengths(raw: string): number[] {
  const out = raw.split(',').map((s) => {
    const m = /^(\d+)([kK]?)$/.exec(s.trim());
    if (!m) throw new InvalidArgumentError('--lengths', raw, 'comma-separated token counts, e.g. 4096,8k,32k');
    return Number(m[1]) * (m[2] ? 1024 : 1);
  });
  if (out.some((n) => n < 1)) throw new InvalidArgumentError('--lengths', raw, 'positive lengths');
  return out;
}
