/**
 * The Llama model as the paged-KV engine's QKV producer, so a real model's prompts are prefilled
 * in chunks (and decoded) by the engine's scheduler, paged cache and sparse prefill modes
 * (OpenVINO-shaped TRISHAPE / XATTENTION), instead of LlamaModel.forward's contiguous cache.
 *
 * The engine runs a chunk layer by layer: qkv(layer) → cache write → paged attention → stored
 * output. A layer's Q/K/V depend on the previous layer's attention output for the same tokens, so
 * this producer keeps each sequence's residual stream for the chunk in flight and, on
 * qkv(layer > 0), first finishes layer − 1 with the engine's stored output (o_proj + MLP). On the
 * next chunk's qkv(0) (or at `finish`) the last layer is finished and logits computed; when a chunk
 * ends the known tokens, the greedy next token is appended, which the next decode step embeds.
 */
import { InvalidArgumentError } from '../core/errors.js';
import { HeadTensor } from '../core/tensor.js';
import type { SchedulerConfigInput } from '../config/openvino.js';
import { Engine, type SequenceStats } from '../engine/engine.js';
import type { QkvChunk, QkvProducer } from '../engine/synthetic-model.js';
import { argmax, type LlamaModel } from './llama.js';

interface SequenceState {
  tokens: number[];
  /** Teacher forcing: the tokens fed after the prompt instead of the greedy ones. */
  forced?: ArrayLike<number>;
  promptLength: number;
  /** prompt + decode tokens: positions the engine will process. */
  totalLength: number;
  /** Logits of every processed position [totalLength, vocab] (the latest computation of each). */
  logits: Float32Array;
  chunk?: { start: number; length: number; layer: number; x: Float32Array };
}

export class LlamaEngineProducer implements QkvProducer {
  readonly numLayers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Set once the engine exists (the engine is built from this producer). */
  engine?: Engine;
  private readonly seqs = new Map<number, SequenceState>();

  constructor(readonly model: LlamaModel) {
    const c = model.config;
    ({ numLayers: this.numLayers, numHeads: this.heads, numKvHeads: this.kvHeads, headDim: this.headDim } = c);
  }

  /** `forced`: tokens to feed after the prompt (teacher forcing) instead of the greedy ones; at least decodeTokens of them. */
  addSequence(id: number, prompt: ArrayLike<number>, decodeTokens: number, forced?: ArrayLike<number>): void {
    if (forced && forced.length < decodeTokens) throw new InvalidArgumentError('forced tokens', forced.length, `at least the ${decodeTokens} decode tokens`);
    const totalLength = prompt.length + decodeTokens;
    this.seqs.set(id, { tokens: Array.from(prompt), forced, promptLength: prompt.length, totalLength, logits: new Float32Array(totalLength * this.model.config.vocabSize) });
  }

  qkv(layer: number, seqId: number, start: number, length: number): QkvChunk {
    const s = this.state(seqId);
    if (layer === 0) {
      this.finishChunk(seqId, s);
      if (start + length > s.tokens.length) {
        throw new InvalidArgumentError('chunk end', start + length, `at most the ${s.tokens.length} tokens known for sequence ${seqId}`);
      }
      s.chunk = { start, length, layer: 0, x: this.model.embed(s.tokens.slice(start, start + length)) };
    } else {
      const ch = s.chunk;
      if (!ch || ch.start !== start || ch.length !== length || ch.layer !== layer - 1) {
        throw new InvalidArgumentError(`qkv(layer ${layer}) of sequence ${seqId}`, { start, length }, 'the chunk whose previous layer just ran');
      }
      this.model.finishLayer(layer - 1, ch.x, length, this.attentionRows(seqId, layer - 1, start, length));
      ch.layer = layer;
    }
    const { q, k, v } = this.model.projectQkv(layer, s.chunk!.x, length, start);
    const t = (data: Float32Array, heads: number) => new HeadTensor({ batch: 1, heads, length, headDim: this.headDim }, data, 'BLHD').toLayout('BHLD');
    return { q: t(q, this.heads), k: t(k, this.kvHeads), v: t(v, this.kvHeads) };
  }

  /** Completes the chunk in flight (after the engine has finished its last layer). */
  finish(seqId: number): void {
    this.finishChunk(seqId, this.state(seqId));
  }

  tokens(seqId: number): number[] {
    return this.state(seqId).tokens;
  }

  logits(seqId: number): Float32Array {
    return this.state(seqId).logits;
  }

  private finishChunk(seqId: number, s: SequenceState): void {
    const ch = s.chunk;
    if (!ch) return;
    if (ch.layer !== this.numLayers - 1) throw new InvalidArgumentError(`chunk of sequence ${seqId}`, ch.layer, `run through every layer (${this.numLayers})`);
    this.model.finishLayer(ch.layer, ch.x, ch.length, this.attentionRows(seqId, ch.layer, ch.start, ch.length));
    const V = this.model.config.vocabSize;
    const logits = this.model.logits(ch.x, ch.length);
    s.logits.set(logits, ch.start * V);
    const end = ch.start + ch.length;
    if (end === s.tokens.length && end < s.totalLength) s.tokens.push(s.forced ? s.forced[end - s.promptLength] : argmax(logits, V, ch.length - 1));
    s.chunk = undefined;
  }

  /** The engine's stored attention output of positions [start, start + n) as rows [n, H·D]. */
  private attentionRows(seqId: number, layer: number, start: number, n: number): Float32Array {
    if (!this.engine) throw new InvalidArgumentError('LlamaEngineProducer.engine', undefined, 'the Engine built from this producer');
    const out = this.engine.output(seqId, layer).sliceLength(start, start + n).toLayout('BLHD');
    return out.toFloat32Array();
  }

  private state(seqId: number): SequenceState {
    const s = this.seqs.get(seqId);
    if (!s) throw new InvalidArgumentError('seqId', seqId, 'a sequence added with addSequence');
    return s;
  }
}

export interface EngineGeneration {
  /** Greedy continuation of each prompt. */
  generated: number[][];
  /** Logits of every position of each sequence [prompt + new tokens, vocab]. */
  logits: Float32Array[];
  stats: SequenceStats[];
}

/**
 * Prefills `prompts` in chunks through the engine (scheduler config decides chunk sizes and the
 * sparse prefill mode) and decodes `newTokens` greedy tokens each (the last one is predicted
 * from the final decode step, so newTokens − 1 decode steps run).
 */
export async function generateWithEngine(model: LlamaModel, prompts: ArrayLike<number>[], newTokens: number, config: SchedulerConfigInput): Promise<EngineGeneration> {
  const producer = new LlamaEngineProducer(model);
  const engine = new Engine({ model: producer, config });
  producer.engine = engine;
  const decodeSteps = Math.max(0, newTokens - 1);
  prompts.forEach((p, id) => {
    producer.addSequence(id, p, decodeSteps);
    engine.addRequest({ id, promptLength: p.length, decodeTokens: decodeSteps });
  });
  await engine.run();
  const V = model.config.vocabSize;
  const generated = prompts.map((p, id) => {
    producer.finish(id);
    const tokens = producer.tokens(id);
    const last = producer.logits(id).subarray((tokens.length - 1) * V, tokens.length * V);
    return [...tokens.slice(p.length), ...(newTokens > 0 ? [argmax(last, V)] : [])];
  });
  return { generated, logits: prompts.map((_, id) => producer.logits(id)), stats: prompts.map((_, id) => engine.stats(id)) };
}
