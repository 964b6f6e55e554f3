/// <reference types="@webgpu/types" />
/**
 * SLA block map, steps 2–3 on the GPU: pooled scores and top-k selection per query block, the
 * twins of getBlockMap / selectTopBlocks in methods/sla-block-map.ts.
 *
 *   sla-pooled-scores  pooledQ [B, H, nQB, D] · pooledK [B, Hkv, nKB, D]ᵀ → scores [B, H, nQB, nKB] f32
 *                      one thread per score (GQA: head h reads KV head h / group)
 *   sla-topk-select    scores → sparseMap [B, H, nQB, nKB] u32: block kb is selected iff it is
 *                      causally valid and fewer than topk valid blocks beat it (higher score, or an
 *                      equal score at a lower index: the CPU's tie rule). One thread per block,
 *                      O(nKB) each; ranking by counting needs no sort and no cross-thread step.
 *   sla-lut            sparseMap → lut [B, H, nQB, topk] (ascending, −1 padded) and the CSR colIdx the
 *                      block-sparse kernel reads at rowPtr[row] + position. rowPtr depends on the
 *                      shape only (a row selects min(topk, its valid blocks)), so the host builds it.
 */
import { type KernelProgram, ParamsLayout } from '../../runtime/program.js';
import { encodeGrid, GRID_FIELDS, GRID_WGSL } from './sla-grid.js';

type NoSpec = Record<string, never>;
const HEAD = (header: string) => `${header}\n@group(0) @binding(0) var<uniform> P: Params;`;
const MAIN = `${GRID_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = threadIndex(wg, lid);
  if (t >= P.total) { return; }`;

const scoreParams = new ParamsLayout([...GRID_FIELDS, ['heads', 'u32'], ['groupSize', 'u32'], ['kvHeads', 'u32'], ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'], ['headDim', 'u32']] as const);
type ScoreParam = (typeof scoreParams.fields)[number][0];

export const slaPooledScoresProgram: KernelProgram<NoSpec, ScoreParam> = {
  name: 'sla-pooled-scores',
  params: scoreParams,
  bindings: () => [{ name: 'pooledQ', kind: 'read-only-storage' }, { name: 'pooledK', kind: 'read-only-storage' }, { name: 'scores', kind: 'storage' }],
  constants: () => ({}),
  workgroupSize: () => 64,
  wgsl: (_s, header) => /* wgsl */ `${HEAD(header)}
@group(0) @binding(1) var<storage, read> pooledQ: array<f32>;       // [B, H, nQB, D]
@group(0) @binding(2) var<storage, read> pooledK: array<f32>;       // [B, Hkv, nKB, D]
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;  // [B, H, nQB, nKB]
${MAIN}
  let kb = t % P.numKeyBlocks;
  let row = t / P.numKeyBlocks;                 // (b, h, qb)
  let bh = row / P.numQueryBlocks;
  let b = bh / P.heads;
  let kh = (bh % P.heads) / P.groupSize;
  let qo = row * P.headDim;
  let ko = ((b * P.kvHeads + kh) * P.numKeyBlocks + kb) * P.headDim;
  var s = 0.0;
  for (var d = 0u; d < P.headDim; d++) { s += pooledQ[qo + d] * pooledK[ko + d]; }
  scores[t] = s;
}
`,
  supports: () => null,
};

const selectParams = new ParamsLayout([
  ...GRID_FIELDS, ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'], ['topk', 'u32'], ['causal', 'u32'],
  ['queryLength', 'u32'], ['keyLength', 'u32'], ['blockQ', 'u32'], ['blockK', 'u32'],
] as const);
type SelectParam = (typeof selectParams.fields)[number][0];

export const slaTopkSelectProgram: KernelProgram<NoSpec, SelectParam> = {
  name: 'sla-topk-select',
  params: selectParams,
  bindings: () => [{ name: 'scores', kind: 'read-only-storage' }, { name: 'sparseMap', kind: 'storage' }],
  constants: () => ({}),
  workgroupSize: () => 64,
  wgsl: (_s, header) => /* wgsl */ `${HEAD(header)}
@group(0) @binding(1) var<storage, read> scores: array<f32>;          // [rows, nKB]
@group(0) @binding(2) var<storage, read_write> sparseMap: array<u32>; // [rows, nKB]
${MAIN}
  let kb = t % P.numKeyBlocks;
  let row = t / P.numKeyBlocks;
  let qb = row % P.numQueryBlocks;
  // Causally valid key blocks are a prefix [0, valid): blockCausallyValid of core/block-mask.ts.
  var valid = P.numKeyBlocks;
  if (P.causal != 0u) {
    let lastQuery = min((qb + 1u) * P.blockQ, P.queryLength) - 1u;
    valid = min(P.numKeyBlocks, (P.keyLength - P.queryLength + lastQuery) / P.blockK + 1u);
  }
  if (kb >= valid) { sparseMap[t] = 0u; return; }
  let s = scores[t];
  let base = row * P.numKeyBlocks;
  var rank = 0u;
  for (var c = 0u; c < valid; c++) {
    let o = scores[base + c];
    if (o > s || (o == s && c < kb)) { rank++; }
  }
  sparseMap[t] = select(0u, 1u, rank < P.topk);
}
`,
  supports: () => null,
};

const lutParams = new ParamsLayout([...GRID_FIELDS, ['numKeyBlocks', 'u32'], ['topk', 'u32']] as const);
type LutParam = (typeof lutParams.fields)[number][0];

export const slaLutProgram: KernelProgram<NoSpec, LutParam> = {
  name: 'sla-lut',
  params: lutParams,
  bindings: () => [
    { name: 'sparseMap', kind: 'read-only-storage' }, { name: 'rowPtr', kind: 'read-only-storage' },
    { name: 'lut', kind: 'storage' }, { name: 'colIdx', kind: 'storage' },
  ],
  constants: () => ({}),
  workgroupSize: () => 64,
  wgsl: (_s, header) => /* wgsl */ `${HEAD(header)}
@group(0) @binding(1) var<storage, read> sparseMap: array<u32>;   // [rows, nKB]
@group(0) @binding(2) var<storage, read> rowPtr: array<i32>;      // [rows + 1]
@group(0) @binding(3) var<storage, read_write> lut: array<i32>;   // [rows, topk], −1 where unused
@group(0) @binding(4) var<storage, read_write> colIdx: array<i32>; // [rowPtr[rows]]
${MAIN}
  if (sparseMap[t] == 0u) { return; }
  let kb = t % P.numKeyBlocks;
  let row = t / P.numKeyBlocks;
  var pos = 0u;
  for (var c = 0u; c < kb; c++) { pos += sparseMap[row * P.numKeyBlocks + c]; }
  lut[row * P.topk + pos] = i32(kb);
  colIdx[u32(rowPtr[row]) + pos] = i32(kb);
}
`,
  supports: () => null,
};

export interface SelectDims {
  batch: number;
  heads: number;
  kvHeads: number;
  queryLength: number;
  keyLength: number;
  blockQ: number;
  blockK: number;
  causal: boolean;
  topk: number;
  headDim: number;
}

export interface SelectBuffers {
  pooledQ: GPUBuffer;
  pooledK: GPUBuffer;
  scores: GPUBuffer;
  sparseMap: GPUBuffer;
  rowPtr: GPUBuffer;
  /** Filled with −1 before the dispatch. */
  lut: GPUBuffer;
  colIdx: GPUBuffer;
}

/** Encodes scores → sparseMap → lut/colIdx; returns the three Params uniforms. */
export async function encodeBlockSelect(device: GPUDevice, encoder: GPUCommandEncoder, dims: SelectDims, buf: SelectBuffers): Promise<GPUBuffer[]> {
  const nQB = Math.ceil(dims.queryLength / dims.blockQ);
  const nKB = Math.ceil(dims.keyLength / dims.blockK);
  const total = dims.batch * dims.heads * nQB * nKB;
  const uniforms: GPUBuffer[] = [];
  uniforms.push(await encodeGrid(device, encoder, slaPooledScoresProgram, {}, {
    heads: dims.heads, groupSize: dims.heads / dims.kvHeads, kvHeads: dims.kvHeads, numQueryBlocks: nQB, numKeyBlocks: nKB, headDim: dims.headDim,
  }, { pooledQ: buf.pooledQ, pooledK: buf.pooledK, scores: buf.scores }, total));
  uniforms.push(await encodeGrid(device, encoder, slaTopkSelectProgram, {}, {
    numQueryBlocks: nQB, numKeyBlocks: nKB, topk: dims.topk, causal: dims.causal ? 1 : 0,
    queryLength: dims.queryLength, keyLength: dims.keyLength, blockQ: dims.blockQ, blockK: dims.blockK,
  }, { scores: buf.scores, sparseMap: buf.sparseMap }, total));
  uniforms.push(await encodeGrid(device, encoder, slaLutProgram, {}, { numKeyBlocks: nKB, topk: dims.topk },
    { sparseMap: buf.sparseMap, rowPtr: buf.rowPtr, lut: buf.lut, colIdx: buf.colIdx }, total));
  return uniforms;
}

/** Selected blocks per (b, h, query block): min(topk, causally valid blocks); depends on the shape only. */
export function selectedCounts(dims: SelectDims): Int32Array {
  const nQB = Math.ceil(dims.queryLength / dims.blockQ);
  const nKB = Math.ceil(dims.keyLength / dims.blockK);
  const counts = new Int32Array(dims.batch * dims.heads * nQB);
  for (let r = 0; r < counts.length; r++) {
    const qb = r % nQB;
    const lastQuery = Math.min((qb + 1) * dims.blockQ, dims.queryLength) - 1;
    const valid = dims.causal ? Math.min(nKB, Math.floor((dims.keyLength - dims.queryLength + lastQuery) / dims.blockK) + 1) : nKB;
    counts[r] = Math.min(dims.topk, valid);
  }
  return counts;
}
