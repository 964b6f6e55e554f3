/// <reference types="@webgpu/types" />
/**
 * The memory-bound operations of a Llama layer on the GPU, one KernelProgram each (reference twins
 * in model/ops.ts and model/rope.ts):
 *   embed     x[t] = table[tokens[t]]                 (gather; x f32, the residual stream)
 *   rmsNorm   y[r] = x[r] / sqrt(mean(x[r]²) + eps) · w   (one workgroup per row, f32 sums)
 *   rope      rotate-half RoPE in place on rows [tokens, heads, D], angles from a host table
 *   siluMul   out[r, c] = silu(gu[r, c]) · gu[r, I + c]   (gate and up from one fused GEMM)
 *   copyRows  dst[r, :w] = src[r, :w]                    (K/V from the fused projection into the cache)
 *   heads     [rows, heads, w] strided ⇄ dense [heads, rows, w], casting (methods that read BHLD f32, e.g. SLA)
 * Element-wise kernels loop over a capped grid (`flatGrid`), so any size fits the 65535-workgroup
 * limit. RoPE angles come from a table computed on the host in HF's f32 convention: a GPU's sin/cos
 * of an angle of 10⁵ rad is not accurate enough.
 */
import { type BindingSpec, type KernelProgram, ParamsLayout } from '../runtime/program.js';
import type { StorageType } from './gemm.js';

const WG = 256;
const MAX_GROUPS = 65535;

/** A 1-D grid for `total` elements, capped; kernels stride by the grid size. */
export function flatGrid(total: number): [number, number, number] {
  return [Math.max(1, Math.min(MAX_GROUPS, Math.ceil(total / WG))), 1, 1];
}

/** Rows per workgroup kernels (rmsNorm): one workgroup per row, looping when rows exceed the cap. */
export function rowGrid(rows: number): [number, number, number] {
  return [Math.max(1, Math.min(MAX_GROUPS, rows)), 1, 1];
}

type TypedSpec = { readonly [field: string]: string | number | boolean; t: StorageType };

function storage(bindings: readonly BindingSpec[], types: Record<string, string>): string {
  return bindings
    .map((b, i) => `@group(0) @binding(${i + 1}) var<storage, ${b.kind === 'storage' ? 'read_write' : 'read'}> ${b.name}: array<${types[b.name]}>;`)
    .join('\n');
}

function prelude(t: StorageType[], header: string): string {
  return `${t.includes('f16') ? 'enable f16;\n' : ''}${header}\n@group(0) @binding(0) var<uniform> P: Params;`;
}

const ro = (name: string): BindingSpec => ({ name, kind: 'read-only-storage' });
const rw = (name: string): BindingSpec => ({ name, kind: 'storage' });
const flatIndex = `@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>`;

export const embedParams = new ParamsLayout([['tokens', 'u32'], ['hidden', 'u32'], ['vocab', 'u32']] as const);
/** t: the table's storage type. */
export const embedProgram: KernelProgram<TypedSpec, (typeof embedParams.fields)[number][0]> = {
  name: 'model-embed',
  params: embedParams,
  bindings: () => [ro('ids'), ro('table'), rw('x')],
  constants: () => ({}),
  workgroupSize: () => WG,
  supports: () => null,
  wgsl: (spec, header) => `${prelude([spec.t], header)}
${storage(embedProgram.bindings(spec), { ids: 'u32', table: spec.t, x: 'f32' })}
@compute @workgroup_size(${WG})
fn main(${flatIndex}) {
  let total = P.tokens * P.hidden;
  for (var i = gid.x; i < total; i += nwg.x * ${WG}u) {
    let t = i / P.hidden;
    // Ids are checked on the host; the clamp keeps a bad one from reading past the table.
    let id = min(ids[t], P.vocab - 1u);
    x[i] = f32(table[id * P.hidden + i % P.hidden]);
  }
}
`,
};

export const rmsNormParams = new ParamsLayout([['rows', 'u32'], ['hidden', 'u32'], ['eps', 'f32'], ['xOffset', 'u32'], ['yOffset', 'u32']] as const);
/** t: the output's storage type (x is the f32 residual stream, the weight f32). */
export const rmsNormProgram: KernelProgram<TypedSpec, (typeof rmsNormParams.fields)[number][0]> = {
  name: 'model-rmsnorm',
  params: rmsNormParams,
  bindings: () => [ro('x'), ro('weight'), rw('y')],
  constants: () => ({}),
  workgroupSize: () => WG,
  supports: () => null,
  wgsl: (spec, header) => `${prelude([spec.t], header)}
${storage(rmsNormProgram.bindings(spec), { x: 'f32', weight: 'f32', y: spec.t })}
var<workgroup> partial: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  for (var r = wg.x; r < P.rows; r += nwg.x) {
    let xo = P.xOffset + r * P.hidden;
    var ss = 0.0;
    for (var c = tid; c < P.hidden; c += ${WG}u) { let v = x[xo + c]; ss += v * v; }
    partial[tid] = ss;
    workgroupBarrier();
    for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
      if (tid < s) { partial[tid] += partial[tid + s]; }
      workgroupBarrier();
    }
    let inv = 1.0 / sqrt(partial[0] / f32(P.hidden) + P.eps);
    workgroupBarrier();
    let yo = P.yOffset + r * P.hidden;
    for (var c = tid; c < P.hidden; c += ${WG}u) { y[yo + c] = ${spec.t}(x[xo + c] * inv * weight[c]); }
  }
}
`,
};

export const ropeParams = new ParamsLayout([
  ['tokens', 'u32'], ['heads', 'u32'], ['half', 'u32'], ['rowStride', 'u32'], ['offset', 'u32'], ['start', 'u32'], ['sinOffset', 'u32'],
] as const);
/** t: the rotated buffer's storage type. `table` holds cos [positions, half] then sin at sinOffset. */
export const ropeProgram: KernelProgram<TypedSpec, (typeof ropeParams.fields)[number][0]> = {
  name: 'model-rope',
  params: ropeParams,
  bindings: () => [ro('table'), rw('x')],
  constants: () => ({}),
  workgroupSize: () => WG,
  supports: () => null,
  wgsl: (spec, header) => `${prelude([spec.t], header)}
${storage(ropeProgram.bindings(spec), { table: 'f32', x: spec.t })}
@compute @workgroup_size(${WG})
fn main(${flatIndex}) {
  let total = P.tokens * P.heads * P.half;
  for (var i = gid.x; i < total; i += nwg.x * ${WG}u) {
    let d = i % P.half;
    let h = (i / P.half) % P.heads;
    let t = i / (P.half * P.heads);
    let c = table[(P.start + t) * P.half + d];
    let s = table[P.sinOffset + (P.start + t) * P.half + d];
    let o = P.offset + t * P.rowStride + h * 2u * P.half + d;
    let a = f32(x[o]);
    let b = f32(x[o + P.half]);
    x[o] = ${spec.t}(a * c - b * s);
    x[o + P.half] = ${spec.t}(b * c + a * s);
  }
}
`,
};

export const siluMulParams = new ParamsLayout([['rows', 'u32'], ['inter', 'u32']] as const);
/** t: storage type of both the fused gate|up input [rows, 2I] and the output [rows, I]. */
export const siluMulProgram: KernelProgram<TypedSpec, (typeof siluMulParams.fields)[number][0]> = {
  name: 'model-silu-mul',
  params: siluMulParams,
  bindings: () => [ro('gu'), rw('out')],
  constants: () => ({}),
  workgroupSize: () => WG,
  supports: () => null,
  wgsl: (spec, header) => `${prelude([spec.t], header)}
${storage(siluMulProgram.bindings(spec), { gu: spec.t, out: spec.t })}
@compute @workgroup_size(${WG})
fn main(${flatIndex}) {
  let total = P.rows * P.inter;
  for (var i = gid.x; i < total; i += nwg.x * ${WG}u) {
    let r = i / P.inter;
    let c = i % P.inter;
    let g = f32(gu[r * 2u * P.inter + c]);
    let u = f32(gu[r * 2u * P.inter + P.inter + c]);
    out[i] = ${spec.t}(g / (1.0 + exp(-g)) * u);
  }
}
`,
};

export const copyRowsParams = new ParamsLayout([
  ['rows', 'u32'], ['width', 'u32'], ['srcOffset', 'u32'], ['srcStride', 'u32'], ['dstOffset', 'u32'], ['dstStride', 'u32'],
] as const);
export const copyRowsProgram: KernelProgram<TypedSpec, (typeof copyRowsParams.fields)[number][0]> = {
  name: 'model-copy-rows',
  params: copyRowsParams,
  bindings: () => [ro('src'), rw('dst')],
  constants: () => ({}),
  workgroupSize: () => WG,
  supports: () => null,
  wgsl: (spec, header) => `${prelude([spec.t], header)}
${storage(copyRowsProgram.bindings(spec), { src: spec.t, dst: spec.t })}
@compute @workgroup_size(${WG})
fn main(${flatIndex}) {
  let total = P.rows * P.width;
  for (var i = gid.x; i < total; i += nwg.x * ${WG}u) {
    let r = i / P.width;
    let c = i % P.width;
    dst[P.dstOffset + r * P.dstStride + c] = src[P.srcOffset + r * P.srcStride + c];
  }
}
`,
};

export const headsLayoutParams = new ParamsLayout([
  ['rows', 'u32'], ['heads', 'u32'], ['width', 'u32'], ['offset', 'u32'], ['stride', 'u32'],
] as const);
/**
 * dir 'gather': dst dense [heads, rows, width] from src rows of `stride` elements (head h at
 * offset + h·width); 'scatter': the reverse. t: src type, to: dst type (converted on the way).
 */
export const headsLayoutProgram: KernelProgram<{ t: StorageType; to: StorageType; dir: 'gather' | 'scatter' }, (typeof headsLayoutParams.fields)[number][0]> = {
  name: 'model-heads-layout',
  params: headsLayoutParams,
  bindings: () => [ro('src'), rw('dst')],
  constants: () => ({}),
  workgroupSize: () => WG,
  supports: () => null,
  wgsl: (spec, header) => {
    const strided = 'P.offset + r * P.stride + h * P.width + c';
    const [from, to] = spec.dir === 'gather' ? [strided, 'i'] : ['i', strided];
    return `${prelude([spec.t, spec.to], header)}
${storage(headsLayoutProgram.bindings(spec), { src: spec.t, dst: spec.to })}
@compute @workgroup_size(${WG})
fn main(${flatIndex}) {
  let total = P.heads * P.rows * P.width;
  for (var i = gid.x; i < total; i += nwg.x * ${WG}u) {
    let h = i / (P.rows * P.width);
    let r = (i / P.width) % P.rows;
    let c = i % P.width;
    dst[${to}] = ${spec.to}(src[${from}]);
  }
}
`;
  },
};

/** HF's rotate-half angles, f32 as model/rope.ts: cos [positions, half] followed by sin. */
export function ropeTable(invFreq: Float32Array, positions: number): Float32Array {
  const half = invFreq.length;
  const out = new Float32Array(2 * positions * half);
  for (let p = 0; p < positions; p++)
    for (let d = 0; d < half; d++) {
      const angle = Math.fround(p * invFreq[d]);
      out[p * half + d] = Math.cos(angle);
      out[(positions + p) * half + d] = Math.sin(angle);
    }
  return out;
}
