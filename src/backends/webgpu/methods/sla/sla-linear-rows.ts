/// <reference types="@webgpu/types" />
/**
 * SLA's linear part, last step: one workgroup (64 threads) per query row i of (b, h):
 *   Ol_i = (φq·H + Σ_tail w_j v_j) / (ε + φq·Z + Σ_tail w_j),  w_j = φq·φk_j,
 * H, Z = hq [B, H, nQB, D, Dv + 1] of the row's query block (sla-linear.ts), tail = the visible,
 * unselected keys of blocks >= F (causal only: fewer than BLKQ + BLKK keys). Ol_i = 0 when the
 * row's linear key set is empty (the CPU's rule). Twin: linearQueryBlock in methods/sla-linear-part.ts.
 *
 *   per tail chunk of 64 keys: each thread computes one w_j (D MACs) into wTile [64] f32 (−1 for a
 *   key outside the set), then
 *   thread t accumulates the value channels e = t, t + 64, … (≤ MAX_E per thread) from wTile and V.
 *   A thread per (row, e) would recompute every w_j Dv times; this computes it once.
 */
import type { KernelProgram } from '../../runtime/program.js';
import { GRID_WGSL } from './sla-grid.js';
import { type LinearSpec, SLA_BLOCK_WGSL, slaLinearParams } from './sla-linear.js';
import { LINEAR_EPS } from '../../../../methods/sla/sla-linear-part.js';

/** Value channels per thread: Dv ≤ 64·MAX_E. */
export const LINEAR_ROWS_MAX_E = 4;

export const slaLinearRowsProgram: KernelProgram<LinearSpec, (typeof slaLinearParams.fields)[number][0]> = {
  name: 'sla-linear-rows',
  params: slaLinearParams,
  bindings: () => [
    { name: 'phiQ', kind: 'read-only-storage' }, { name: 'phiK', kind: 'read-only-storage' }, { name: 'v', kind: 'read-only-storage' },
    { name: 'hq', kind: 'read-only-storage' }, { name: 'lut', kind: 'read-only-storage' }, { name: 'ol', kind: 'storage' },
  ],
  constants: () => ({ maxE: LINEAR_ROWS_MAX_E }),
  workgroupSize: () => 64,
  supports: () => null,
  wgsl: (spec, header) => /* wgsl */ `${header}
const EPS: f32 = ${LINEAR_EPS};
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> phiQ: array<f32>;      // [B, H, Lq, D]
@group(0) @binding(2) var<storage, read> phiK: array<f32>;      // [B·Hkv, Lk, D]
@group(0) @binding(3) var<storage, read> v: array<f32>;         // [B·Hkv, Lk, Dv]
@group(0) @binding(4) var<storage, read> hq: array<f32>;        // [B, H, nQB, D, Dv + 1]
@group(0) @binding(5) var<storage, read> lut: array<i32>;       // [B, H, nQB, topk]
@group(0) @binding(6) var<storage, read_write> ol: array<f32>;  // [B, H, Lq, Dv]
var<workgroup> wTile: array<f32, 64>;  // [64] tail weights φq·φk_j of the current chunk
${SLA_BLOCK_WGSL}
${GRID_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let qr = threadIndex(wg, 0u) / 64u;     // query row (b, h, i); uniform in the workgroup
  if (qr * 64u >= P.total) { return; }
  let Dv = P.valueDim;
  let W = Dv + 1u;
  let i = qr % P.queryLength;
  let bh = qr / P.queryLength;
  let qb = i / P.blockQ;
  let row = bh * P.numQueryBlocks + qb;
  let kvRow = (bh / P.heads) * (P.heads / P.groupSize) + (bh % P.heads) / P.groupSize;
  let F = fullBlocks(qb);
  let qo = qr * P.headDim;
  let ho = row * P.headDim * W;
  var num: array<f32, MAX_E>;
  var den = 0.0;
  for (var d = 0u; d < P.headDim; d++) {
    let f = phiQ[qo + d];
    den += f * hq[ho + d * W + Dv];
    for (var x = 0u; x < MAX_E; x++) {
      let e = lid + 64u * x;
      if (e < Dv) { num[x] += f * hq[ho + d * W + e]; }
    }
  }
  // Keys of the block part: blocks [0, F) less the selected ones.
  var count = min(F * P.blockK, P.keyLength);
${spec.unselected ? `  for (var n = 0u; n < P.topk; n++) {
    let kb = lut[row * P.topk + n];
    if (kb >= 0 && u32(kb) < F) { count -= min(u32(kb) * P.blockK + P.blockK, P.keyLength) - u32(kb) * P.blockK; }
  }` : ''}
  // Tail (causal): keys [F·BLKK, jMax) in chunks of 64, selected blocks weighted 0.
  let jMax = select(P.keyLength, min(P.queryOffset + i + 1u, P.keyLength), P.causal != 0u);
  for (var j0 = F * P.blockK; j0 < jMax; j0 += 64u) {
    let j = j0 + lid;
    // φ ≥ 0 for every feature map, so −1 marks a key outside the set (selected block, or past jMax).
    var w = -1.0;
    if (j < jMax${spec.unselected ? ' && !isSelected(row, j / P.blockK)' : ''}) {
      let ko = (kvRow * P.keyLength + j) * P.headDim;
      w = 0.0;
      for (var d = 0u; d < P.headDim; d++) { w += phiQ[qo + d] * phiK[ko + d]; }
    }
    workgroupBarrier();
    wTile[lid] = w;
    workgroupBarrier();
    for (var c = 0u; c < min(64u, jMax - j0); c++) {
      let jc = j0 + c;
      if (wTile[c] < 0.0) { continue; }
      count++;
      den += wTile[c];
      for (var x = 0u; x < MAX_E; x++) {
        let e = lid + 64u * x;
        if (e < Dv) { num[x] += wTile[c] * v[(kvRow * P.keyLength + jc) * Dv + e]; }
      }
    }
  }
  for (var x = 0u; x < MAX_E; x++) {
    let e = lid + 64u * x;
    if (e < Dv) { ol[qr * Dv + e] = select(num[x] / (EPS + den), 0.0, count == 0u); }
  }
}
`,
};
