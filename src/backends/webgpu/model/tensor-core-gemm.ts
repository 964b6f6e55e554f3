/// <reference types="@webgpu/types" />
/**
 * The model GEMM on subgroup matrices (f16 × f16 → f32, 16×16×16; adapters with
 * chromium-experimental-subgroup-matrix): y [M, N] (=|+=) x [M, K] · Wᵀ (+ bias), same Params and
 * bindings as gemm.ts. A workgroup of 4 subgroups of 32 computes a 64 × 64 tile: subgroup s owns
 * rows [16s, 16s + 16) and four 16 × 16 accumulators across the 64 columns. Per step of 16 along K
 * it loads its x slice (left, row-major, stride xStride) and four W slices (right, column-major with
 * stride K: Wᵀ without a transpose) straight from storage. Results go through workgroup memory so
 * each lane writes its own outputs with the bias, the accumulate and the conversion.
 * M, N and K must be multiples of 16 (`tensorCoreGemmReason`); a tile past the edge loads the last
 * in-range tile instead (loads stay in bounds) and stores nothing. Reference twin: the portable
 * GEMM and model/ops.ts `linearReference`.
 */
import { seq, SUBGROUP_MATRIX_PRELUDE } from '../runtime/subgroup-matrix-wgsl.js';
import type { KernelProgram } from '../runtime/program.js';
import { hasTensorCores } from '../runtime/webgpu-device.js';
import { gemmBindings, type GemmParamName, gemmParams, type GemmShape, type StorageType } from './gemm.js';

export interface TensorCoreGemmSpec {
  readonly [field: string]: string | number | boolean;
  y: StorageType;
  bias: boolean;
  accumulate: boolean;
}

const TILE = 64;

/** null when the tensor-core GEMM can run this call, else why not. */
export function tensorCoreGemmReason(device: GPUDevice, x: StorageType, w: StorageType, p: GemmShape & { xOffset: number; xStride: number; wOffset: number }): string | null {
  if (!hasTensorCores(device)) return 'no f16→f32 16×16×16 subgroup matrices';
  if (x !== 'f16' || w !== 'f16') return 'tensor cores take f16 x and W';
  if (p.m % 16 || p.n % 16 || p.k % 16) return `${p.m}×${p.n}×${p.k} is not in multiples of 16`;
  if (p.xOffset % 8 || p.xStride % 8 || p.wOffset % 8) return 'x / W offsets and strides are not multiples of 8';
  return null;
}

export const tensorCoreGemmProgram: KernelProgram<TensorCoreGemmSpec, GemmParamName, GemmShape> = {
  name: 'model-gemm-tc',
  params: gemmParams,
  bindings: gemmBindings,
  constants: () => ({ tile: TILE }),
  workgroupSize: () => 128,
  supports(_spec, shape, limits) {
    if (shape.m % 16 || shape.n % 16 || shape.k % 16) return 'M, N and K must be multiples of 16';
    if (Math.ceil(shape.m / TILE) > limits.maxComputeWorkgroupsPerDimension) return `${shape.m} rows need more workgroups than the device allows`;
    if (4 * 16 * TILE * 4 > limits.maxComputeWorkgroupStorageSize) return 'needs 16 KiB of workgroup memory';
    return null;
  },
  wgsl(spec, header) {
    const types: Record<string, string> = { x: 'f16', w: 'f16', bias: 'f32', y: spec.y };
    const decls = tensorCoreGemmProgram.bindings(spec)
      .map((b, i) => `@group(0) @binding(${i + 1}) var<storage, ${b.kind === 'storage' ? 'read_write' : 'read'}> ${b.name}: array<${types[b.name]}>;`)
      .join('\n');
    const store = spec.accumulate ? `${spec.y}(f32(y[o]) + v)` : `${spec.y}(v)`;
    return `${SUBGROUP_MATRIX_PRELUDE}
${header}
@group(0) @binding(0) var<uniform> P: Params;
${decls}

var<workgroup> sTile: array<f32, ${4 * 16 * TILE}>;  // [subgroup][16 rows][64 columns]

@compute @workgroup_size(128)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let rowBase = wg.y * TILE + sg * 16u;
  let colBase = wg.x * TILE;
  // Tiles past the edge compute on the last in-range tile (M and N are multiples of 16) and are not stored.
  let loadRow = min(rowBase, P.m - 16u);
${seq(4, (c) => `  let col${c} = min(colBase + ${c * 16}u, P.n - 16u);`)}
${seq(4, (c) => `  var acc${c} = subgroup_matrix_result<f32, 16, 16>();`)}
  let xBase = P.xOffset + loadRow * P.xStride;
  for (var k0 = 0u; k0 < P.k; k0 += 16u) {
    let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&x, xBase + k0, P.xStride);
${seq(4, (c) => `    acc${c} = subgroupMatrixMultiplyAccumulate(a, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&w, P.wOffset + col${c} * P.k + k0, P.k), acc${c});`)}
  }
${seq(4, (c) => `  subgroupMatrixStore<row_major>(&sTile, sg * 16u * TILE + ${c * 16}u, acc${c}, TILE);`)}
  workgroupBarrier();
  // Lane l writes row l / 2, columns [32 (l % 2), +32) of its subgroup's 16 × 64 tile.
  let r = rowBase + lane / 2u;
  if (rowBase < P.m) {
    for (var j = 0u; j < 32u; j++) {
      let cl = (lane % 2u) * 32u + j;
      let c = colBase + cl;
      if (c < P.n) {
        let v = sTile[sg * 16u * TILE + (lane / 2u) * TILE + cl]${spec.bias ? ' + bias[c]' : ''};
        let o = P.yOffset + r * P.yStride + c;
        y[o] = ${store};
      }
    }
  }
}
`;
  },
};

export function tensorCoreGemmWorkgroups(shape: GemmShape): [number, number, number] {
  return [Math.ceil(shape.n / TILE), Math.ceil(shape.m / TILE), 1];
}
