/**
 * A Hugging Face Llama checkpoint as one ONNX graph of the whole prefill, hand-encoded with
 * onnx-model.mjs's protobuf subset, in the op vocabulary ORT's GenAI exports use and its WebGPU EP
 * implements (contrib_ops/webgpu): SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization
 * (residual add + RMSNorm in one kernel), MatMul, com.microsoft GroupQueryAttention with
 * do_rotary=1 (RoPE applied inside the attention op from cos/sin caches), Sigmoid/Mul for SiLU, and a
 * Gemm LM head on the last position only.
 *
 *   inputs   input_ids int64 [1, S], seqlens_k int32 [1] (= S − 1), total_sequence_length int32 []
 *   outputs  logits f32 [1, vocab] (last position), present_key.N / present_value.N [1, Hkv, S, D]
 *
 * Present K/V are outputs because GQA on the WebGPU EP takes its flash path only when they exist;
 * a run may fetch only `logits`. Weights are initializers with external data in one .bin beside the
 * .onnx (a 1B model in f16 is 2.5 GB, over protobuf's 2 GB limit), 4 KiB-aligned so ORT can map them.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fromF16Bits, parseLlamaConfig, toF16Bits } from '../../../dist/src/index.js';
import { RopeTable } from '../../../dist/src/model/rope.js';
import { ELEM, bytesField, floatAttr, intAttr, intField, msgField, node, strField, valueInfo } from './onnx-model.mjs';

const ALIGN = 4096;
let F16_TABLE;

/** Initializers: small ones inline (raw_data), weights appended to the external .bin file. */
class Initializers {
  constructor(binPath) {
    this.fd = openSync(binPath, 'w');
    this.location = basename(binPath);
    this.offset = 0;
    this.protos = [];
  }

  /** TensorProto fields 1 dims, 2 data_type, 8 name, 9 raw_data, 13 external_data, 14 data_location. */
  inline(name, elemType, dims, bytes) {
    this.protos.push([...dims.flatMap((d) => intField(1, d)), ...intField(2, elemType), ...strField(8, name), ...bytesField(9, Array.from(bytes))]);
  }

  external(name, elemType, dims, bytes) {
    const start = Math.ceil(this.offset / ALIGN) * ALIGN;
    for (let done = 0; done < bytes.length; ) done += writeSync(this.fd, bytes, done, bytes.length - done, start + done);
    this.offset = start + bytes.length;
    const entry = (k, v) => msgField(13, [strField(1, k), strField(2, v)]);
    this.protos.push([
      ...dims.flatMap((d) => intField(1, d)), ...intField(2, elemType), ...strField(8, name),
      ...entry('location', this.location), ...entry('offset', String(start)), ...entry('length', String(bytes.length)),
      ...intField(14, 1 /* EXTERNAL */),
    ]);
  }

  close() {
    closeSync(this.fd);
    return this.offset;
  }
}

/**
 * The checkpoint's tensors in the graph's dtype, straight from the safetensors bytes: an F16
 * checkpoint written as f16 is copied bit for bit (going through our f32 loader would cost a
 * minute and 5 GB at 1B parameters on the GPU machine).
 */
class Tensors {
  constructor(dir) {
    this.dir = dir;
    const index = join(dir, 'model.safetensors.index.json');
    this.map = existsSync(index) ? JSON.parse(readFileSync(index, 'utf8')).weight_map : null;
    this.files = new Map();
  }

  has(name) {
    return this.map ? name in this.map : this.open('model.safetensors').header[name] !== undefined;
  }

  open(fileName) {
    let f = this.files.get(fileName);
    if (!f) {
      const bytes = readFileSync(join(this.dir, fileName));
      const n = Number(bytes.readBigUInt64LE(0));
      f = { bytes, header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), start: 8 + n };
      this.files.set(fileName, f);
    }
    return f;
  }

  /** Tensor `name` of `shape` as Uint16Array f16 bits (dtype float16) or Float32Array. */
  get(name, shape, dtype) {
    const f = this.open(this.map ? this.map[name] : 'model.safetensors');
    const e = f.header[name];
    if (!e || e.shape.join() !== shape.join()) throw new Error(`${this.dir}: tensor ${name} is ${e ? `[${e.shape}]` : 'missing'}, config.json implies [${shape}]`);
    // A copy into its own ArrayBuffer: the data need not be aligned for a typed-array view.
    const copy = new Uint8Array(e.data_offsets[1] - e.data_offsets[0]);
    copy.set(f.bytes.subarray(f.start + e.data_offsets[0], f.start + e.data_offsets[1]));
    const raw = copy.buffer;
    if (e.dtype === 'F16') {
      if (dtype === 'float16') return new Uint16Array(raw);
      // A lookup in a table of all 65536 values (the f32 fallback converts a whole 1B model).
      F16_TABLE ??= fromF16Bits(Uint16Array.from({ length: 65536 }, (_, i) => i));
      const bits = new Uint16Array(raw);
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = F16_TABLE[bits[i]];
      return out;
    }
    let f32;
    if (e.dtype === 'F32') f32 = new Float32Array(raw);
    else if (e.dtype === 'BF16') {
      // bf16 is the top half of an f32.
      const bits = new Uint16Array(raw);
      const u32 = new Uint32Array(bits.length);
      for (let i = 0; i < bits.length; i++) u32[i] = bits[i] << 16;
      f32 = new Float32Array(u32.buffer);
    }
    else throw new Error(`${name}: dtype ${e.dtype} (F16, BF16 or F32 expected)`);
    return dtype === 'float16' ? toF16Bits(f32) : f32;
  }
}

/** [rows, cols] row-major → [cols, rows], in cache-sized tiles (any typed array). */
function transpose(a, rows, cols) {
  const out = new a.constructor(a.length);
  const T = 64;
  for (let r0 = 0; r0 < rows; r0 += T) {
    for (let c0 = 0; c0 < cols; c0 += T) {
      const r1 = Math.min(rows, r0 + T);
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c];
    }
  }
  return out;
}

const bytesOf = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/**
 * Writes DIR/model.onnx and DIR/model.onnx.bin for the checkpoint in `modelDir`.
 * @param {{modelDir: string, outDir: string, dtype: 'float16'|'float32', maxLength: number, log?: (s: string) => void}} o
 */
export function buildLlamaOnnx(o) {
  const log = o.log ?? (() => {});
  const t0 = performance.now();
  const c = parseLlamaConfig(JSON.parse(readFileSync(join(o.modelDir, 'config.json'), 'utf8')));
  if (c.attentionBias || c.mlpBias) throw new Error('attention_bias / mlp_bias checkpoints are not encoded (no Add nodes for biases)');
  const T = ELEM[o.dtype];
  const { hiddenSize: H, intermediateSize: I, numHeads, numKvHeads: Hkv, headDim: D, vocabSize: V, numLayers } = c;
  const src = new Tensors(o.modelDir);
  mkdirSync(o.outDir, { recursive: true });
  const modelPath = join(o.outDir, 'model.onnx');
  const init = new Initializers(`${modelPath}.bin`);
  let parameters = 0;
  // HF's nn.Linear weight [out, in] becomes MatMul's [in, out].
  const linear = (name, hf, out, inp) => {
    parameters += out * inp;
    init.external(name, T, [inp, out], bytesOf(transpose(src.get(hf, [out, inp], o.dtype), out, inp)));
  };
  const vector = (name, hf) => init.external(name, T, [H], bytesOf(src.get(hf, [H], o.dtype)));
  const cast = (f32) => bytesOf(o.dtype === 'float16' ? toF16Bits(f32) : f32);

  init.external('embed', T, [V, H], bytesOf(src.get('model.embed_tokens.weight', [V, H], o.dtype)));
  parameters += V * H;
  // Rotary caches [maxLength, D/2], angles rounded as RopeTable (and HF) compute them.
  const rope = new RopeTable(D, c.ropeTheta);
  const half = D / 2;
  const cos = new Float32Array(o.maxLength * half);
  const sin = new Float32Array(o.maxLength * half);
  for (let p = 0; p < o.maxLength; p++) {
    for (let d = 0; d < half; d++) {
      const angle = Math.fround(p * rope.invFreq[d]);
      cos[p * half + d] = Math.cos(angle);
      sin[p * half + d] = Math.sin(angle);
    }
  }
  init.external('cos_cache', T, [o.maxLength, half], cast(cos));
  init.external('sin_cache', T, [o.maxLength, half], cast(sin));

  const nodes = [];
  const add = (opType, inputs, outputs, attrs = [], domain = '') => nodes.push(node({ opType, domain, inputs, outputs, attrs, name: `${opType}_${nodes.length}` }));
  const eps = floatAttr('epsilon', c.rmsNormEps);
  const normAttrs = [intAttr('axis', -1), eps, intAttr('stash_type', 1)];

  add('Gather', ['embed', 'input_ids'], ['x.0'], [intAttr('axis', 0)]);
  vector('norm_in.0', 'model.layers.0.input_layernorm.weight');
  add('SimplifiedLayerNormalization', ['x.0', 'norm_in.0'], ['h.0'], normAttrs);
  const presents = [];
  for (let l = 0; l < numLayers; l++) {
    const p = `model.layers.${l}`;
    const shapes = { q: [numHeads * D, H], k: [Hkv * D, H], v: [Hkv * D, H], o: [H, numHeads * D], gate: [I, H], up: [I, H], down: [H, I] };
    for (const [name, [out, inp]] of Object.entries(shapes)) linear(`${name}.${l}.weight`, `${p}.${name === 'gate' || name === 'up' || name === 'down' ? 'mlp' : 'self_attn'}.${name}_proj.weight`, out, inp);
    vector(`norm_post.${l}`, `${p}.post_attention_layernorm.weight`);
    add('MatMul', [`h.${l}`, `q.${l}.weight`], [`q.${l}`]);
    add('MatMul', [`h.${l}`, `k.${l}.weight`], [`k.${l}`]);
    add('MatMul', [`h.${l}`, `v.${l}.weight`], [`v.${l}`]);
    // No past K/V (""): a prefill; rotary_interleaved=0 is HF's rotate_half pairing (d, d + D/2).
    add('GroupQueryAttention', [`q.${l}`, `k.${l}`, `v.${l}`, '', '', 'seqlens_k', 'total_sequence_length', 'cos_cache', 'sin_cache'],
      [`attn.${l}`, `present_key.${l}`, `present_value.${l}`],
      [intAttr('num_heads', numHeads), intAttr('kv_num_heads', Hkv), intAttr('do_rotary', 1), intAttr('rotary_interleaved', 0)], 'com.microsoft');
    presents.push(`present_key.${l}`, `present_value.${l}`);
    add('MatMul', [`attn.${l}`, `o.${l}.weight`], [`o.${l}`]);
    // Output 3 of SkipSimplifiedLayerNormalization is the residual sum input + skip.
    add('SkipSimplifiedLayerNormalization', [`o.${l}`, `x.${l}`, `norm_post.${l}`], [`h2.${l}`, '', '', `r.${l}`], [eps], 'com.microsoft');
    add('MatMul', [`h2.${l}`, `gate.${l}.weight`], [`gate.${l}`]);
    add('MatMul', [`h2.${l}`, `up.${l}.weight`], [`up.${l}`]);
    add('Sigmoid', [`gate.${l}`], [`sig.${l}`]);
    add('Mul', [`gate.${l}`, `sig.${l}`], [`silu.${l}`]);
    add('Mul', [`silu.${l}`, `up.${l}`], [`act.${l}`]);
    add('MatMul', [`act.${l}`, `down.${l}.weight`], [`down.${l}`]);
    const last = l + 1 === numLayers;
    const next = last ? 'norm_final' : `norm_in.${l + 1}`;
    vector(next, last ? 'model.norm.weight' : `model.layers.${l + 1}.input_layernorm.weight`);
    add('SkipSimplifiedLayerNormalization', [`down.${l}`, `r.${l}`, next], [last ? 'h.final' : `h.${l + 1}`, '', '', last ? '' : `x.${l + 1}`], [eps], 'com.microsoft');
  }
  // The first token needs only the last position's logits.
  const i64 = (...xs) => new Uint8Array(BigInt64Array.from(xs.map(BigInt)).buffer);
  init.inline('last.starts', ELEM.int64, [1], i64(-1));
  init.inline('last.ends', ELEM.int64, [1], i64(2n ** 63n - 1n));
  init.inline('last.axes', ELEM.int64, [1], i64(1));
  init.inline('last.shape', ELEM.int64, [2], i64(1, H));
  add('Slice', ['h.final', 'last.starts', 'last.ends', 'last.axes'], ['h.last3']);
  add('Reshape', ['h.last3', 'last.shape'], ['h.last']);
  // Gemm with transB takes lm_head as HF stores it [V, H], so tied checkpoints share the embedding.
  const tied = c.tieWordEmbeddings && !src.has('lm_head.weight');
  if (!tied) {
    init.external('lm_head', T, [V, H], bytesOf(src.get('lm_head.weight', [V, H], o.dtype)));
    parameters += V * H;
  }
  const logitsRaw = o.dtype === 'float32' ? 'logits' : 'logits.raw';
  add('Gemm', ['h.last', tied ? 'embed' : 'lm_head'], [logitsRaw], [intAttr('transB', 1)]);
  if (logitsRaw !== 'logits') add('Cast', [logitsRaw], ['logits'], [intAttr('to', ELEM.float32)]);
  const binBytes = init.close();

  const graph = [
    ...nodes.map((n) => msgField(1, n)),
    strField(2, 'llama_prefill'),
    ...init.protos.map((t) => msgField(5, t)),
    msgField(11, valueInfo('input_ids', ELEM.int64, [1, 'S'])),
    msgField(11, valueInfo('seqlens_k', ELEM.int32, [1])),
    msgField(11, valueInfo('total_sequence_length', ELEM.int32, [])),
    msgField(12, valueInfo('logits', ELEM.float32, [1, V])),
    ...presents.map((p) => msgField(12, valueInfo(p, T, [1, Hkv, 'S', D]))),
  ];
  const model = [
    intField(1, 8), // ir_version 8
    strField(2, 'sparse-attention bench/peers/ort'),
    msgField(7, graph),
    msgField(8, [strField(1, ''), intField(2, 17)]),
    msgField(8, [strField(1, 'com.microsoft'), intField(2, 1)]),
  ];
  writeFileSync(modelPath, Uint8Array.from(model.flat()));
  log(`wrote ${modelPath} (${nodes.length} nodes) + ${(binBytes / 2 ** 30).toFixed(2)} GiB of ${o.dtype} weights in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return { modelPath, config: c, parameters, nodes: nodes.length, weightBytes: binBytes, tied };
}
