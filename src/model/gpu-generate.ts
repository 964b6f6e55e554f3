/**
 * Prefill and greedy decoding with the GPU runner (gpu-llama.ts), the twins of `prefill` and
 * `generateGreedy` in llama.ts, with callbacks for a progress bar (after each prefill chunk) and
 * for printing tokens as they come.
 */
import { requireInteger } from '../core/errors.js';
import type { GpuKvCache, GpuLlamaModel } from './gpu-llama.js';
import { argmax } from './llama.js';
import { concatRows } from './ops.js';

export interface GpuGenerateOptions {
  maxNewTokens: number;
  /** Prefill the prompt in chunks of this many tokens (default: the whole prompt at once). */
  prefillChunk?: number;
  cache?: GpuKvCache;
  /** After each prefill chunk: tokens done so far and the prompt's length. */
  onPrefill?: (done: number, total: number) => void;
  /** After each generated token (the first comes from the prefill's last logits). */
  onToken?: (token: number, index: number) => void;
}

/** Prefills `prompt` in chunks; returns the last chunk's logits (its last row, or all its rows). */
export async function prefillGpu(
  gpu: GpuLlamaModel, prompt: ArrayLike<number>, cache: GpuKvCache, chunk = prompt.length, logits: 'all' | 'last' = 'last',
  onPrefill?: (done: number, total: number) => void,
): Promise<Float32Array> {
  requireInteger('prefill chunk', chunk, 1);
  const parts: Float32Array[] = [];
  for (let s = 0; s < prompt.length; s += chunk) {
    const end = Math.min(s + chunk, prompt.length);
    const ids = Array.prototype.slice.call(prompt, s, end) as number[];
    parts.push((await gpu.forward(ids, cache, { logits, tokensAfter: prompt.length - end })).logits);
    onPrefill?.(Math.min(s + chunk, prompt.length), prompt.length);
  }
  return logits === 'last' ? parts[parts.length - 1] : concatRows(parts);
}

/** Greedy decoding on the GPU: prefill, then one token at a time through the GPU KV cache. */
export async function generateGreedyGpu(gpu: GpuLlamaModel, prompt: ArrayLike<number>, opts: GpuGenerateOptions): Promise<number[]> {
  const V = gpu.model.config.vocabSize;
  const own = !opts.cache;
  const cache = opts.cache ?? gpu.newCache(prompt.length + opts.maxNewTokens);
  try {
    let logits = await prefillGpu(gpu, prompt, cache, opts.prefillChunk ?? prompt.length, 'last', opts.onPrefill);
    const out: number[] = [];
    for (let i = 0; i < opts.maxNewTokens; i++) {
      const next = argmax(logits, V);
      out.push(next);
      opts.onToken?.(next, i);
      if (i + 1 < opts.maxNewTokens) logits = (await gpu.forward([next], cache)).logits;
    }
    return out;
  } finally {
    if (own) cache.destroy();
  }
}
