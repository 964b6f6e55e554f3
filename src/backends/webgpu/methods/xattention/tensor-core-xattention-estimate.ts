/// <reference types="@webgpu/types" />
/**
 * XAttention estimation on tensor cores (subgroup matrices): the same W as webgpu-xattention-estimate.ts
 * (spec steps 1-5), for f16 q/k on adapters with f16→f32 16×16×16 configurations.
 *
 * The antidiagonal score is a plain matmul over a reduction of length S·D:
 *   A[i, j] = scale/S · Σ_{s<S} q(i·S + S-1-s) · k(j·S + s)
 * so for each (s, 16-wide slice d of the head dim) the left operand is the 16 strided query rows
 * i0..i0+15 at token offset S-1-s (row stride S·qStrideL) and the right operand is 16 key columns at
 * token offset s (column stride S·kStrideL): both are strided subgroup-matrix loads, nothing is
 * gathered or copied.
 *
 * One workgroup = 16 strided query rows (16/R query blocks of R = B/S rows) × every key column up to
 * the causal limit of its last row; 4 subgroups, each scoring 64 columns (4 accumulators, so one
 * left load feeds 4 products) of each 256-column group. Two passes as the portable kernel: (1)
 * per-row online max/sum, combined over lanes and subgroups; (2) scores again → softmax → W, each
 * R×R block summed from the subgroup's scratch. Nothing of size (L/S)² exists.
 *
 * Requirements (tensorCoreEstimateSupports): f16, D in {64, 128}, R in {4, 8, 16}, Lq and Lk
 * multiples of 16·S (loads never leave the tensors; every strided row is real).
 */
import { compileProgram, encodeProgram, type KernelProgram, ParamsLayout } from '../../runtime/program.js';
import type { GpuTensorView } from '../../runtime/buffers.js';
import { hasTensorCores } from '../../runtime/webgpu-device.js';
import { seq, SUBGROUP_MATRIX_PRELUDE } from '../../runtime/subgroup-matrix-wgsl.js';

export type TcEstimateSpec = {
  readonly headDim: 64 | 128;
  /** R = B/S: strided rows (and columns) of one block. */
  readonly rowsPerBlock: 4 | 8 | 16;
  readonly causal: boolean;
};

const SUBGROUPS = 4;
const COLS_PER_SUBGROUP = 64;
const ROWS = 16;

export const tcEstimateParams = new ParamsLayout([
  ['heads', 'u32'], ['groupSize', 'u32'], ['stride', 'u32'], ['keyCols', 'u32'],
  ['causalOffset', 'i32'], ['scaleOverStride', 'f32'], ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'],
  ['qOffset', 'u32'], ['qStrideB', 'u32'], ['qStrideH', 'u32'], ['qStrideL', 'u32'],
  ['kOffset', 'u32'], ['kStrideB', 'u32'], ['kStrideH', 'u32'], ['kStrideL', 'u32'],
] as const);

type TcEstimateParam = (typeof tcEstimateParams.fields)[number][0];

export interface TcEstimateShape {
  queryLength: number;
  keyLength: number;
  stride: number;
  heads: number;
  batch: number;
}

function tcEstimateWgsl(spec: TcEstimateSpec, header: string): string {
  const DT = spec.headDim / 16;
  const CT = COLS_PER_SUBGROUP / 16;
  const R = spec.rowsPerBlock;
  // Scores of the subgroup's 16 rows × 64 columns into its scratch, chunks past colEnd left zero.
  const scoreTile = `
${seq(CT, (c) => `    var acc${c} = subgroup_matrix_result<f32, 16, 16>();`)}
    for (var s = 0u; s < P.stride; s++) {
      let qRow = qBase + (i0 * P.stride + P.stride - 1u - s) * P.qStrideL;
      let kRow = kBase + (j0 * P.stride + s) * P.kStrideL;
${seq(DT, (d) => `      {
        let left = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Q, qRow + ${d * 16}u, P.stride * P.qStrideL);
${seq(CT, (c) => `        if (j0 + ${c * 16}u < colEnd) { acc${c} = subgroupMatrixMultiplyAccumulate(left, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&K, kRow + ${c * 16}u * P.stride * P.kStrideL + ${d * 16}u, P.stride * P.kStrideL), acc${c}); }`)}
      }`)}
    }
    workgroupBarrier(); // the previous group's scratch has been read
${seq(CT, (c) => `    subgroupMatrixStore<row_major>(&scratch, sg * ${ROWS * COLS_PER_SUBGROUP}u + ${c * 16}u, acc${c}, ${COLS_PER_SUBGROUP}u);`)}
    workgroupBarrier();`;
  return /* wgsl */ `
${SUBGROUP_MATRIX_PRELUDE}

${header}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Q: array<f16>;
@group(0) @binding(2) var<storage, read> K: array<f16>;
@group(0) @binding(3) var<storage, read_write> W: array<f32>; // [B, H, nQB, nKB], zeroed

// Per subgroup: 16 rows × 64 columns of scores, then of probabilities.  [SG][16][64]
var<workgroup> scratch: array<f32, ${SUBGROUPS * ROWS * COLS_PER_SUBGROUP}>;
var<workgroup> partM: array<f32, ${SUBGROUPS * ROWS}>; // [SG][16] row max over the subgroup's columns
var<workgroup> partL: array<f32, ${SUBGROUPS * ROWS}>; // [SG][16] row sum at that max

const R: u32 = ${R}u;
const MASKED: f32 = -3.0e38;

fn validEntry(i: u32, j: u32, colEnd: u32) -> bool {
  return j < colEnd && (!CAUSAL || i32(j) <= i32(i) + P.causalOffset);
}

@compute @workgroup_size(${SUBGROUPS * 32})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let b = wg.z;
  let h = wg.y;
  let i0 = wg.x * 16u; // first strided query row of the workgroup
  let qBase = P.qOffset + b * P.qStrideB + h * P.qStrideH;
  let kBase = P.kOffset + b * P.kStrideB + (h / P.groupSize) * P.kStrideH;
  var colEnd = P.keyCols;
  if (CAUSAL) { colEnd = u32(clamp(i32(i0) + 15 + P.causalOffset + 1, 0, i32(P.keyCols))); }
  // This lane's half-row of the subgroup's scratch: row lane/2, columns [side·32, +32).
  let row = lane / 2u;
  let side = lane % 2u;
  let mine = sg * ${ROWS * COLS_PER_SUBGROUP}u + row * ${COLS_PER_SUBGROUP}u + side * 32u;

  // Pass 1: online max and sum of each row over the columns this lane sees.
  var m = MASKED;
  var l = 0.0;
  for (var g0 = 0u; g0 < colEnd; g0 += ${SUBGROUPS * COLS_PER_SUBGROUP}u) {
    let j0 = g0 + sg * ${COLS_PER_SUBGROUP}u;
${scoreTile}
    for (var c = 0u; c < 32u; c++) {
      let j = j0 + side * 32u + c;
      if (validEntry(i0 + row, j, colEnd)) {
        let x = scratch[mine + c] * P.scaleOverStride;
        if (x > m) { l *= exp(m - x); m = x; }
        l += exp(x - m);
      }
    }
  }
  // Over the two lanes of a row, then over the subgroups (every lane combines its own row).
  let mo = subgroupShuffleXor(m, 1u);
  let lo = subgroupShuffleXor(l, 1u);
  let mp = max(m, mo);
  let lp = l * exp(m - mp) + lo * exp(mo - mp);
  if (side == 0u) { partM[sg * 16u + row] = mp; partL[sg * 16u + row] = lp; }
  workgroupBarrier();
  var rowMax = MASKED;
  for (var g = 0u; g < ${SUBGROUPS}u; g++) { rowMax = max(rowMax, partM[g * 16u + row]); }
  var rowSum = 0.0;
  for (var g = 0u; g < ${SUBGROUPS}u; g++) { rowSum += partL[g * 16u + row] * exp(partM[g * 16u + row] - rowMax); }
  let rowInv = select(0.0, 1.0 / rowSum, rowSum > 0.0);

  // Pass 2: probabilities into the scratch, then each R×R block's mass into W.
  let a0 = wg.x * (16u / R); // first query block of the workgroup
  for (var g0 = 0u; g0 < colEnd; g0 += ${SUBGROUPS * COLS_PER_SUBGROUP}u) {
    let j0 = g0 + sg * ${COLS_PER_SUBGROUP}u;
${scoreTile}
    for (var c = 0u; c < 32u; c++) {
      let j = j0 + side * 32u + c;
      var p = 0.0;
      if (validEntry(i0 + row, j, colEnd)) { p = exp(scratch[mine + c] * P.scaleOverStride - rowMax) * rowInv; }
      scratch[mine + c] = p;
    }
    workgroupBarrier();
    // (16/R) query blocks × (64/R) key blocks per subgroup tile.
    for (var pi = lane; pi < (16u / R) * (${COLS_PER_SUBGROUP}u / R); pi += 32u) {
      let qa = pi / (${COLS_PER_SUBGROUP}u / R);
      let kk = pi % (${COLS_PER_SUBGROUP}u / R);
      let kb = j0 / R + kk;
      if (kb < P.numKeyBlocks && j0 + kk * R < colEnd) {
        var sum = 0.0;
        for (var r = 0u; r < R; r++) {
          for (var c = 0u; c < R; c++) { sum += scratch[sg * ${ROWS * COLS_PER_SUBGROUP}u + (qa * R + r) * ${COLS_PER_SUBGROUP}u + kk * R + c]; }
        }
        W[((b * P.heads + h) * P.numQueryBlocks + a0 + qa) * P.numKeyBlocks + kb] = sum;
      }
    }
  }
}
`;
}

export const tcEstimateProgram: KernelProgram<TcEstimateSpec, TcEstimateParam, TcEstimateShape> = {
  name: 'tc-xattention-estimate',
  params: tcEstimateParams,
  bindings: () => [{ name: 'q', kind: 'read-only-storage' }, { name: 'k', kind: 'read-only-storage' }, { name: 'blockSums', kind: 'storage' }],
  constants: (spec) => ({ causal: spec.causal }),
  workgroupSize: () => SUBGROUPS * 32,
  wgsl: tcEstimateWgsl,
  supports(_spec, shape, limits) {
    const unit = 16 * shape.stride;
    if (shape.queryLength % unit || shape.keyLength % unit) return `lengths ${shape.queryLength}/${shape.keyLength} are not multiples of 16·stride = ${unit}`;
    const groups = shape.queryLength / unit;
    for (const [axis, n] of [['query row groups', groups], ['heads', shape.heads], ['batch', shape.batch]] as const) {
      if (n > limits.maxComputeWorkgroupsPerDimension) return `${axis} = ${n} workgroups exceeds maxComputeWorkgroupsPerDimension`;
    }
    return null;
  },
};

/** The tensor-core spec for this call, or why it cannot take it (the portable kernel then does). */
export function tensorCoreEstimateSpec(device: GPUDevice, q: GpuTensorView, k: GpuTensorView, rowsPerBlock: number, stride: number, causal: boolean): TcEstimateSpec | string {
  if (!hasTensorCores(device)) return 'the adapter has no f16→f32 16×16×16 subgroup-matrix configuration';
  if (q.dtype !== 'f16' || k.dtype !== 'f16') return 'tensor cores take f16 q and k';
  if (q.headDim !== 64 && q.headDim !== 128) return `head dim ${q.headDim} is not 64 or 128`;
  if (rowsPerBlock !== 4 && rowsPerBlock !== 8 && rowsPerBlock !== 16) return `blockSize / stride = ${rowsPerBlock} is not 4, 8 or 16`;
  const unit = 16 * stride;
  if (q.length % unit || k.length % unit) return `lengths ${q.length}/${k.length} are not multiples of 16·stride = ${unit}`;
  return { headDim: q.headDim, rowsPerBlock, causal };
}

export async function encodeTensorCoreEstimate(
  device: GPUDevice, encoder: GPUCommandEncoder, q: GpuTensorView, k: GpuTensorView, blockScores: GPUBuffer, spec: TcEstimateSpec,
  p: { stride: number; scale: number; keyCols: number; causalOffset: number; numQueryBlocks: number; numKeyBlocks: number },
): Promise<GPUBuffer> {
  const compiled = await compileProgram(device, tcEstimateProgram, spec);
  return encodeProgram(device, encoder, tcEstimateProgram, compiled, {
    params: {
      heads: q.heads, groupSize: q.heads / k.heads, stride: p.stride, keyCols: p.keyCols, causalOffset: p.causalOffset,
      scaleOverStride: p.scale / p.stride, numQueryBlocks: p.numQueryBlocks, numKeyBlocks: p.numKeyBlocks,
      qOffset: q.offset, qStrideB: q.strideB, qStrideH: q.strideH, qStrideL: q.strideL,
      kOffset: k.offset, kStrideB: k.strideB, kStrideH: k.strideH, kStrideL: k.strideL,
    },
    buffers: { q: q.buffer, k: k.buffer, blockSums: blockScores },
    workgroups: [q.length / (16 * p.stride), q.heads, q.batch],
  });
}
