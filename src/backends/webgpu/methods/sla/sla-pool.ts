/// <reference types="@webgpu/types" />
/**
 * SLA block map, step 1 on the GPU: mean pooling and K smoothing (f32), the twins of meanPool /
 * sequenceMean in methods/sla-block-map.ts.
 *
 *   sla-mean-pool     x [rows, L, D] → pooled [rows, nB, D], nB = ceil(L / blk)
 *                     one thread per (row, block, channel); a partial last block averages its real rows
 *   sla-pool-center   pooled [rows, nB, D] → mean [rows, D] (the length-weighted mean of the block
 *                     means, which is the sequence mean), then pooled −= mean: the pool of K − mean
 *                     one thread per (row, channel), over nB blocks instead of L keys
 * rows = B·heads of dense BHLD f32 buffers. Sums are f32 (the CPU sums in f64 and rounds once), so
 * pooled values may differ in the last bits; block choices differ only where two scores tie.
 * (A thread per (row, channel) over all L keys took 1.6 ms at 4K on the H200, a third of SLA's call.)
 */
import { type KernelProgram, ParamsLayout } from '../../runtime/program.js';
import { encodeGrid, GRID_FIELDS, GRID_WGSL } from './sla-grid.js';

type NoSpec = Record<string, never>;

const poolParams = new ParamsLayout([...GRID_FIELDS, ['length', 'u32'], ['headDim', 'u32'], ['block', 'u32'], ['numBlocks', 'u32']] as const);
type PoolParam = (typeof poolParams.fields)[number][0];

export const slaMeanPoolProgram: KernelProgram<NoSpec, PoolParam> = {
  name: 'sla-mean-pool',
  params: poolParams,
  bindings: () => [{ name: 'x', kind: 'read-only-storage' }, { name: 'pooled', kind: 'storage' }],
  constants: () => ({}),
  workgroupSize: () => 64,
  wgsl: (_spec, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [rows, L, D]
@group(0) @binding(2) var<storage, read_write> pooled: array<f32>; // [rows, nB, D]
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
  var s = 0.0;
  for (var l = l0; l < l1; l++) { s += x[(row * P.length + l) * P.headDim + d]; }
  pooled[t] = s / f32(l1 - l0);
}
`,
  supports: () => null,
};

export const slaPoolCenterProgram: KernelProgram<NoSpec, PoolParam> = {
  name: 'sla-pool-center',
  params: poolParams,
  bindings: () => [{ name: 'pooled', kind: 'storage' }, { name: 'mean', kind: 'storage' }],
  constants: () => ({}),
  workgroupSize: () => 64,
  wgsl: (_spec, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> pooled: array<f32>; // [rows, nB, D]
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;   // [rows, D]
${GRID_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = threadIndex(wg, lid);
  if (t >= P.total) { return; }
  let row = t / P.headDim;
  let d = t % P.headDim;
  let base = row * P.numBlocks * P.headDim + d;
  var s = 0.0;
  for (var nb = 0u; nb < P.numBlocks; nb++) {
    let n = min(P.block, P.length - nb * P.block); // keys in the block
    s += pooled[base + nb * P.headDim] * f32(n);
  }
  let mu = s / f32(P.length);
  mean[t] = mu;
  for (var nb = 0u; nb < P.numBlocks; nb++) { pooled[base + nb * P.headDim] -= mu; }
}
`,
  supports: () => null,
};

/** Encodes pooled [rows, ceil(L / block), D] of x. */
export function encodeMeanPool(
  device: GPUDevice, encoder: GPUCommandEncoder, x: GPUBuffer, pooled: GPUBuffer, rows: number, length: number, headDim: number, block: number,
): Promise<GPUBuffer> {
  const numBlocks = Math.ceil(length / block);
  return encodeGrid(device, encoder, slaMeanPoolProgram, {}, { length, headDim, block, numBlocks }, { x, pooled }, rows * numBlocks * headDim);
}

/** Encodes mean [rows, D] from the block means of encodeMeanPool, and centres them (pooled −= mean). */
export function encodePoolCenter(
  device: GPUDevice, encoder: GPUCommandEncoder, pooled: GPUBuffer, mean: GPUBuffer, rows: number, length: number, headDim: number, block: number,
): Promise<GPUBuffer> {
  const numBlocks = Math.ceil(length / block);
  return encodeGrid(device, encoder, slaPoolCenterProgram, {}, { length, headDim, block, numBlocks }, { pooled, mean }, rows * headDim);
}
