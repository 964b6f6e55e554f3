/// <reference types="@webgpu/types" />
/**
 * XAttention block selection on the GPU (spec xattention.md step 6/7; CPU twin: selectBlocks in
 * methods/xattention-estimate.ts). One workgroup of 64 threads per query-block row (b, h, a):
 *
 *   W row [nKB] (block sums) → kept-block bitmap flags [rows, ceil(nKB/32)] and counts [rows]
 *
 * The CPU visits the candidate blocks in descending W (ties: lower block first) and keeps each while
 * the kept mass is below tau·Σ W, so the block that crosses the threshold is kept too. Kept mass is
 * non-decreasing, so that loop keeps candidate c exactly when
 *   forced + Σ_{c' ranked before c} W[c'] < tau·Σ W
 * which each thread evaluates for its own candidates with no sort: rank by a scan over the row,
 * staged through workgroup memory in tiles of SELECT_TILE blocks (O(nKB²) compares per row, a few
 * per cent of the estimation's multiply-adds at the default B=64, S=8).
 * Causal: blocks 0 and the diagonal block are forced (their mass counted once), candidates are the
 * blocks left of the diagonal, nothing right of it is kept. The diagonal is the block holding the
 * key position of the query block's last query (diagonalBlock on the CPU). Non-causal: every block
 * is a candidate, and block 0 is kept in any case (the reference's gather marks it).
 */
import { type KernelProgram, ParamsLayout } from '../../runtime/program.js';

export const SELECT_WORKGROUP = 64;
export const SELECT_TILE = 256;

export type XAttentionSelectSpec = { readonly tile: number };

export const xattentionSelectParams = new ParamsLayout([
  ['heads', 'u32'], ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'], ['blockSize', 'u32'],
  ['queryLength', 'u32'], ['keyLength', 'u32'], ['causal', 'u32'], ['threshold', 'f32'], ['flagWords', 'u32'],
] as const);

export type XAttentionSelectParamName = (typeof xattentionSelectParams.fields)[number][0];

export const xattentionSelectProgram: KernelProgram<XAttentionSelectSpec, XAttentionSelectParamName, { workgroupsX: number }> = {
  name: 'xattention-select',
  params: xattentionSelectParams,
  bindings: () => [{ name: 'blockSums', kind: 'read-only-storage' }, { name: 'flags', kind: 'storage' }, { name: 'counts', kind: 'storage' }],
  constants: (spec) => ({ workgroupSize: SELECT_WORKGROUP, tile: spec.tile }),
  workgroupSize: () => SELECT_WORKGROUP,
  supports(_spec, shape, limits) {
    const max = limits.maxComputeWorkgroupsPerDimension;
    return shape.workgroupsX > max ? `${shape.workgroupsX} query blocks exceed maxComputeWorkgroupsPerDimension ${max}` : null;
  },
  wgsl: (_spec, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> blockSums: array<f32>;             // W [B, H, nQB, nKB]
@group(0) @binding(2) var<storage, read_write> flags: array<atomic<u32>>;   // [B·H·nQB, flagWords], zeroed
@group(0) @binding(3) var<storage, read_write> counts: array<u32>;          // [B·H·nQB]

var<workgroup> part: array<f32, WORKGROUP_SIZE>;  // [64] partial sums of the row total
var<workgroup> tileW: array<f32, TILE>;           // [TILE] W[t0 .. t0 + TILE) of the row
var<workgroup> kept: atomic<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let a = wg.x;
  let row = (wg.z * P.heads + wg.y) * P.numQueryBlocks + a;
  let nKB = P.numKeyBlocks;
  let wRow = row * nKB;
  if (lid == 0u) { atomicStore(&kept, 0u); }

  var own = 0.0;
  for (var c = lid; c < nKB; c += WORKGROUP_SIZE) { own += blockSums[wRow + c]; }
  part[lid] = own;
  workgroupBarrier();
  for (var step = WORKGROUP_SIZE / 2u; step > 0u; step /= 2u) {
    if (lid < step) { part[lid] += part[lid + step]; }
    workgroupBarrier();
  }
  let required = P.threshold * part[0];

  let causal = P.causal != 0u;
  // The diagonal block holds the key position Lk - Lq + lastQuery of the block's last query.
  let lastQuery = min((a + 1u) * P.blockSize, P.queryLength) - 1u;
  let diagonal = (P.keyLength - P.queryLength + lastQuery) / P.blockSize;
  var forced = 0.0;
  if (causal) {
    forced = blockSums[wRow];
    if (diagonal != 0u) { forced += blockSums[wRow + diagonal]; }
  }
  // Candidates [firstCandidate, candidateEnd): left of the diagonal less block 0 (causal), or all.
  let firstCandidate = select(0u, 1u, causal);
  let candidateEnd = select(nKB, diagonal, causal);

  for (var cBase = 0u; cBase < nKB; cBase += WORKGROUP_SIZE) {
    let c = cBase + lid;
    let wc = blockSums[wRow + min(c, nKB - 1u)];
    var before = 0.0;  // mass of the candidates ranked before c
    for (var t0 = firstCandidate; t0 < candidateEnd; t0 += TILE) {
      let n = min(TILE, candidateEnd - t0);
      workgroupBarrier();
      for (var x = lid; x < n; x += WORKGROUP_SIZE) { tileW[x] = blockSums[wRow + t0 + x]; }
      workgroupBarrier();
      for (var x = 0u; x < n; x++) {
        let wt = tileW[x];
        if (wt > wc || (wt == wc && t0 + x < c)) { before += wt; }
      }
    }
    var keep = false;
    if (c < nKB) {
      let candidate = c >= firstCandidate && c < candidateEnd;
      keep = c == 0u || (causal && c == diagonal) || (candidate && forced + before < required);
    }
    if (keep) {
      atomicOr(&flags[row * P.flagWords + c / 32u], 1u << (c % 32u));
      atomicAdd(&kept, 1u);
    }
  }
  workgroupBarrier();
  if (lid == 0u) { counts[row] = atomicLoad(&kept); }
}
`,
};
