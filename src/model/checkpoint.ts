/**
 * Loads a Hugging Face Llama checkpoint directory into f32 weights:
 *   config.json + model.safetensors, or config.json + model.safetensors.index.json + its shards.
 * Every tensor the config implies is looked up by its HF name and its shape checked against the
 * config, so a wrong or truncated checkpoint fails at load time with the tensor named.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SparseAttentionError } from '../core/errors.js';
import { FileError, readJson } from '../core/files.js';
import { type LlamaConfig, parseLlamaConfig } from './llama-config.js';
import { type F32Tensor, SafetensorsFile } from './safetensors.js';

export interface LinearWeights {
  /** [out, in] row-major, as HF stores nn.Linear. */
  weight: Float32Array;
  bias?: Float32Array;
  outFeatures: number;
  inFeatures: number;
}

export interface LlamaLayerWeights {
  inputNorm: Float32Array;
  postAttentionNorm: Float32Array;
  q: LinearWeights;
  k: LinearWeights;
  v: LinearWeights;
  o: LinearWeights;
  gate: LinearWeights;
  up: LinearWeights;
  down: LinearWeights;
}

export interface LlamaWeights {
  embed: Float32Array;
  finalNorm: Float32Array;
  lmHead: LinearWeights;
  layers: LlamaLayerWeights[];
}

export interface LlamaCheckpoint {
  config: LlamaConfig;
  weights: LlamaWeights;
  dir: string;
}

/** Finds tensors across the checkpoint's file(s); shards are read once, on first use. */
class TensorSource {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly weightMap: Record<string, string> | undefined;

  constructor(private readonly dir: string) {
    const index = join(dir, 'model.safetensors.index.json');
    const single = join(dir, 'model.safetensors');
    if (existsSync(index)) {
      const parsed = readJson(index) as { weight_map?: Record<string, string> } | null;
      const map = parsed?.weight_map;
      if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new FileError(index, 'no "weight_map" object (tensor name → shard file)');
      for (const [name, file] of Object.entries(map)) {
        if (typeof file !== 'string') throw new FileError(index, `weight_map["${name}"] must be a shard file name, got ${JSON.stringify(file)}`);
      }
      this.weightMap = map;
    } else if (!existsSync(single)) {
      throw new SparseAttentionError(`${dir}: no model.safetensors or model.safetensors.index.json`);
    }
  }

  /** Tensor names read so far (see unusedTensors). */
  readonly used = new Set<string>();

  /** Every tensor name the checkpoint holds. */
  names(): string[] {
    return this.weightMap ? Object.keys(this.weightMap) : [...this.file('model.safetensors').entries.keys()];
  }

  has(name: string): boolean {
    return this.weightMap ? name in this.weightMap : this.file('model.safetensors').entries.has(name);
  }

  get(name: string, shape: number[]): F32Tensor {
    this.used.add(name);
    const fileName = this.weightMap ? this.weightMap[name] : 'model.safetensors';
    if (!fileName) throw new SparseAttentionError(`${this.dir}: tensor "${name}" is not in model.safetensors.index.json`);
    const file = this.file(fileName);
    if (!file.entries.has(name)) throw new SparseAttentionError(`${file.path}: tensor "${name}" is missing`);
    const t = file.tensor(name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new SparseAttentionError(`${file.path}: tensor "${name}" has shape [${t.shape}], but config.json implies [${shape}]`);
    }
    return t;
  }

  private file(fileName: string): SafetensorsFile {
    let f = this.files.get(fileName);
    if (!f) {
      const path = join(this.dir, fileName);
      if (!existsSync(path)) {
        const from = this.weightMap ? ' (named in model.safetensors.index.json)' : '';
        throw new SparseAttentionError(`${this.dir}: shard ${fileName}${from} is missing`);
      }
      f = SafetensorsFile.read(path);
      this.files.set(fileName, f);
    }
    return f;
  }
}

function linear(src: TensorSource, prefix: string, out: number, inp: number, bias: boolean): LinearWeights {
  return {
    weight: src.get(`${prefix}.weight`, [out, inp]).data,
    ...(bias ? { bias: src.get(`${prefix}.bias`, [out]).data } : {}),
    outFeatures: out,
    inFeatures: inp,
  };
}

export function loadLlamaCheckpoint(dir: string): LlamaCheckpoint {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new SparseAttentionError(`${dir}: no config.json`);
  const raw = readJson(configPath);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new FileError(configPath, 'not a JSON object (a Hugging Face model config)');
  const config = parseLlamaConfig(raw as Record<string, unknown>);
  const src = new TensorSource(dir);
  checkLayerCount(src, config.numLayers, configPath);
  const { hiddenSize: H, intermediateSize: I, vocabSize: V, numHeads, numKvHeads, headDim } = config;
  const layers: LlamaLayerWeights[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}`;
    const ab = config.attentionBias;
    const mb = config.mlpBias;
    layers.push({
      inputNorm: src.get(`${p}.input_layernorm.weight`, [H]).data,
      postAttentionNorm: src.get(`${p}.post_attention_layernorm.weight`, [H]).data,
      q: linear(src, `${p}.self_attn.q_proj`, numHeads * headDim, H, ab),
      k: linear(src, `${p}.self_attn.k_proj`, numKvHeads * headDim, H, ab),
      v: linear(src, `${p}.self_attn.v_proj`, numKvHeads * headDim, H, ab),
      o: linear(src, `${p}.self_attn.o_proj`, H, numHeads * headDim, ab),
      gate: linear(src, `${p}.mlp.gate_proj`, I, H, mb),
      up: linear(src, `${p}.mlp.up_proj`, I, H, mb),
      down: linear(src, `${p}.mlp.down_proj`, H, I, mb),
    });
  }
  const embed = src.get('model.embed_tokens.weight', [V, H]).data;
  // Tied checkpoints usually omit lm_head.weight; reuse the embedding then.
  const tied = config.tieWordEmbeddings && !src.has('lm_head.weight');
  const lmHead = tied ? { weight: embed, outFeatures: V, inFeatures: H } : linear(src, 'lm_head', V, H, false);
  const finalNorm = src.get('model.norm.weight', [H]).data;
  // Rotary frequencies are recomputed from the config; some exports store them anyway.
  const unused = src.names().filter((n) => !src.used.has(n) && !n.endsWith('rotary_emb.inv_freq') && !(tied && n === 'lm_head.weight'));
  if (unused.length) {
    const shown = unused.slice(0, 5).map((n) => `"${n}"`).join(', ') + (unused.length > 5 ? `, ... (${unused.length} in all)` : '');
    throw new SparseAttentionError(`${dir}: the checkpoint and ${configPath} disagree: tensors left unused by the config: ${shown}`);
  }
  return { config, dir, weights: { embed, finalNorm, lmHead, layers } };
}

/** The layer indices the checkpoint holds must be exactly 0..numLayers-1 of config.json. */
function checkLayerCount(src: TensorSource, numLayers: number, configPath: string): void {
  const held = new Set<number>();
  for (const name of src.names()) {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) held.add(Number(m[1]));
  }
  const missing = [];
  for (let i = 0; i < numLayers; i++) if (!held.has(i)) missing.push(i);
  const extra = [...held].filter((i) => i >= numLayers).sort((a, b) => a - b);
  if (missing.length === 0 && extra.length === 0) return;
  const parts = [];
  if (missing.length) parts.push(`layers missing from the checkpoint: ${ranges(missing)}`);
  if (extra.length) parts.push(`layers in the checkpoint beyond the config: ${ranges(extra)}`);
  throw new SparseAttentionError(`the checkpoint and ${configPath} (num_hidden_layers ${numLayers}) disagree: ${parts.join('; ')}`);
}

function ranges(xs: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j] + 1) j++;
    out.push(i === j ? `${xs[i]}` : `${xs[i]}-${xs[j]}`);
    i = j + 1;
  }
  return out.join(', ');
}
