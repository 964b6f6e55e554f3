/**
 * The fields of a Hugging Face Llama `config.json` that the forward pass needs, checked once.
 * Architectures in the Llama family that compute the same thing (Llama, Mistral without sliding
 * window, Qwen2-style biases via attention_bias) are accepted by `model_type`/`architectures`.
 */
import { InvalidArgumentError, UnsupportedError } from '../core/errors.js';

export interface LlamaConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositions: number;
  tieWordEmbeddings: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
}

const ARCHITECTURES = ['LlamaForCausalLM'];

function positiveInt(raw: Record<string, unknown>, field: string, fallback?: number): number {
  const v = raw[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InvalidArgumentError(`config.json ${field}`, v, 'an integer >= 1');
  return v;
}

function positiveNumber(raw: Record<string, unknown>, field: string, fallback: number): number {
  const v = raw[field] ?? fallback;
  if (typeof v !== 'number' || !(v > 0)) throw new InvalidArgumentError(`config.json ${field}`, v, 'a number > 0');
  return v;
}

export function parseLlamaConfig(raw: Record<string, unknown>): LlamaConfig {
  const archs = (raw.architectures as string[] | undefined) ?? [];
  if (raw.model_type !== 'llama' || (archs.length > 0 && !archs.some((a) => ARCHITECTURES.includes(a)))) {
    throw new UnsupportedError(
      `unsupported architecture: model_type ${JSON.stringify(raw.model_type)}, architectures ${JSON.stringify(archs)}; supported: model_type "llama" (${ARCHITECTURES.join(', ')})`,
    );
  }
  if (raw.hidden_act !== undefined && raw.hidden_act !== 'silu') {
    throw new UnsupportedError(`unsupported hidden_act ${JSON.stringify(raw.hidden_act)}; the Llama MLP here is SwiGLU ("silu")`);
  }
  const scaling = raw.rope_scaling as { rope_type?: string; type?: string } | null | undefined;
  const ropeType = scaling?.rope_type ?? scaling?.type ?? 'default';
  if (scaling && ropeType !== 'default') {
    throw new UnsupportedError(`unsupported rope_scaling ${JSON.stringify(scaling)}; only plain RoPE (rope_scaling null) is implemented`);
  }
  const hiddenSize = positiveInt(raw, 'hidden_size');
  const numHeads = positiveInt(raw, 'num_attention_heads');
  const numKvHeads = positiveInt(raw, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new InvalidArgumentError('config.json num_key_value_heads', numKvHeads, `a divisor of num_attention_heads (${numHeads})`);
  }
  const headDim = positiveInt(raw, 'head_dim', hiddenSize / numHeads);
  if (headDim % 2 !== 0) throw new InvalidArgumentError('config.json head_dim', headDim, 'even (RoPE rotates pairs)');
  return {
    vocabSize: positiveInt(raw, 'vocab_size'),
    hiddenSize,
    intermediateSize: positiveInt(raw, 'intermediate_size'),
    numLayers: positiveInt(raw, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: positiveNumber(raw, 'rms_norm_eps', 1e-6),
    ropeTheta: positiveNumber(raw, 'rope_theta', 10000),
    maxPositions: positiveInt(raw, 'max_position_embeddings', 2048),
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    attentionBias: raw.attention_bias === true,
    mlpBias: raw.mlp_bias === true,
  };
}
