/**
 * Scoring one prompt with whatever attention the model is configured for: the mean next-token
 * loss over the prompt, the greedy answer and its log-probability, and (teacher-forced) the
 * log-probability of a reference answer, e.g. the one dense attention gave. The same steps run on
 * the CPU model or the GPU runner through `ScoringModel`.
 */
import type { GpuKvCache, GpuLlamaModel } from './gpu-llama.js';
import { prefillGpu } from './gpu-generate.js';
import { type LlamaModel, argmax, logProb, prefill } from './llama.js';
import type { KvCache } from './kv-cache.js';

export interface PromptScore {
  /** Mean −log p(token[t+1] | tokens[..t]) over the prompt, nats per byte. */
  loss: number;
  greedy: number[];
  greedyLogProb: number;
  /** log p(reference answer | prompt); equals greedyLogProb when the reference is the greedy answer. */
  referenceLogProb?: number;
}

export interface ScoreOptions {
  answerLength: number;
  reference?: ArrayLike<number>;
  /** Prefill chunk size (default: the whole prompt in one call). */
  prefillChunk?: number;
}

/** What scoring needs of a model: a cache, a prefill returning every row's logits, one decode step. */
export interface ScoringModel {
  readonly vocabSize: number;
  /** A cache for `capacity` positions, empty; the scorer may reuse one across prompts. */
  cache(capacity: number): unknown;
  prefillAll(tokens: ArrayLike<number>, cache: unknown, chunk: number): Promise<Float32Array>;
  step(token: number, cache: unknown): Promise<Float32Array>;
  truncate(cache: unknown, length: number): void;
  /** Frees what `cache` allocated (GPU buffers). */
  release(): void;
}

export function cpuScoring(model: LlamaModel): ScoringModel {
  return {
    vocabSize: model.config.vocabSize,
    cache: (capacity) => model.newCache(capacity),
    prefillAll: (tokens, cache, chunk) => prefill(model, tokens, cache as KvCache, chunk, 'all'),
    step: async (token, cache) => (await model.forward([token], cache as KvCache)).logits,
    truncate: (cache, length) => (cache as KvCache).truncate(length),
    release: () => {},
  };
}

/** The GPU runner: one cache kept and reused while prompts fit it (allocation is not free at 8K). */
export function gpuScoring(gpu: GpuLlamaModel): ScoringModel {
  let kept: GpuKvCache | undefined;
  return {
    vocabSize: gpu.model.config.vocabSize,
    cache(capacity) {
      if (!kept || kept.capacity < capacity) {
        kept?.destroy();
        kept = gpu.newCache(capacity);
      }
      kept.length = 0;
      return kept;
    },
    prefillAll: (tokens, cache, chunk) => prefillGpu(gpu, tokens, cache as GpuKvCache, chunk, 'all'),
    step: async (token, cache) => (await gpu.forward([token], cache as GpuKvCache)).logits,
    truncate: (cache, length) => { (cache as GpuKvCache).length = length; },
    release: () => { kept?.destroy(); kept = undefined; },
  };
}

/** Scores a prompt on the CPU model (see scoreWith). */
export async function scorePrompt(model: LlamaModel, tokens: ArrayLike<number>, opts: ScoreOptions): Promise<PromptScore> {
  return scoreWith(cpuScoring(model), tokens, opts);
}

export async function scoreWith(model: ScoringModel, tokens: ArrayLike<number>, opts: ScoreOptions): Promise<PromptScore> {
  const V = model.vocabSize;
  const L = tokens.length;
  const cache = model.cache(L + opts.answerLength);
  const all = await model.prefillAll(tokens, cache, opts.prefillChunk ?? L);
  let nll = 0;
  for (let t = 0; t + 1 < L; t++) nll -= logProb(all, V, t, tokens[t + 1]);
  const lastRow = all.slice((L - 1) * V);
  const greedy: number[] = [];
  let greedyLogProb = 0;
  let logits: Float32Array = lastRow;
  for (let i = 0; i < opts.answerLength; i++) {
    const next = argmax(logits, V);
    greedy.push(next);
    greedyLogProb += logProb(logits, V, 0, next);
    if (i + 1 < opts.answerLength) logits = await model.step(next, cache);
  }
  const score: PromptScore = { loss: L > 1 ? nll / (L - 1) : 0, greedy, greedyLogProb };
  if (opts.reference) score.referenceLogProb = await referenceLogProb(model, cache, L, lastRow, opts.reference, greedy, greedyLogProb);
  return score;
}

/** Teacher-forced log p(reference) by decode steps from the prompt's cache (reused when greedy agrees). */
async function referenceLogProb(
  model: ScoringModel, cache: unknown, promptLength: number, lastRow: Float32Array,
  reference: ArrayLike<number>, greedy: number[], greedyLogProb: number,
): Promise<number> {
  if (reference.length === greedy.length && greedy.every((t, i) => t === reference[i])) return greedyLogProb;
  const V = model.vocabSize;
  model.truncate(cache, promptLength);
  let logits: Float32Array = lastRow;
  let lp = 0;
  for (let i = 0; i < reference.length; i++) {
    lp += logProb(logits, V, 0, reference[i]);
    if (i + 1 < reference.length) logits = await model.step(reference[i], cache);
  }
  return lp;
}
