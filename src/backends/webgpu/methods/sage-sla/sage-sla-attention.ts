/// <reference types="@webgpu/types" />
/**
 * SageSLA's sparse part on the GPU, the twin of methods/sage-sla.ts (sageQuantize + int8Logits):
 *
 *   sage-quantize   x [rows, L, D] f32 (minus mean [rows, D] for K) × factor → int8 packed 4 per u32
 *                   [rows, L, D/4] and one scale per block of `block` rows: s = max|y| / 127 + 1e-7,
 *                   q = round-half-away(y / s). One workgroup (64 threads) per (row, block): a tree
 *                   max over the block's block·D values in red [64] f32, then each thread packs words.
 *                   Q: factor = softmax scale · log2 e (so scores come out in the log2 domain), blocks
 *                   of BLKQ; K: smoothed, factor 1, blocks of BLKK.
 *   sage-round-v    V → f16-rounded values kept in f32 (the CPU's f16 V; WebGPU has no fp8)
 *   sage attention  the block-sparse skeleton with logits 'int8': score = (Σ dot4I8Packed) · sQ · sK
 * The int8 values can differ from the CPU's by one where y / s sits at a rounding boundary (the GPU
 * divides in f32 and its K mean is an f32 sum), so outputs agree within tolerance, not bit for bit.
 */
import type { AttentionProblem } from '../../../../core/attention-shape.js';
import { UnsupportedError } from '../../../../core/errors.js';
import { type AttentionDispatchOptions, attentionDispatch, type BlockList } from '../../attention/attention-dispatch.js';
import { attentionProgram, type AttentionShape, type AttentionSpec, attentionWgsl, tileKeys } from '../../attention/attention-program.js';
import { createStorageBuffer, type GpuTensorView } from '../../runtime/buffers.js';
import { isSoftwareDevice } from '../../runtime/webgpu-device.js';
import { type BindingSpec, compileProgram, encodeProgram, type KernelProgram, ParamsLayout } from '../../runtime/program.js';
import { encodeGrid, GRID_FIELDS, GRID_WGSL } from '../sla/sla-grid.js';

const LOG2E = 1.4426950408889634;

export type SageQuantizeSpec = { readonly smooth: boolean };
const quantParams = new ParamsLayout([['length', 'u32'], ['headDim', 'u32'], ['block', 'u32'], ['numBlocks', 'u32'], ['factor', 'f32']] as const);
type QuantParam = (typeof quantParams.fields)[number][0];

export const sageQuantizeProgram: KernelProgram<SageQuantizeSpec, QuantParam> = {
  name: 'sage-quantize',
  params: quantParams,
  bindings: (spec) => [
    { name: 'x', kind: 'read-only-storage' }, ...(spec.smooth ? [{ name: 'mean', kind: 'read-only-storage' } as const] : []),
    { name: 'packed', kind: 'storage' }, { name: 'scale', kind: 'storage' },
  ],
  constants: () => ({}),
  workgroupSize: () => 64,
  wgsl: (spec, header) => {
    const n = spec.smooth ? 3 : 2;
    return /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;                 // [rows, L, D]
${spec.smooth ? '@group(0) @binding(2) var<storage, read> mean: array<f32>;  // [rows, D]' : ''}
@group(0) @binding(${n}) var<storage, read_write> packed: array<u32>;    // [rows, L, D/4] int8 × 4
@group(0) @binding(${n + 1}) var<storage, read_write> scale: array<f32>; // [rows, nB]
var<workgroup> red: array<f32, 64>;  // [64] partial maxima

fn value(row: u32, e: u32, base: u32) -> f32 {
  ${spec.smooth ? 'return (x[base + e] - mean[row * P.headDim + e % P.headDim]) * P.factor;' : 'return x[base + e] * P.factor;'}
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let nb = wg.x;
  let row = wg.y;
  let l0 = nb * P.block;
  let n = (min(l0 + P.block, P.length) - l0) * P.headDim;
  let base = (row * P.length + l0) * P.headDim;
  var amax = 0.0;
  for (var e = lid; e < n; e += 64u) { amax = max(amax, abs(value(row, e, base))); }
  red[lid] = amax;
  for (var w = 32u; w > 0u; w /= 2u) {
    workgroupBarrier();
    if (lid < w) { red[lid] = max(red[lid], red[lid + w]); }
  }
  workgroupBarrier();
  let s = red[0] / 127.0 + 1e-7;
  if (lid == 0u) { scale[row * P.numBlocks + nb] = s; }
  for (var word = lid; word < n / 4u; word += 64u) {
    var bits = 0u;
    for (var c = 0u; c < 4u; c++) {
      let r = value(row, word * 4u + c, base) / s;
      // Round half away from zero; a − floor(a) is exact, so no f32 rounding of r + 0.5 creeps in.
      let a = abs(r);
      let f = floor(a);
      let mag = i32(f) + select(0, 1, a - f >= 0.5);
      bits |= (u32(select(mag, -mag, r < 0.0)) & 0xffu) << (8u * c);
    }
    packed[base / 4u + word] = bits;
  }
}
`;
  },
  supports: () => null,
};

const roundParams = new ParamsLayout([...GRID_FIELDS] as const);
export const sageRoundVProgram: KernelProgram<Record<string, never>, (typeof roundParams.fields)[number][0]> = {
  name: 'sage-round-v',
  params: roundParams,
  bindings: () => [{ name: 'x', kind: 'read-only-storage' }, { name: 'y', kind: 'storage' }],
  constants: () => ({}),
  workgroupSize: () => 64,
  wgsl: (_s, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [B, Hkv, Lk, Dv]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // f16-rounded copy
${GRID_WGSL}
// Round to the nearest f16 value, ties to even, as the CPU does (WGSL leaves the rounding of
// f32 → f16 conversions and pack2x16float to the implementation). Core WGSL: no shader-f16 needed.
// |x| >= 65520 (f16 overflow) is out of scope: it becomes 65536 here, infinity on the CPU.
fn roundToF16(x: f32) -> f32 {
  if (abs(x) < 6.103515625e-5) { return round(x * 16777216.0) / 16777216.0; }  // subnormal f16: multiples of 2^-24
  let bits = bitcast<u32>(x);
  return bitcast<f32>((bits + 0xfffu + ((bits >> 13u) & 1u)) & 0xffffe000u);  // keep 10 mantissa bits
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = threadIndex(wg, lid);
  if (t >= P.total) { return; }
  y[t] = roundToF16(x[t]);
}
`,
  supports: () => null,
};

function sageBindings(spec: AttentionSpec): BindingSpec[] {
  return [...attentionProgram.bindings(spec), { name: 'qScale', kind: 'read-only-storage' }, { name: 'kScale', kind: 'read-only-storage' }];
}

export const sageAttentionProgram: KernelProgram<AttentionSpec, (typeof attentionProgram.params.fields)[number][0], AttentionShape> = {
  ...attentionProgram,
  name: 'sage-attention',
  bindings: sageBindings,
  constants: (spec) => ({ headDim: spec.headDim, valueDim: spec.valueDim, workgroupSize: 64, tileKeys: tileKeys(spec) }),
  wgsl: (spec, header) => attentionWgsl(spec, header, { bindings: sageBindings(spec), logits: 'int8' }),
};

async function encodeQuantize(
  device: GPUDevice, encoder: GPUCommandEncoder, x: GPUBuffer, mean: GPUBuffer | null, rows: number, length: number, D: number, block: number, factor: number,
  own: (b: GPUBuffer) => GPUBuffer, label: string,
): Promise<{ packed: GPUBuffer; scale: GPUBuffer }> {
  const numBlocks = Math.ceil(length / block);
  const maxX = device.limits.maxComputeWorkgroupsPerDimension;
  if (numBlocks > maxX || rows > maxX) throw new UnsupportedError(`sage-quantize: ${numBlocks} blocks × ${rows} rows exceeds ${maxX} workgroups per dimension`);
  const packed = own(createStorageBuffer(device, rows * length * D, `${label}.int8`));
  const scale = own(createStorageBuffer(device, rows * numBlocks * 4, `${label}.scale`));
  const spec = { smooth: mean !== null };
  const compiled = await compileProgram(device, sageQuantizeProgram, spec);
  const buffers: Record<string, GPUBuffer> = mean ? { x, mean, packed, scale } : { x, packed, scale };
  own(encodeProgram(device, encoder, sageQuantizeProgram, compiled, { params: { length, headDim: D, block, numBlocks, factor }, buffers, workgroups: [numBlocks, rows, 1] }));
  return { packed, scale };
}

/**
 * Encodes Os of SageSLA into views.o: quantize Q and smoothed K, round V, then the int8 skeleton
 * over the CSR block list (blockRows = BLKQ, blockCols = BLKK, the quantization blocks too).
 */
export async function encodeSageSparsePart(
  device: GPUDevice, encoder: GPUCommandEncoder, p: AttentionProblem,
  views: { q: GpuTensorView; k: GpuTensorView; v: GpuTensorView; o: GpuTensorView; kMean: GPUBuffer },
  blocks: BlockList & { kind: 'csr' }, own: (b: GPUBuffer) => GPUBuffer,
): Promise<void> {
  if (p.headDim % 4 !== 0) throw new UnsupportedError(`sage_sla on WebGPU packs 4 int8 per word: head size must be a multiple of 4, got ${p.headDim}`);
  const D = p.headDim;
  const qq = await encodeQuantize(device, encoder, views.q.buffer, null, p.batch * p.heads, p.queryLength, D, blocks.blockRows, p.scale * LOG2E, own, 'sage.q');
  const kq = await encodeQuantize(device, encoder, views.k.buffer, views.kMean, p.batch * p.kvHeads, p.keyLength, D, blocks.blockCols, 1, own, 'sage.k');
  const vCount = p.batch * p.kvHeads * p.keyLength * p.valueDim;
  const v16 = own(createStorageBuffer(device, vCount * 4, 'sage.vF16'));
  own(await encodeGrid(device, encoder, sageRoundVProgram, {}, {}, { x: views.v.buffer, y: v16 }, vCount));
  const opts: AttentionDispatchOptions = { causal: p.causal, scale: p.scale, blocks };
  const spec: AttentionSpec = {
    blocks: 'csr', tokenRule: 'none', kv: 'strided', dtype: 'f32', headDim: D, valueDim: p.valueDim,
    headDimLoop: isSoftwareDevice(device) ? 'rolled' : 'unrolled',
  };
  const int8Views = { q: { ...views.q, buffer: qq.packed }, k: { ...views.k, buffer: kq.packed }, v: { ...views.v, buffer: v16 }, o: views.o };
  const d = attentionDispatch(device, int8Views, opts, spec, 64);
  const reason = sageAttentionProgram.supports(spec, d.shape, device.limits);
  if (reason) throw new UnsupportedError(`WebGPU SageSLA attention cannot run this shape: ${reason}`);
  const compiled = await compileProgram(device, sageAttentionProgram, spec);
  own(encodeProgram(device, encoder, sageAttentionProgram, compiled, { ...d, buffers: { ...d.buffers, qScale: qq.scale, kScale: kq.scale } }));
}
