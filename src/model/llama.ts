/**
 * A Llama-architecture causal LM forward pass on the CPU, f32, batch 1:
 *   x = embed[tokens]
 *   per layer: x += o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   n1 = RMSNorm(x)
 *              x += down_proj(silu(gate_proj(n2)) · up_proj(n2))                           n2 = RMSNorm(x)
 *   logits = lm_head(RMSNorm(x))
 * Every attention call goes through `sparseAttention` with the method and backend of its module
 * (`model.layers.N.self_attn`), so any registered method or backend plugs in; `sparsify` sets them.
 * Tokens are ids (for bytes-llama-dev, id = byte value).
 */
import { sparseAttention } from '../attention.js';
import type { AttentionBackend } from '../backends/backend.js';
import { cpuBackend } from '../backends/cpu/index.js';
import { InvalidArgumentError, requireInteger } from '../core/errors.js';
import { phaseOf, type StatsAggregator } from '../core/stats.js';
import { HeadTensor } from '../core/tensor.js';
import { DenseMethod } from '../methods/dense/dense.js';
import type { BlockPlan, SparseAttentionMethod } from '../methods/method.js';
import { type LlamaWeights, loadLlamaCheckpoint } from './checkpoint.js';
import { KvCache } from './kv-cache.js';
import type { LlamaConfig } from './llama-config.js';
import { addInPlace, concatRows, linear, rmsNorm, siluMul } from './ops.js';
import { RopeTable } from './rope.js';

/** One attention module: what `sparsify` configures and whose statistics are recorded under `name`. */
export interface AttentionModule {
  readonly name: string;
  readonly layer: number;
  method: SparseAttentionMethod;
  backend: AttentionBackend;
}

/** Where an attention call sits in its prompt: a chunk with this many prompt tokens after it (ForwardOptions.tokensAfter). */
export interface CallPlace {
  promptRowsAfter?: number;
}

export interface ForwardOptions {
  /** Which rows of logits to return: every token of the chunk, or only the last. Default 'last'. */
  logits?: 'all' | 'last';
  /**
   * These tokens are a chunk of a prompt that continues with this many more tokens in later calls
   * (0: its last chunk). Methods with rules about a prompt's last rows (tri-shape's last dense
   * queries) then plan the chunks as one call over the prompt. Absent: the tokens are a whole prompt.
   */
  tokensAfter?: number;
}

export interface ForwardResult {
  /** [rows, vocab] row-major. */
  logits: Float32Array;
  rows: number;
}

export class LlamaModel {
  readonly rope: RopeTable;
  readonly attention: AttentionModule[];
  /** When set, every attention call records its plan's statistics here under the module name. */
  stats?: StatsAggregator;
  /** Called before every attention call with its operands (q BLHD [1, L, H, D]; k/v views of the cache) and its place in the prompt (promptRowsAfter absent for a whole prompt). */
  onAttention?: (module: AttentionModule, q: HeadTensor, k: HeadTensor, v: HeadTensor, call: CallPlace) => void;
  /** Called after every attention call with the plan it ran (its block mask, block scores, statistics). */
  onPlan?: (module: AttentionModule, plan: BlockPlan) => void;
  constructor(
    readonly config: LlamaConfig,
    readonly weights: LlamaWeights,
  ) {
    this.rope = new RopeTable(config.headDim, config.ropeTheta);
    this.attention = weights.layers.map((_, i) => ({
      name: `model.layers.${i}.self_attn`,
      layer: i,
      method: new DenseMethod(),
      backend: cpuBackend,
    }));
  }

  static load(dir: string): LlamaModel {
    const { config, weights } = loadLlamaCheckpoint(dir);
    return new LlamaModel(config, weights);
  }

  newCache(capacity: number): KvCache {
    const c = this.config;
    return new KvCache(c.numLayers, c.numKvHeads, c.headDim, capacity);
  }

  /** Runs `tokens` at positions [cache.length, cache.length + n), appending their K/V to the cache. */
  async forward(tokens: ArrayLike<number>, cache: KvCache, opts: ForwardOptions = {}): Promise<ForwardResult> {
    const c = this.config;
    const n = requireInteger('tokens.length', tokens.length, 1);
    const promptRowsAfter = opts.tokensAfter === undefined ? undefined : requireInteger('tokensAfter', opts.tokensAfter, 0);
    const start = cache.length;
    const x = this.embed(tokens);
    for (let l = 0; l < c.numLayers; l++) {
      const { q, k, v } = this.projectQkv(l, x, n, start);
      cache.write(l, start, n, k, v);
      const kv = cache.view(l, start + n);
      const qt = new HeadTensor({ batch: 1, heads: c.numHeads, length: n, headDim: c.headDim }, q, 'BLHD');
      const module = this.attention[l];
      this.onAttention?.(module, qt, kv.k, kv.v, { promptRowsAfter });
      const { output, plan } = await sparseAttention(qt, kv.k, kv.v, {
        method: module.method, backend: module.backend, causal: true, phase: phaseOf(n), promptRowsAfter,
      });
      this.stats?.record(module.name, plan.stats);
      this.onPlan?.(module, plan);
      this.finishLayer(l, x, n, output.toLayout('BLHD').toFloat32Array());
    }
    cache.length = start + n;
    const rows = opts.logits === 'all' ? n : 1;
    return { logits: this.logits(x.subarray((n - rows) * c.hiddenSize), rows), rows };
  }

  /** The residual stream [n, hidden] of token ids. */
  embed(tokens: ArrayLike<number>): Float32Array {
    const c = this.config;
    const H = c.hiddenSize;
    const x = new Float32Array(tokens.length * H);
    for (let t = 0; t < tokens.length; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new InvalidArgumentError(`tokens[${t}]`, id, `an integer token id in [0, ${c.vocabSize})`);
      x.set(this.weights.embed.subarray(id * H, (id + 1) * H), t * H);
    }
    return x;
  }

  /** Layer `l`'s attention operands for n tokens at positions [start, start + n): q [n, H·D], k/v [n, Hkv·D], RoPE applied. */
  projectQkv(l: number, x: Float32Array, n: number, start: number): { q: Float32Array; k: Float32Array; v: Float32Array } {
    const c = this.config;
    const w = this.weights.layers[l];
    const h = rmsNorm(x, n, c.hiddenSize, w.inputNorm, c.rmsNormEps);
    const q = linear(h, n, w.q.weight, w.q.outFeatures, w.q.inFeatures, w.q.bias);
    const k = linear(h, n, w.k.weight, w.k.outFeatures, w.k.inFeatures, w.k.bias);
    const v = linear(h, n, w.v.weight, w.v.outFeatures, w.v.inFeatures, w.v.bias);
    this.rope.apply(q, n, c.numHeads, start);
    this.rope.apply(k, n, c.numKvHeads, start);
    return { q, k, v };
  }

  /** The rest of layer `l`, in place on x: x += o_proj(attention [n, H·D]); x += MLP(RMSNorm(x)). */
  finishLayer(l: number, x: Float32Array, n: number, attention: Float32Array): void {
    const c = this.config;
    const w = this.weights.layers[l];
    addInPlace(x, linear(attention, n, w.o.weight, w.o.outFeatures, w.o.inFeatures, w.o.bias));
    const h = rmsNorm(x, n, c.hiddenSize, w.postAttentionNorm, c.rmsNormEps);
    const gate = linear(h, n, w.gate.weight, w.gate.outFeatures, w.gate.inFeatures, w.gate.bias);
    const up = linear(h, n, w.up.weight, w.up.outFeatures, w.up.inFeatures, w.up.bias);
    addInPlace(x, linear(siluMul(gate, up), n, w.down.weight, w.down.outFeatures, w.down.inFeatures, w.down.bias));
  }

  /** Logits [rows, vocab] of the last layer's residual rows x [rows, hidden]. */
  logits(x: Float32Array, rows: number): Float32Array {
    const c = this.config;
    const normed = rmsNorm(x, rows, c.hiddenSize, this.weights.finalNorm, c.rmsNormEps);
    const head = this.weights.lmHead;
    return linear(normed, rows, head.weight, head.outFeatures, head.inFeatures);
  }
}

/** Index of the largest entry of row `row` of [rows, vocab] logits (lowest index on ties). */
export function argmax(logits: Float32Array, vocab: number, row = 0): number {
  let best = 0;
  for (let i = 1; i < vocab; i++) if (logits[row * vocab + i] > logits[row * vocab + best]) best = i;
  return best;
}

/** log softmax(row)[target], computed in f64. */
export function logProb(logits: Float32Array, vocab: number, row: number, target: number): number {
  const o = row * vocab;
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) max = Math.max(max, logits[o + i]);
  let sum = 0;
  for (let i = 0; i < vocab; i++) sum += Math.exp(logits[o + i] - max);
  return logits[o + target] - max - Math.log(sum);
}

export interface GenerateOptions {
  maxNewTokens: number;
  /** Prefill the prompt in chunks of this many tokens (default: the whole prompt at once). */
  prefillChunk?: number;
  cache?: KvCache;
}

/** Prefills `prompt` (in chunks when asked) and returns the last chunk's logits for all its rows. */
export async function prefill(model: LlamaModel, prompt: ArrayLike<number>, cache: KvCache, chunk = prompt.length, logits: 'all' | 'last' = 'last'): Promise<Float32Array> {
  requireInteger('prefill chunk', chunk, 1);
  const parts: Float32Array[] = [];
  for (let s = 0; s < prompt.length; s += chunk) {
    const end = Math.min(s + chunk, prompt.length);
    const ids = Array.prototype.slice.call(prompt, s, end) as number[];
    parts.push((await model.forward(ids, cache, { logits, tokensAfter: prompt.length - end })).logits);
  }
  return logits === 'last' ? parts[parts.length - 1] : concatRows(parts);
}

/** Greedy decoding: prefill, then one token at a time through the KV cache. */
export async function generateGreedy(model: LlamaModel, prompt: ArrayLike<number>, opts: GenerateOptions): Promise<number[]> {
  const V = model.config.vocabSize;
  const cache = opts.cache ?? model.newCache(prompt.length + opts.maxNewTokens);
  let logits = await prefill(model, prompt, cache, opts.prefillChunk ?? prompt.length);
  const out: number[] = [];
  for (let i = 0; i < opts.maxNewTokens; i++) {
    const next = argmax(logits, V);
    out.push(next);
    if (i + 1 < opts.maxNewTokens) logits = (await model.forward([next], cache)).logits;
  }
  return out;
}
