/**
 * Scoring one prompt with whatever attention the model is configured for: the mean next-token
 * loss over the prompt, the greedy answer and its log-probability, and (teacher-forced) the
 * log-probability of a reference answer, e.g. the one dense attention gave.
 */
import { type LlamaModel, argmax, logProb, prefill } from './llama.js';

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

export async function scorePrompt(model: LlamaModel, tokens: ArrayLike<number>, opts: ScoreOptions): Promise<PromptScore> {
  const V = model.config.vocabSize;
  const L = tokens.length;
  const cache = model.newCache(L + opts.answerLength);
  const all = await prefill(model, tokens, cache, opts.prefillChunk ?? L, 'all');
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
    if (i + 1 < opts.answerLength) logits = (await model.forward([next], cache)).logits;
  }
  const score: PromptScore = { loss: L > 1 ? nll / (L - 1) : 0, greedy, greedyLogProb };
  if (opts.reference) score.referenceLogProb = await referenceLogProb(model, cache, L, lastRow, opts.reference, greedy, greedyLogProb);
  return score;
}

/** Teacher-forced log p(reference) by decode steps from the prompt's cache (reused when greedy agrees). */
async function referenceLogProb(
  model: LlamaModel, cache: ReturnType<LlamaModel['newCache']>, promptLength: number, lastRow: Float32Array,
  reference: ArrayLike<number>, greedy: number[], greedyLogProb: number,
): Promise<number> {
  if (reference.length === greedy.length && greedy.every((t, i) => t === reference[i])) return greedyLogProb;
  const V = model.config.vocabSize;
  cache.truncate(promptLength);
  let logits: Float32Array = lastRow;
  let lp = 0;
  for (let i = 0; i < reference.length; i++) {
    lp += logProb(logits, V, 0, reference[i]);
    if (i + 1 < reference.length) logits = (await model.forward([reference[i]], cache)).logits;
  }
  return lp;
}
