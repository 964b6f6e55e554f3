/// <reference types="@webgpu/types" />
/**
 * SLA block map, steps 2–3 on the GPU: pooled scores and top-k selection per query block, the
 * twins of getBlockMap / selectTopBlocks in methods/sla-block-map.ts.
 *
 *   sla-pooled-scores  pooledQ [B, H, nQB, D] · pooledK [B, Hkv, nKB, D]ᵀ → scores [B, H, nQB, nKB] f32
 *                      a workgroup per 4 query blocks × 64 key blocks of a head, K staged in workgroup
 *                      memory (GQA: head h reads KV head h / group)
 *   sla-topk-select    scores → sparseMap [B, H, nQB, nKB] u32: block kb is selected iff it is
 *                      causally valid and fewer than topk valid blocks beat it (higher score, or an
 *                      equal score at a lower index: the CPU's tie rule). One thread per block,
 *                      O(nKB) each; ranking by counting needs no sort and no cross-thread step.
 *   sla-lut            sparseMap → lut [B, H, nQB, topk] (ascending, −1 padded) and the CSR colIdx the
 *                      block-sparse kernel reads at rowPtr[row] + position. rowPtr depends on the
 *                      shape only (a row selects min(topk, its valid blocks)), so the host builds it.
 */
import { type KernelProgram, ParamsLayout } from '../../runtime/program.js';
import { encodeGrid, GRID_FIELDS, GRID_WGSL, GRID_WORKGROUP } from './sla-grid.js';

type NoSpec = Record<string, never>;
const HEAD = (header: string) => `${header}\n@group(0) @binding(0) var<uniform> P: Params;`;
const MAIN = `${GRID_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = threadIndex(wg, lid);
  if (t >= P.total) { return; }`;

const scoreParams = new ParamsLayout([
  ...GRID_FIELDS, ['rows', 'u32'], ['heads', 'u32'], ['groupSize', 'u32'], ['kvHeads', 'u32'], ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'], ['headDim', 'u32'],
] as const);
type ScoreParam = (typeof scoreParams.fields)[number][0];

/** Pooled scores: query blocks and key blocks per workgroup tile, and the head-dim chunk staged at a time. */
const SCORE_QB = 4;
const SCORE_KB = 64;
const SCORE_DC = 16;

export const slaPooledScoresProgram: KernelProgram<NoSpec, ScoreParam> = {
  name: 'sla-pooled-scores',
  params: scoreParams,
  bindings: () => [{ name: 'pooledQ', kind: 'read-only-storage' }, { name: 'pooledK', kind: 'read-only-storage' }, { name: 'scores', kind: 'storage' }],
  constants: () => ({}),
  workgroupSize: () => 64,
  // One thread reading its key block's D values alone made each load instruction touch 64 cache
  // lines (0.59 ms at 16K on the H200): the tile's K is staged through workgroup memory by
  // coalesced loads, and each thread keeps SCORE_QB sums (its key block against SCORE_QB query
  // blocks), added in ascending d like the CPU's.
  wgsl: (_s, header) => /* wgsl */ `${HEAD(header)}
@group(0) @binding(1) var<storage, read> pooledQ: array<f32>;       // [B, H, nQB, D]
@group(0) @binding(2) var<storage, read> pooledK: array<f32>;       // [B, Hkv, nKB, D]
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;  // [B, H, nQB, nKB]
const QB = ${SCORE_QB}u;
const KB = ${SCORE_KB}u;
const DC = ${SCORE_DC}u;
var<workgroup> sK: array<f32, ${SCORE_KB * (SCORE_DC + 1)}>; // [KB, DC + 1]: the pad spreads a column over banks
var<workgroup> sQ: array<f32, ${SCORE_QB * SCORE_DC}>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let tile = wg.y * P.gridX + wg.x;  // uniform: one (b, h, QB query blocks, KB key blocks) tile
  let kbTiles = (P.numKeyBlocks + KB - 1u) / KB;
  let qbTiles = (P.numQueryBlocks + QB - 1u) / QB;
  let bh = tile / (kbTiles * qbTiles);
  if (bh >= P.rows) { return; }
  let qb0 = ((tile / kbTiles) % qbTiles) * QB;
  let kb0 = (tile % kbTiles) * KB;
  let kh = (bh % P.heads) / P.groupSize;
  let kRow0 = ((bh / P.heads) * P.kvHeads + kh) * P.numKeyBlocks;
  var acc = array<f32, ${SCORE_QB}>();
  for (var d0 = 0u; d0 < P.headDim; d0 += DC) {
    for (var n = 0u; n < KB * DC / 64u; n++) {
      let i = lid + n * 64u;
      let kb = kb0 + i / DC;
      let d = d0 + i % DC;
      sK[(i / DC) * (DC + 1u) + i % DC] = select(0.0, pooledK[(kRow0 + min(kb, P.numKeyBlocks - 1u)) * P.headDim + min(d, P.headDim - 1u)], kb < P.numKeyBlocks && d < P.headDim);
    }
    {
      let qb = qb0 + lid / DC;
      let d = d0 + lid % DC;
      sQ[lid] = select(0.0, pooledQ[(bh * P.numQueryBlocks + min(qb, P.numQueryBlocks - 1u)) * P.headDim + min(d, P.headDim - 1u)], qb < P.numQueryBlocks && d < P.headDim);
    }
    workgroupBarrier();
    for (var dd = 0u; dd < min(DC, P.headDim - d0); dd++) {
      let k = sK[lid * (DC + 1u) + dd];
      for (var r = 0u; r < QB; r++) { acc[r] += sQ[r * DC + dd] * k; }
    }
    workgroupBarrier();
  }
  let kb = kb0 + lid;
  if (kb < P.numKeyBlocks) {
    for (var r = 0u; r < QB; r++) {
      let qb = qb0 + r;
      if (qb < P.numQueryBlocks) { scores[(bh * P.numQueryBlocks + qb) * P.numKeyBlocks + kb] = acc[r]; }
    }
  }
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
  const rows = dims.batch * dims.heads;
  const tiles = rows * Math.ceil(nQB / SCORE_QB) * Math.ceil(nKB / SCORE_KB);
  uniforms.push(await encodeGrid(device, encoder, slaPooledScoresProgram, {}, {
    rows, heads: dims.heads, groupSize: dims.heads / dims.kvHeads, kvHeads: dims.kvHeads, numQueryBlocks: nQB, numKeyBlocks: nKB, headDim: dims.headDim,
  }, { pooledQ: buf.pooledQ, pooledK: buf.pooledK, scores: buf.scores }, tiles * GRID_WORKGROUP));
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
