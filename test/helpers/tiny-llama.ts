/** Small synthetic Llama checkpoints written to a temp dir, for loader and runner tests. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/core/rng.js';
import { type F32Tensor, type SafetensorsDType, writeSafetensors } from '../../src/model/safetensors.js';

export const TINY_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  vocab_size: 16,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  head_dim: 4,
  hidden_act: 'silu',
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  attention_bias: false,
  mlp_bias: false,
};

export type TinyConfig = typeof TINY_CONFIG;

/** Every tensor a config implies, seeded N(0, 0.5²) (norm weights around 1). */
export function tinyTensors(config: TinyConfig, seed = 1): Record<string, F32Tensor> {
  const rng = new Rng(seed);
  const H = config.hidden_size, I = config.intermediate_size, V = config.vocab_size, D = config.head_dim;
  const t = (shape: number[], around = 0): F32Tensor => {
    const data = rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 0.5);
    for (let i = 0; i < data.length; i++) data[i] += around;
    return { shape, data };
  };
  const out: Record<string, F32Tensor> = { 'model.embed_tokens.weight': t([V, H]), 'model.norm.weight': t([H], 1), 'lm_head.weight': t([V, H]) };
  for (let l = 0; l < config.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    out[`${p}.input_layernorm.weight`] = t([H], 1);
    out[`${p}.post_attention_layernorm.weight`] = t([H], 1);
    const shapes: Record<string, number[]> = {
      'self_attn.q_proj': [config.num_attention_heads * D, H], 'self_attn.k_proj': [config.num_key_value_heads * D, H],
      'self_attn.v_proj': [config.num_key_value_heads * D, H], 'self_attn.o_proj': [H, config.num_attention_heads * D],
      'mlp.gate_proj': [I, H], 'mlp.up_proj': [I, H], 'mlp.down_proj': [H, I],
    };
    for (const [name, shape] of Object.entries(shapes)) {
      out[`${p}.${name}.weight`] = t(shape);
      const isAttn = name.startsWith('self_attn');
      if ((isAttn && config.attention_bias) || (!isAttn && config.mlp_bias)) out[`${p}.${name}.bias`] = t([shape[0]]);
    }
  }
  return out;
}

export interface WriteOptions {
  shards?: number;
  dtype?: SafetensorsDType;
  /** Edits applied to the tensors before writing (to make broken checkpoints). */
  edit?: (tensors: Record<string, F32Tensor>) => void;
}

/** Writes config.json + model.safetensors (shards = 1) or an index and `shards` files; returns the dir. */
export function writeTinyCheckpoint(config: Record<string, unknown> = TINY_CONFIG, opts: WriteOptions = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'tiny-llama-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const tensors = tinyTensors(config as TinyConfig);
  opts.edit?.(tensors);
  const dtype = opts.dtype ?? 'F32';
  const shards = opts.shards ?? 1;
  const names = Object.keys(tensors);
  if (shards === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), Object.fromEntries(names.map((n) => [n, { ...tensors[n], dtype }])));
    return dir;
  }
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const mine = names.filter((_, i) => i % shards === s);
    for (const n of mine) weightMap[n] = file;
    writeSafetensors(join(dir, file), Object.fromEntries(mine.map((n) => [n, { ...tensors[n], dtype }])));
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return dir;
}
