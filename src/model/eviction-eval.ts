/**
 * What cache eviction saves and costs inside a real model (bytes-llama-dev through the paged-KV
 * engine): each configuration runs the same prompts as the first one (the baseline, no eviction):
 *
 *   memory     KV blocks per layer a sequence holds: at its peak (the whole prompt: no eviction during
 *              prefill) and on average over the generation steps of the continuation runs, and bytes
 *   needle     needle prompts (needle.ts): greedy 6-byte answer; needle accuracy, agreement with the
 *              baseline's answer, and log p(baseline answer) − baseline's (teacher-forced)
 *   nll        corpus windows: a prompt, then `continuation` tokens teacher-forced through decode steps
 *              (so the evicting steps are the ones scored); mean next-token NLL (nats/byte) and its
 *              difference from the baseline
 */
import { kvBlockBytes, type SchedulerConfigInput } from '../config/openvino.js';
import { InvalidArgumentError, requireInteger } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { Engine, type SequenceStats } from '../engine/engine.js';
import { machineName } from './accuracy.js';
import { LlamaEngineProducer } from './engine-runner.js';
import { argmax, type LlamaModel, logProb } from './llama.js';
import { buildNeedlePrompt } from './needle.js';

export interface EvictionEvalConfig {
  label: string;
  /** Scheduler config without the cache size (set here from the prompt length). */
  config: Omit<SchedulerConfigInput, 'numKvBlocks' | 'cacheSizeBytes'>;
}

export interface EvictionEvalOptions {
  promptLength: number;
  /** Needle prompts per configuration. */
  needlePrompts: number;
  /** Corpus windows per configuration, and tokens teacher-forced after each prompt. */
  nllWindows: number;
  continuation: number;
  configs: EvictionEvalConfig[];
  seed?: number;
  onProgress?: (label: string, done: number, total: number) => void;
}

export interface EvictionEvalRow {
  label: string;
  config: EvictionEvalConfig['config'];
  /** Mean over runs of the most KV blocks (per layer) the sequence held. */
  peakBlocks: number;
  /** Mean KV blocks held after each generation step of the continuation runs. */
  decodeBlocks: number;
  /** Bytes of one KV block over all layers (K and V, f32). */
  blockBytes: number;
  evictedTokens: number;
  prefillSparsity: number;
  needleAccuracy: number;
  agreement: number;
  logProbDelta: number;
  nll: number;
  nllDelta: number;
  seconds: number;
}

export interface EvictionEvalReport {
  date: string;
  machine: string;
  model: string;
  options: Omit<EvictionEvalOptions, 'onProgress'>;
  rows: EvictionEvalRow[];
}

interface RunResult {
  tokens: number[];
  logits: Float32Array;
  stats: SequenceStats;
  /** Blocks held after each step once the prompt was done. */
  held: number[];
}

async function runOne(model: LlamaModel, prompt: ArrayLike<number>, decodeTokens: number, forced: ArrayLike<number> | undefined, config: SchedulerConfigInput): Promise<RunResult> {
  const producer = new LlamaEngineProducer(model);
  const engine = new Engine({ model: producer, config });
  producer.engine = engine;
  producer.addSequence(0, prompt, decodeTokens, forced);
  engine.addRequest({ id: 0, promptLength: prompt.length, decodeTokens });
  const held: number[] = [];
  for (let s = await engine.step(); s; s = await engine.step()) {
    const c = s.chunks[0];
    if (c && c.start + c.length >= prompt.length && engine.scheduler.isRunning(0)) held.push(engine.cache.capacity(0) / engine.cache.blockSize);
  }
  producer.finish(0);
  return { tokens: producer.tokens(0), logits: producer.logits(0), stats: engine.stats(0), held };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const ANSWER = 6;

export async function runEvictionEval(model: LlamaModel, corpus: Uint8Array, opts: EvictionEvalOptions): Promise<EvictionEvalReport> {
  const L = requireInteger('promptLength', opts.promptLength, 64);
  const T = requireInteger('continuation', opts.continuation, 2);
  if (opts.configs.length === 0 || opts.configs[0].config.useCacheEviction) {
    throw new InvalidArgumentError('configs[0]', opts.configs[0]?.label, 'the baseline: a configuration without cache eviction');
  }
  const rng = new Rng(opts.seed ?? 1);
  const needles = Array.from({ length: opts.needlePrompts }, () => buildNeedlePrompt(corpus, L, rng));
  const windows = Array.from({ length: opts.nllWindows }, () => {
    const at = rng.int(corpus.length - L - T);
    return { prompt: corpus.subarray(at, at + L), next: corpus.subarray(at + L, at + L + T) };
  });
  const V = model.config.vocabSize;
  const c = model.config;
  const rows: EvictionEvalRow[] = [];
  let base: { answers: number[][]; logProbs: number[]; nll: number } | null = null;
  for (const { label, config } of opts.configs) {
    const t0 = performance.now();
    const bs = config.kvBlockSize ?? 32;
    const full: SchedulerConfigInput = { ...config, numKvBlocks: Math.ceil((L + T) / bs) + 1 };
    const answers: number[][] = [], logProbs: number[] = [], peaks: number[] = [], sparsity: number[] = [], evicted: number[] = [];
    for (const [i, p] of needles.entries()) {
      const r = await runOne(model, p.tokens, ANSWER - 1, undefined, full);
      const answer = [...r.tokens.slice(L), argmax(r.logits.subarray((L + ANSWER - 2) * V), V)];
      answers.push(answer);
      const ref = base ? base.answers[i] : answer;
      const scored = ref.every((t, j) => t === answer[j]) ? r : await runOne(model, p.tokens, ANSWER - 1, ref, full);
      logProbs.push(ref.reduce((a, t, j) => a + logProb(scored.logits, V, L - 1 + j, t), 0));
      peaks.push(r.stats.peakBlocks);
      sparsity.push(r.stats.prefillSparsity);
      opts.onProgress?.(label, i + 1, needles.length + windows.length);
    }
    const nlls: number[] = [], held: number[] = [];
    for (const [i, w] of windows.entries()) {
      const r = await runOne(model, w.prompt, T - 1, w.next, full);
      let nll = 0;
      for (let j = 0; j < T; j++) nll -= logProb(r.logits, V, L - 1 + j, w.next[j]);
      nlls.push(nll / T);
      held.push(...r.held);
      peaks.push(r.stats.peakBlocks);
      evicted.push(r.stats.evictedTokens);
      opts.onProgress?.(label, needles.length + i + 1, needles.length + windows.length);
    }
    const nll = mean(nlls);
    base ??= { answers, logProbs, nll };
    rows.push({
      label, config, peakBlocks: mean(peaks), decodeBlocks: mean(held), blockBytes: kvBlockBytes(c.numLayers, c.numKvHeads, c.headDim, bs),
      evictedTokens: mean(evicted), prefillSparsity: mean(sparsity),
      needleAccuracy: mean(answers.map((a, i) => Number(a.every((t, j) => t === needles[i].answer[j])))),
      agreement: mean(answers.map((a, i) => Number(a.every((t, j) => t === base!.answers[i][j])))),
      logProbDelta: mean(logProbs.map((lp, i) => lp - base!.logProbs[i])),
      nll, nllDelta: nll - base.nll, seconds: (performance.now() - t0) / 1000,
    });
  }
  const { onProgress: _, ...options } = opts;
  return { date: new Date().toISOString(), machine: machineName(), model: '', options, rows };
}

/** The rows as a fixed-width table (memory first, then accuracy). */
export function formatEvictionTable(rows: readonly EvictionEvalRow[]): string {
  const head = ['config', 'peak blocks', 'decode blocks', 'decode KV MiB', 'saved', 'needle acc', 'agree', 'Δ log p', 'nll', 'Δ nll'];
  const base = rows[0];
  const lines = rows.map((r) => [
    r.label, r.peakBlocks.toFixed(1), r.decodeBlocks.toFixed(1), ((r.decodeBlocks * r.blockBytes) / 2 ** 20).toFixed(2),
    `${(100 * (1 - r.decodeBlocks / base.decodeBlocks)).toFixed(0)}%`, r.needleAccuracy.toFixed(2), r.agreement.toFixed(2),
    r.logProbDelta.toFixed(3), r.nll.toFixed(3), r.nllDelta.toFixed(3),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => cells.map((x, i) => x.padEnd(w[i])).join('  ').trimEnd();
  return [fmt(head), fmt(w.map((n) => '-'.repeat(n))), ...lines.map(fmt)].join('\n');
}
