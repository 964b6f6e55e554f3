/**
 * A one-node ONNX model, hand-encoded: com.microsoft GroupQueryAttention (causal by definition)
 * or MultiHeadAttention (no mask: non-causal). Hand-encoding keeps the peer free of a Python
 * `onnx` dependency on machines that lack it; the protobuf subset we need is ~10 message types.
 *
 * Tensors use the "BSNH packed" layout both ops take: q [1, S, H·D], k/v [1, S, Hkv·D].
 * GQA also returns present_key/present_value [1, Hkv, S, D]: the WebGPU EP only takes its
 * flash-attention path when those outputs exist, so they are part of what we time.
 */

// --- protobuf wire format (only what ModelProto needs) ---
function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n; // two's complement, as protobuf encodes negative int64
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return out;
}
const enc = new TextEncoder();
const key = (field, wire) => varint((field << 3) | wire);
export const intField = (field, n) => [...key(field, 0), ...varint(n)];
export const bytesField = (field, bytes) => [...key(field, 2), ...varint(bytes.length), ...bytes];
export const strField = (field, s) => bytesField(field, [...enc.encode(s)]);
export const msgField = (field, parts) => bytesField(field, parts.flat());
/** A fixed32 field holding an f32 (wire type 5). */
export const floatField = (field, x) => [...key(field, 5), ...new Uint8Array(Float32Array.of(x).buffer)];

// --- ONNX messages (field numbers from onnx.proto3) ---
export const ELEM = { float32: 1, int32: 6, int64: 7, float16: 10 };

/** ValueInfoProto with a tensor type; dims are numbers (fixed) or strings (symbolic). */
export function valueInfo(name, elemType, dims) {
  const dim = (d) => msgField(1, typeof d === 'number' ? intField(1, d) : strField(2, d));
  const shape = msgField(2, dims.map(dim));
  const tensorType = msgField(1, [intField(1, elemType), shape]);
  return [strField(1, name), msgField(2, [tensorType])];
}

export function intAttr(name, value) {
  return [strField(1, name), intField(3, value), intField(20, 2 /* INT */)];
}

export function floatAttr(name, value) {
  return [strField(1, name), floatField(2, value), intField(20, 1 /* FLOAT */)];
}

/** NodeProto; `name` must be unique within a graph (a one-node graph may leave it out). */
export function node({ opType, domain = '', inputs, outputs, attrs = [], name = `${opType}_0` }) {
  return [
    ...inputs.map((i) => strField(1, i)),
    ...outputs.map((o) => strField(2, o)),
    strField(3, name),
    strField(4, opType),
    ...attrs.map((a) => msgField(5, a)),
    strField(7, domain),
  ];
}

/**
 * @param {{op: 'GroupQueryAttention'|'MultiHeadAttention', heads: number, kvHeads: number, headDim: number, dtype: 'float16'|'float32'}} o
 * @returns {Uint8Array} a serialized ModelProto
 */
export function attentionModel(o) {
  const t = ELEM[o.dtype];
  const qDim = o.heads * o.headDim;
  const kvDim = o.kvHeads * o.headDim;
  let graphNode;
  let inputs;
  let outputs;
  if (o.op === 'GroupQueryAttention') {
    // past_key/past_value omitted (""): a prefill with no cache; seqlens_k = S - 1, total = S.
    graphNode = node({
      opType: 'GroupQueryAttention', domain: 'com.microsoft',
      inputs: ['query', 'key', 'value', '', '', 'seqlens_k', 'total_sequence_length'],
      outputs: ['output', 'present_key', 'present_value'],
      attrs: [intAttr('num_heads', o.heads), intAttr('kv_num_heads', o.kvHeads)],
    });
    inputs = [
      valueInfo('query', t, [1, 'S', qDim]), valueInfo('key', t, [1, 'S', kvDim]), valueInfo('value', t, [1, 'S', kvDim]),
      valueInfo('seqlens_k', ELEM.int32, [1]), valueInfo('total_sequence_length', ELEM.int32, []),
    ];
    outputs = [
      valueInfo('output', t, [1, 'S', qDim]),
      valueInfo('present_key', t, [1, o.kvHeads, 'S', o.headDim]), valueInfo('present_value', t, [1, o.kvHeads, 'S', o.headDim]),
    ];
  } else if (o.op === 'MultiHeadAttention') {
    if (o.kvHeads !== o.heads) throw new Error(`MultiHeadAttention needs kvHeads == heads, got ${o.kvHeads} vs ${o.heads}`);
    graphNode = node({
      opType: 'MultiHeadAttention', domain: 'com.microsoft',
      inputs: ['query', 'key', 'value'],
      outputs: ['output', 'present_key', 'present_value'],
      attrs: [intAttr('num_heads', o.heads)],
    });
    inputs = [valueInfo('query', t, [1, 'S', qDim]), valueInfo('key', t, [1, 'S', kvDim]), valueInfo('value', t, [1, 'S', kvDim])];
    outputs = [
      valueInfo('output', t, [1, 'S', qDim]),
      valueInfo('present_key', t, [1, o.heads, 'S', o.headDim]), valueInfo('present_value', t, [1, o.heads, 'S', o.headDim]),
    ];
  } else {
    throw new Error(`op must be "GroupQueryAttention" or "MultiHeadAttention", got ${JSON.stringify(o.op)}`);
  }
  const graph = [
    msgField(1, graphNode),
    strField(2, `${o.op}_graph`),
    ...inputs.map((v) => msgField(11, v)),
    ...outputs.map((v) => msgField(12, v)),
  ];
  const model = [
    intField(1, 8), // ir_version 8 (ONNX 1.10+)
    strField(2, 'sparse-attention bench/peers/ort'),
    msgField(7, graph),
    msgField(8, [strField(1, ''), intField(2, 17)]),
    msgField(8, [strField(1, 'com.microsoft'), intField(2, 1)]),
  ];
  return Uint8Array.from(model.flat());
}
