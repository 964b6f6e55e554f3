/// <reference types="@webgpu/types" />
/**
 * The model's linear layers on the GPU: y [M, N] (=|+=) x [M, K] · Wᵀ (+ bias), W [N, K] as HF
 * stores nn.Linear, so both operands of each dot product are contiguous along K.
 *
 * Portable tiled kernel: a workgroup of 256 computes a 64 × 64 tile of y, each invocation a 4 × 4
 * block of it at stride 16 (rows ty + 16i, columns tx + 16j), so neighbouring invocations read
 * neighbouring words of workgroup memory. x and W tiles of depth 16 are staged in workgroup memory
 * as f32 (8 KiB) whatever the storage type; sums are f32. Every edge (M, N, K not multiples of the
 * tile) is guarded, so any size runs. Offsets and row strides travel in Params: a projection can
 * write into a slice of a larger buffer (a KV cache) and read rows from the middle of one.
 * `accumulate` adds into y (the residual stream), read and written by the same invocation.
 * Reference twin: model/ops.ts `linearReference`.
 */
import { UnsupportedError } from '../../../core/errors.js';
import { type BindingSpec, type KernelProgram, ParamsLayout } from '../runtime/program.js';

export type StorageType = 'f32' | 'f16';

export interface GemmSpec {
  readonly [field: string]: string | number | boolean;
  x: StorageType;
  w: StorageType;
  y: StorageType;
  bias: boolean;
  accumulate: boolean;
  /**
   * 'shared': x and W tiles staged in workgroup memory (GPUs). 'direct': each invocation reads its
   * 4 rows and 4 columns straight from storage, no barriers; on a CPU adapter (lavapipe) barriers
   * cost more than the reads, which caches serve.
   */
  staging: 'shared' | 'direct';
}

export interface GemmShape {
  m: number;
  n: number;
  k: number;
}

export const GEMM_TILE = 64;
const TILE_K = 16;

export const gemmParams = new ParamsLayout([
  ['m', 'u32'], ['n', 'u32'], ['k', 'u32'],
  ['xOffset', 'u32'], ['xStride', 'u32'], ['wOffset', 'u32'], ['yOffset', 'u32'], ['yStride', 'u32'],
] as const);
export type GemmParamName = (typeof gemmParams.fields)[number][0];

export const usesF16 = (...types: StorageType[]): boolean => types.includes('f16');

/** x, W, the optional bias and y: the bindings of both GEMM kernels (portable and tensor-core). */
export function gemmBindings(spec: { bias: boolean }): BindingSpec[] {
  return [
    { name: 'x', kind: 'read-only-storage' },
    { name: 'w', kind: 'read-only-storage' },
    ...(spec.bias ? [{ name: 'bias', kind: 'read-only-storage' as const }] : []),
    { name: 'y', kind: 'storage' },
  ];
}

export const gemmProgram: KernelProgram<GemmSpec, GemmParamName, GemmShape> = {
  name: 'model-gemm',
  params: gemmParams,
  bindings: gemmBindings,
  constants: () => ({ tile: GEMM_TILE, tileK: TILE_K }),
  workgroupSize: () => 256,
  supports(spec, shape, limits) {
    if (shape.m < 1 || shape.n < 1 || shape.k < 1) return `empty GEMM ${shape.m}×${shape.n}×${shape.k}`;
    if (Math.ceil(shape.m / GEMM_TILE) > limits.maxComputeWorkgroupsPerDimension) return `${shape.m} rows need more workgroups than the device allows`;
    return null;
  },
  wgsl(spec, header) {
    const bindings = gemmProgram.bindings(spec);
    const decl = (i: number, b: BindingSpec, type: StorageType) =>
      `@group(0) @binding(${i + 1}) var<storage, ${b.kind === 'storage' ? 'read_write' : 'read'}> ${b.name}: array<${type}>;`;
    const typeOf: Record<string, StorageType> = { x: spec.x, w: spec.w, bias: 'f32', y: spec.y };
    const store = spec.accumulate ? `${spec.y}(f32(y[o]) + v)` : `${spec.y}(v)`;
    if (spec.staging === 'direct') return directGemm(spec, header, bindings.map((b, i) => decl(i, b, typeOf[b.name])).join('\n'), store);
    return `${usesF16(spec.x, spec.w, spec.y) ? 'enable f16;\n' : ''}${header}
@group(0) @binding(0) var<uniform> P: Params;
${bindings.map((b, i) => decl(i, b, typeOf[b.name])).join('\n')}

var<workgroup> xs: array<f32, ${TILE_K * GEMM_TILE}>;  // [kk][row]
var<workgroup> ws: array<f32, ${TILE_K * GEMM_TILE}>;  // [kk][col]

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.y * TILE;
  let col0 = wg.x * TILE;
  let tx = tid % 16u;
  let ty = tid / 16u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < P.k; k0 += TILE_K) {
    // 1024 elements of each tile, 4 per invocation, K fastest so a row's loads are contiguous.
    for (var i = 0u; i < 4u; i++) {
      let e = tid + 256u * i;
      let r = e / TILE_K;
      let kk = e % TILE_K;
      let kg = k0 + kk;
      var xv = 0.0;
      if (row0 + r < P.m && kg < P.k) { xv = f32(x[P.xOffset + (row0 + r) * P.xStride + kg]); }
      xs[kk * TILE + r] = xv;
      var wv = 0.0;
      if (col0 + r < P.n && kg < P.k) { wv = f32(w[P.wOffset + (col0 + r) * P.k + kg]); }
      ws[kk * TILE + r] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TILE_K; kk++) {
      var a: array<f32, 4>;
      var b: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        a[i] = xs[kk * TILE + ty + 16u * i];
        b[i] = ws[kk * TILE + tx + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += a[i] * b[j]; }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + ty + 16u * i;
    if (r >= P.m) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = col0 + tx + 16u * j;
      if (c >= P.n) { continue; }
      let v = acc[i * 4u + j]${spec.bias ? ' + bias[c]' : ''};
      let o = P.yOffset + r * P.yStride + c;
      y[o] = ${store};
    }
  }
}
`;
  },
};

/** 64 invocations as 8 × 8 blocks of 4 × 4 outputs: a 32 × 32 tile per workgroup. */
function directGemm(spec: GemmSpec, header: string, decls: string, store: string): string {
  return `${usesF16(spec.x, spec.w, spec.y) ? 'enable f16;\n' : ''}${header}
@group(0) @binding(0) var<uniform> P: Params;
${decls}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let r0 = wg.y * 32u + (tid / 8u) * 4u;
  let c0 = wg.x * 32u + (tid % 8u) * 4u;
  // Rows and columns past the edge repeat the last one (always in range); their sums are not stored.
  var xo: array<u32, 4>;
  var wo: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    xo[i] = P.xOffset + min(r0 + i, P.m - 1u) * P.xStride;
    wo[i] = P.wOffset + min(c0 + i, P.n - 1u) * P.k;
  }
  var acc: array<f32, 16>;
  for (var kk = 0u; kk < P.k; kk++) {
    var a: array<f32, 4>;
    var b: array<f32, 4>;
    for (var i = 0u; i < 4u; i++) {
      a[i] = f32(x[xo[i] + kk]);
      b[i] = f32(w[wo[i] + kk]);
    }
    for (var i = 0u; i < 4u; i++) {
      for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += a[i] * b[j]; }
    }
  }
  for (var i = 0u; i < 4u; i++) {
    let r = r0 + i;
    if (r >= P.m) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let c = c0 + j;
      if (c >= P.n) { continue; }
      let v = acc[i * 4u + j]${spec.bias ? ' + bias[c]' : ''};
      let o = P.yOffset + r * P.yStride + c;
      y[o] = ${store};
    }
  }
}
`;
}

/** The grid of one GEMM dispatch. */
export function gemmWorkgroups(spec: GemmSpec, shape: GemmShape): [number, number, number] {
  const tile = spec.staging === 'direct' ? 32 : GEMM_TILE;
  return [Math.ceil(shape.n / tile), Math.ceil(shape.m / tile), 1];
}

export function checkGemmDtypes(device: GPUDevice, spec: GemmSpec): void {
  if (usesF16(spec.x, spec.w, spec.y) && !device.features.has('shader-f16')) throw new UnsupportedError('an f16 GEMM needs the shader-f16 feature, which this device lacks');
}
