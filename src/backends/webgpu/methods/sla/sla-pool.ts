/// <reference types="@webgpu/types" />
/**
 * SLA block map, step 1 on the GPU: K smoothing and mean pooling (f32), the twins of
 * sequenceMean / meanPool in methods/sla-block-map.ts.
 *
 *   sla-sequence-mean  x [rows, L, D] → mean [rows, D]           one thread per (row, channel)
 *   sla-mean-pool      x [rows, L, D] (− mean [rows, D]) → pooled [rows, nB, D], nB = ceil(L / blk)
 *                      one thread per (row, block, channel); a partial last block averages its real rows
 * rows = B·heads of dense BHLD f32 buffers. Sums are f32 (the CPU sums in f64 and rounds once), so
 * pooled values may differ in the last bits; block choices differ only where two scores tie.
 */
import { type BindingSpec, type KernelProgram, ParamsLayout } from '../../runtime/program.js';
import { encodeGrid, GRID_FIELDS, GRID_WGSL } from './sla-grid.js';

type NoSpec = Record<string, never>;

const meanParams = new ParamsLayout([...GRID_FIELDS, ['length', 'u32'], ['headDim', 'u32']] as const);
type MeanParam = (typeof meanParams.fields)[number][0];

export const slaSequenceMeanProgram: KernelProgram<NoSpec, MeanParam> = {
  name: 'sla-sequence-mean',
  params: meanParams,
  bindings: () => [{ name: 'x', kind: 'read-only-storage' }, { name: 'mean', kind: 'storage' }],
  constants: () => ({}),
  workgroupSize: () => 64,
  wgsl: (_spec, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [rows, L, D]
@group(0) @binding(2) var<storage, read_write> mean: array<f32>; // [rows, D]
${GRID_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = threadIndex(wg, lid);
  if (t >= P.total) { return; }
  let row = t / P.headDim;
  let d = t % P.headDim;
  var s = 0.0;
  for (var l = 0u; l < P.length; l++) { s += x[(row * P.length + l) * P.headDim + d]; }
  mean[t] = s / f32(P.length);
}
`,
  supports: () => null,
};

export type MeanPoolSpec = { readonly smooth: boolean };
const poolParams = new ParamsLayout([...GRID_FIELDS, ['length', 'u32'], ['headDim', 'u32'], ['block', 'u32'], ['numBlocks', 'u32']] as const);
type PoolParam = (typeof poolParams.fields)[number][0];

function poolBindings(spec: MeanPoolSpec): BindingSpec[] {
  return [
    { name: 'x', kind: 'read-only-storage' },
    ...(spec.smooth ? [{ name: 'mean', kind: 'read-only-storage' } as const] : []),
    { name: 'pooled', kind: 'storage' },
  ];
}

export const slaMeanPoolProgram: KernelProgram<MeanPoolSpec, PoolParam> = {
  name: 'sla-mean-pool',
  params: poolParams,
  bindings: poolBindings,
  constants: () => ({}),
  workgroupSize: () => 64,
  wgsl: (spec, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [rows, L, D]
${spec.smooth ? `@group(0) @binding(2) var<storage, read> mean: array<f32>;  // [rows, D]
@group(0) @binding(3)` : '@group(0) @binding(2)'} var<storage, read_write> pooled: array<f32>; // [rows, nB, D]
${GRID_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = threadIndex(wg, lid);
  if (t >= P.total) { return; }
  let d = t % P.headDim;
  let nb = (t / P.headDim) % P.numBlocks;
  let row = t / (P.headDim * P.numBlocks);
  let l0 = nb * P.block;
  let l1 = min(l0 + P.block, P.length);
  ${spec.smooth ? 'let mu = mean[row * P.headDim + d];' : ''}
  var s = 0.0;
  for (var l = l0; l < l1; l++) { s += x[(row * P.length + l) * P.headDim + d]${spec.smooth ? ' - mu' : ''}; }
  pooled[t] = s / f32(l1 - l0);
}
`,
  supports: () => null,
};

/** Encodes mean [rows, D] of x [rows, L, D]. */
export function encodeSequenceMean(device: GPUDevice, encoder: GPUCommandEncoder, x: GPUBuffer, mean: GPUBuffer, rows: number, length: number, headDim: number): Promise<GPUBuffer> {
  return encodeGrid(device, encoder, slaSequenceMeanProgram, {}, { length, headDim }, { x, mean }, rows * headDim);
}

/** Encodes pooled [rows, ceil(L / block), D] of x (minus mean when given). */
export function encodeMeanPool(
  device: GPUDevice, encoder: GPUCommandEncoder, x: GPUBuffer, mean: GPUBuffer | null, pooled: GPUBuffer,
  rows: number, length: number, headDim: number, block: number,
): Promise<GPUBuffer> {
  const numBlocks = Math.ceil(length / block);
  const buffers: Record<string, GPUBuffer> = mean ? { x, mean, pooled } : { x, pooled };
  return encodeGrid(device, encoder, slaMeanPoolProgram, { smooth: mean !== null }, { length, headDim, block, numBlocks }, buffers, rows * numBlocks * headDim);
}
