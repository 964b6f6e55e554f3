/**
 * Writes a Llama checkpoint with RANDOM weights in the standard Hugging Face layout (config.json,
 * model-0000i-of-0000n.safetensors shards, model.safetensors.index.json), for timing the model
 * runner at realistic shapes (sparse-attn ttft). The weights mean nothing: outputs are noise.
 *
 *   node dist/bench/make-random-llama.js --shape llama-1b --out /tmp/llama-1b-random
 *   node dist/bench/make-random-llama.js --shape hd128 --layers 8 --out /tmp/hd128-random
 *
 * Shapes: llama-1b = Llama-3.2-1B's (16 layers, hidden 2048, 32 query / 8 KV heads of 64, MLP 8192,
 * vocab 128256, rope θ 500000, tied embeddings); hd128 = Llama-3-8B's layer (hidden 4096, 32 / 8
 * heads of 128, MLP 14336), 8 layers by default (--layers 32 for the whole 8B stack). Weights are
 * uniform with std 0.02 (norms 1), F16, one shard per layer so no step holds the whole model.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeSafetensors, type F32Tensor } from '../src/model/safetensors.js';

const SHAPES: Record<string, Record<string, number | boolean>> = {
  'llama-1b': {
    hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64,
    vocab_size: 128256, rope_theta: 500000, tie_word_embeddings: true,
  },
  // Tests and smoke runs of the pipeline.
  tiny: {
    hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16,
    vocab_size: 300, rope_theta: 10000, tie_word_embeddings: false,
  },
  hd128: {
    hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 8, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128,
    vocab_size: 128256, rope_theta: 500000, tie_word_embeddings: false,
  },
};

const { values } = parseArgs({
  options: {
    shape: { type: 'string', default: 'llama-1b' },
    out: { type: 'string' },
    layers: { type: 'string' },
    vocab: { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
});
const base = SHAPES[values.shape!];
if (!base || !values.out) {
  console.error(`usage: make-random-llama --shape ${Object.keys(SHAPES).join('|')} --out DIR [--layers N] [--vocab N]`);
  process.exit(2);
}
const cfg = { ...base };
if (values.layers) cfg.num_hidden_layers = Number(values.layers);
if (values.vocab) cfg.vocab_size = Number(values.vocab);
const H = cfg.hidden_size as number, I = cfg.intermediate_size as number, D = cfg.head_dim as number;
const nq = (cfg.num_attention_heads as number) * D, nkv = (cfg.num_key_value_heads as number) * D, V = cfg.vocab_size as number;
const layers = cfg.num_hidden_layers as number;

let state = Number(values.seed) >>> 0;
const AMP = 0.02 * Math.sqrt(3); // uniform [-a, a] has std a / √3
function random(shape: number[]): F32Tensor & { dtype: 'F16' } {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = ((state / 2 ** 32) * 2 - 1) * AMP;
  }
  return { shape, data, dtype: 'F16' };
}
const ones = (n: number): F32Tensor & { dtype: 'F16' } => ({ shape: [n], data: new Float32Array(n).fill(1), dtype: 'F16' });

mkdirSync(values.out, { recursive: true });
const shards = layers + 1;
const shardName = (i: number) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
const weightMap: Record<string, string> = {};
let bytes = 0;
const write = (i: number, tensors: Record<string, F32Tensor & { dtype: 'F16' }>) => {
  writeSafetensors(join(values.out!, shardName(i)), tensors);
  for (const [name, t] of Object.entries(tensors)) {
    weightMap[name] = shardName(i);
    bytes += t.data.length * 2;
  }
};
const t0 = Date.now();
for (let l = 0; l < layers; l++) {
  const p = `model.layers.${l}`;
  write(l, {
    [`${p}.input_layernorm.weight`]: ones(H),
    [`${p}.post_attention_layernorm.weight`]: ones(H),
    [`${p}.self_attn.q_proj.weight`]: random([nq, H]),
    [`${p}.self_attn.k_proj.weight`]: random([nkv, H]),
    [`${p}.self_attn.v_proj.weight`]: random([nkv, H]),
    [`${p}.self_attn.o_proj.weight`]: random([H, nq]),
    [`${p}.mlp.gate_proj.weight`]: random([I, H]),
    [`${p}.mlp.up_proj.weight`]: random([I, H]),
    [`${p}.mlp.down_proj.weight`]: random([H, I]),
  });
  process.stderr.write(`\rlayer ${l + 1}/${layers}`);
}
write(layers, {
  'model.embed_tokens.weight': random([V, H]),
  'model.norm.weight': ones(H),
  ...(cfg.tie_word_embeddings ? {} : { 'lm_head.weight': random([V, H]) }),
});
writeFileSync(join(values.out, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: bytes }, weight_map: weightMap }, null, 1)}\n`);
const config = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', rms_norm_eps: 1e-5, max_position_embeddings: 262144,
  attention_bias: false, mlp_bias: false, torch_dtype: 'float16', ...cfg,
  // Not an HF field: tells sparse-attn ttft to say so in its output.
  random_weights: true,
};
writeFileSync(join(values.out, 'config.json'), `${JSON.stringify(config, null, 1)}\n`);
writeFileSync(join(values.out, 'README.md'), `# RANDOM WEIGHTS (${values.shape}) - for timing only\n\nWritten by bench/make-random-llama.ts (seed ${values.seed}); uniform weights with std 0.02, norms 1.\nThe model computes noise; use it to time the runner at this shape, never to judge output quality.\n`);
console.error(`\nwrote ${values.out}: ${values.shape}, ${layers} layers, ${(bytes / 2 / 1e6).toFixed(1)} M parameters, RANDOM weights (timing only), ${((Date.now() - t0) / 1000).toFixed(0)} s`);
