/// <reference types="@webgpu/types" />
/**
 * Second half of the one-pass tensor-core XAttention estimate (tensor-core-xattention-estimate.ts,
 * `passes: 1`): from each strided row's log-sum-exp per key block, lse[i, kb] = log Σ_{j in kb} e^{A_ij},
 * the block masses W[a, kb] = Σ_{i in a} e^{lse[i, kb] − LSE_i} with LSE_i = log Σ_kb e^{lse[i, kb]}:
 * the same W as the two-pass softmax (Σ_i Σ_j e^{A_ij − M_i} / L_i), with the scores computed once.
 *
 *   lse f32 [B, H, Lq/S, nKB] (entries right of a row's causal limit never read) → W f32 [B, H, nQB, nKB]
 *
 * One workgroup per (query block, head, batch): per row, an online (max, sum) over its key blocks
 * reduced across the workgroup, then each thread sums the block's R rows for its key blocks.
 */
import { type KernelProgram, ParamsLayout } from '../../runtime/program.js';

const WG = 128;

export const lseReduceParams = new ParamsLayout([
  ['heads', 'u32'], ['queryRows', 'u32'], ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'],
  ['rowsPerBlock', 'u32'], ['causal', 'u32'], ['causalOffset', 'i32'],
] as const);

export type LseReduceParam = (typeof lseReduceParams.fields)[number][0];

export const lseReduceProgram: KernelProgram<Record<string, never>, LseReduceParam, { numQueryBlocks: number; heads: number; batch: number }> = {
  name: 'xattention-lse-reduce',
  params: lseReduceParams,
  bindings: () => [{ name: 'lse', kind: 'read-only-storage' }, { name: 'blockSums', kind: 'storage' }],
  constants: () => ({ workgroupSize: WG }),
  workgroupSize: () => WG,
  supports(_spec, shape, limits) {
    for (const [axis, n] of [['query blocks', shape.numQueryBlocks], ['heads', shape.heads], ['batch', shape.batch]] as const) {
      if (n > limits.maxComputeWorkgroupsPerDimension) return `${axis} = ${n} workgroups exceeds maxComputeWorkgroupsPerDimension`;
    }
    return null;
  },
  wgsl: (_spec, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> lse: array<f32>;            // [B, H, Lq/S, nKB]
@group(0) @binding(2) var<storage, read_write> blockSums: array<f32>; // W [B, H, nQB, nKB]

const MASKED: f32 = -3.0e38;

var<workgroup> redM: array<f32, WORKGROUP_SIZE>; // [WG] partial (max, sum) of one row
var<workgroup> redS: array<f32, WORKGROUP_SIZE>;
var<workgroup> rowLse: array<f32, 16>;           // [R] LSE_i of the block's rows

// Key blocks [0, n) hold a visible column of strided row i (block kb starts at column kb·R).
fn visibleBlocks(i: u32) -> u32 {
  if (P.causal == 0u) { return P.numKeyBlocks; }
  let last = i32(i) + P.causalOffset; // the row's last visible column
  if (last < 0) { return 0u; }
  return min(u32(last) / P.rowsPerBlock + 1u, P.numKeyBlocks);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let a = wg.x;
  let bh = wg.z * P.heads + wg.y;
  let R = P.rowsPerBlock;
  for (var r = 0u; r < R; r++) {
    let i = a * R + r;
    let base = (bh * P.queryRows + i) * P.numKeyBlocks;
    var m = MASKED;
    var s = 0.0;
    for (var kb = lid; kb < visibleBlocks(i); kb += WORKGROUP_SIZE) {
      let x = lse[base + kb];
      if (x > m) { s *= exp(m - x); m = x; }
      s += exp(x - m);
    }
    redM[lid] = m;
    redS[lid] = s;
    workgroupBarrier();
    for (var step = WORKGROUP_SIZE / 2u; step > 0u; step /= 2u) {
      if (lid < step) {
        let mo = redM[lid + step];
        let mn = max(redM[lid], mo);
        redS[lid] = redS[lid] * exp(redM[lid] - mn) + redS[lid + step] * exp(mo - mn);
        redM[lid] = mn;
      }
      workgroupBarrier();
    }
    if (lid == 0u) { rowLse[r] = select(MASKED, redM[0] + log(redS[0]), redS[0] > 0.0); }
    workgroupBarrier();
  }
  let wRow = (bh * P.numQueryBlocks + a) * P.numKeyBlocks;
  for (var kb = lid; kb < P.numKeyBlocks; kb += WORKGROUP_SIZE) {
    var sum = 0.0;
    for (var r = 0u; r < R; r++) {
      let i = a * R + r;
      if (kb < visibleBlocks(i)) { sum += exp(lse[(bh * P.queryRows + i) * P.numKeyBlocks + kb] - rowLse[r]); }
    }
    blockSums[wRow + kb] = sum;
  }
}
`,
};
