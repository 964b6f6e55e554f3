/// <reference types="@webgpu/types" />
/**
 * XAttention estimation on tensor cores (subgroup matrices): the same W as webgpu-xattention-estimate.ts
 * (spec steps 1-5), for f16 q/k on adapters with f16→f32 16×16×16 configurations.
 *
 * The antidiagonal score is a plain matmul over a reduction of length S·D:
 *   A[i, j] = scale/S · Σ_{s<S} q(i·S + S-1-s) · k(j·S + s)
 * so for each (s, 16-wide slice d of the head dim) the left operand is 16 strided query rows at
 * token offset S-1-s (row stride S·qStrideL) and the right operand is 16 key columns at token
 * offset s (column stride S·kStrideL): both are strided subgroup-matrix loads, nothing is gathered.
 *
 * One workgroup = RS = 16·rowTiles strided query rows × every key column up to the causal limit of
 * its last row; `subgroups` subgroups, each scoring 64 columns of each (64·subgroups)-column group
 * with rowTiles × 4 accumulators, so one left load feeds 4 products and one right load rowTiles.
 * Two passes as the portable kernel: (1) per-row online max/sum, combined over lanes and subgroups;
 * (2) scores again → softmax → each R×R block's mass into W. Nothing of size (L/S)² exists.
 *
 * Scratch walk: a row has 64/LPR columns per lane (LPR = 2/rowTiles lanes per row). A lane walks its
 * columns block by block (R columns), so pass 2 sums a row's part of a block in a register and R
 * lanes add their rows with xor-shuffles. The scratch's row stride is 64 words, so a column's bank
 * is the column mod 32: with `swizzle` the lanes of query block qa (and side) start at block
 * qa + (RS/R)·side and lane r of a block at column r of it, so the 32 lanes always read 32 banks
 * (without, all 32 read one bank: kept to be measured).
 *
 * Requirements (tcEstimateProgram.supports): f16, D in {64, 128}, R in {4, 8, 16}, Lq and Lk
 * multiples of RS·S and 16·S (loads never leave the tensors; every strided row is real).
 *
 * `emulate` (tests only) rewrites the subgroup-matrix builtins into plain WGSL
 * (attention/tensor-core-emulation.wgsl.ts) so this data flow is checked on lavapipe.
 */
import { compileProgram, encodeProgram, type KernelProgram, ParamsLayout } from '../../runtime/program.js';
import type { GpuTensorView } from '../../runtime/buffers.js';
import { hasTensorCores } from '../../runtime/webgpu-device.js';
import { seq, SUBGROUP_MATRIX_PRELUDE } from '../../runtime/subgroup-matrix-wgsl.js';
import { emulateTensorCoreWgsl, emulationWorkgroupBytes } from '../../attention/tensor-core-emulation.wgsl.js';

export type TcEstimateSpec = {
  readonly headDim: 64 | 128;
  /** R = B/S: strided rows (and columns) of one block. */
  readonly rowsPerBlock: 4 | 8 | 16;
  readonly causal: boolean;
  /** 16-row fragments per subgroup (each right load feeds this many products). */
  readonly rowTiles: 1 | 2;
  readonly subgroups: 2 | 4;
  /** Bank-conflict-free scratch walk (false: every lane on one bank, kept to be measured). */
  readonly swizzle: boolean;
  /** Test-only: plain WGSL in place of the subgroup-matrix builtins (never chosen by the planner). */
  readonly emulate?: true;
};

/** Caller's choices; defaults rowTiles 1, subgroups 4, swizzle true. */
export type TcEstimateOptions = { rowTiles?: 1 | 2; subgroups?: 2 | 4; swizzle?: boolean; emulate?: boolean };

const COLS_PER_SUBGROUP = 64;

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

function workgroupBytes(spec: TcEstimateSpec): number {
  const rows = 16 * spec.rowTiles;
  return spec.subgroups * rows * (COLS_PER_SUBGROUP + 2) * 4 + (spec.emulate ? emulationWorkgroupBytes(spec.subgroups) : 0);
}

function tcEstimateWgsl(spec: TcEstimateSpec, header: string): string {
  const wgsl = tcEstimateRealWgsl(spec, header);
  // P.keyCols is a positive multiple of 16, so twice it is at least 32.
  return spec.emulate ? emulateTensorCoreWgsl(wgsl, spec.subgroups, 'f32', '(P.keyCols * 2u)') : wgsl;
}

function tcEstimateRealWgsl(spec: TcEstimateSpec, header: string): string {
  const { rowTiles: F, subgroups: SG } = spec;
  const DT = spec.headDim / 16;
  const CT = COLS_PER_SUBGROUP / 16;
  const R = spec.rowsPerBlock;
  const RS = 16 * F; // strided query rows of the workgroup (and of each subgroup)
  const LPR = 2 / F; // lanes per row
  const CL = COLS_PER_SUBGROUP / LPR; // columns per lane
  const NBL = CL / R; // blocks per lane
  const TILE = RS * COLS_PER_SUBGROUP;
  // Scores of the subgroup's RS rows × 64 columns into its scratch, chunks past colEnd left zero.
  const scoreTile = `
${seq(F, (f) => seq(CT, (c) => `    var acc${f}${c} = subgroup_matrix_result<f32, 16, 16>();`))}
    for (var s = 0u; s < P.stride; s++) {
      let qRow = qBase + (i0 * P.stride + P.stride - 1u - s) * P.qStrideL;
      let kRow = kBase + (j0 * P.stride + s) * P.kStrideL;
${seq(DT, (d) => `      {
${seq(F, (f) => `        let left${f} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Q, qRow + ${f}u * qTile + ${d * 16}u, P.stride * P.qStrideL);`)}
${seq(CT, (c) => `        if (j0 + ${c * 16}u < colEnd) {
          let right = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&K, kRow + ${c}u * kTile + ${d * 16}u, P.stride * P.kStrideL);
${seq(F, (f) => `          acc${f}${c} = subgroupMatrixMultiplyAccumulate(left${f}, right, acc${f}${c});`)}
        }`)}
      }`)}
    }
    workgroupBarrier(); // the previous group's scratch has been read
${seq(F, (f) => seq(CT, (c) => `    subgroupMatrixStore<row_major>(&scratch, sg * ${TILE}u + ${f * 16 * COLS_PER_SUBGROUP + c * 16}u, acc${f}${c}, ${COLS_PER_SUBGROUP}u);`))}
    workgroupBarrier();
    let jl = j0 + side * ${CL}u; // this lane's first column`;
  // Column cc of this lane's part, block step t and column step c (see the header: the swizzle).
  const walk = (body: string, after = '') => `
    for (var t = 0u; t < ${NBL}u; t++) {
      let cb = ((t + rotB) % ${NBL}u) * R;
${body}
${after}
    }`;
  return /* wgsl */ `
${SUBGROUP_MATRIX_PRELUDE}

${header}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Q: array<f16>;
@group(0) @binding(2) var<storage, read> K: array<f16>;
@group(0) @binding(3) var<storage, read_write> W: array<f32>; // [B, H, nQB, nKB], zeroed

// Per subgroup: ${RS} rows × ${COLS_PER_SUBGROUP} columns of scores.  [SG][${RS}][${COLS_PER_SUBGROUP}]
var<workgroup> scratch: array<f32, ${SG * TILE}>;
var<workgroup> partM: array<f32, ${SG * RS}>; // [SG][${RS}] row max over the subgroup's columns
var<workgroup> partL: array<f32, ${SG * RS}>; // [SG][${RS}] row sum at that max

const R: u32 = ${R}u;
const MASKED: f32 = -3.0e38;

fn validEntry(i: u32, j: u32, colEnd: u32) -> bool {
  return j < colEnd && (!CAUSAL || i32(j) <= i32(i) + P.causalOffset);
}

@compute @workgroup_size(${SG * 32})
fn main(@builtin(workgroup_id) wg: vec3u,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let i0 = wg.x * ${RS}u; // first strided query row of the workgroup
  let qBase = P.qOffset + b * P.qStrideB + h * P.qStrideH;
  let kBase = P.kOffset + b * P.kStrideB + (h / P.groupSize) * P.kStrideH;
  let qTile = 16u * P.stride * P.qStrideL;
  let kTile = 16u * P.stride * P.kStrideL;
  var colEnd = P.keyCols;
  if (CAUSAL) { colEnd = u32(clamp(i32(i0) + ${RS} + P.causalOffset, 0, i32(P.keyCols))); }
  // This lane's part of the subgroup's scratch: row lane/${LPR}, columns [side·${CL}, +${CL}).
  let row = lane / ${LPR}u;
  let side = lane % ${LPR}u;
  let qa = row / R; // query block within the workgroup
  let r = row % R;
  let rotB = ${spec.swizzle ? `qa + ${RS / R}u * side` : '0u'};
  let rotC = ${spec.swizzle ? 'r' : '0u'};
  let mine = sg * ${TILE}u + row * ${COLS_PER_SUBGROUP}u + side * ${CL}u;

  // Pass 1: online max and sum of each row over the columns this lane sees.
  var m = MASKED;
  var l = 0.0;
  for (var g0 = 0u; g0 < colEnd; g0 += ${SG * COLS_PER_SUBGROUP}u) {
    let j0 = g0 + sg * ${COLS_PER_SUBGROUP}u;
${scoreTile}
${walk(`      for (var c = 0u; c < R; c++) {
        let cc = cb + (c + rotC) % R;
        if (validEntry(i0 + row, jl + cc, colEnd)) {
          let x = scratch[mine + cc] * P.scaleOverStride;
          if (x > m) { l *= exp(m - x); m = x; }
          l += exp(x - m);
        }
      }`)}
  }
  // Over the lanes of a row, then over the subgroups (every lane combines its own row).
${LPR === 2 ? `  let mo = subgroupShuffleXor(m, 1u);
  let lo = subgroupShuffleXor(l, 1u);
  let mp = max(m, mo);
  let lp = l * exp(m - mp) + lo * exp(mo - mp);` : `  let mp = m;
  let lp = l;`}
  if (side == 0u) { partM[sg * ${RS}u + row] = mp; partL[sg * ${RS}u + row] = lp; }
  workgroupBarrier();
  var rowMax = MASKED;
  for (var g = 0u; g < ${SG}u; g++) { rowMax = max(rowMax, partM[g * ${RS}u + row]); }
  var rowSum = 0.0;
  for (var g = 0u; g < ${SG}u; g++) { rowSum += partL[g * ${RS}u + row] * exp(partM[g * ${RS}u + row] - rowMax); }
  let rowInv = select(0.0, 1.0 / rowSum, rowSum > 0.0);

  // Pass 2: each block's mass: the lane's row part, then over the block's R rows (lanes LPR apart).
  let a0 = wg.x * ${RS / R}u; // first query block of the workgroup
  for (var g0 = 0u; g0 < colEnd; g0 += ${SG * COLS_PER_SUBGROUP}u) {
    let j0 = g0 + sg * ${COLS_PER_SUBGROUP}u;
${scoreTile}
${walk(`      var part = 0.0;
      for (var c = 0u; c < R; c++) {
        let cc = cb + (c + rotC) % R;
        if (validEntry(i0 + row, jl + cc, colEnd)) { part += exp(scratch[mine + cc] * P.scaleOverStride - rowMax); }
      }
      part *= rowInv;`, `${seq(Math.log2(R), (k) => `      part += subgroupShuffleXor(part, ${LPR << k}u);`)}
      let kb = (jl + cb) / R;
      if (r == 0u && kb < P.numKeyBlocks && jl + cb < colEnd) {
        W[((b * P.heads + h) * P.numQueryBlocks + a0 + qa) * P.numKeyBlocks + kb] = part;
      }`)}
  }
}
`;
}

export const tcEstimateProgram: KernelProgram<TcEstimateSpec, TcEstimateParam, TcEstimateShape> = {
  name: 'tc-xattention-estimate',
  params: tcEstimateParams,
  bindings: () => [{ name: 'q', kind: 'read-only-storage' }, { name: 'k', kind: 'read-only-storage' }, { name: 'blockSums', kind: 'storage' }],
  constants: (spec) => ({ causal: spec.causal }),
  workgroupSize: (spec) => spec.subgroups * 32,
  wgsl: tcEstimateWgsl,
  supports(spec, shape, limits) {
    const rowUnit = 16 * spec.rowTiles * shape.stride;
    const colUnit = 16 * shape.stride;
    if (shape.queryLength % rowUnit) return `query length ${shape.queryLength} is not a multiple of ${16 * spec.rowTiles}·stride = ${rowUnit}`;
    if (shape.keyLength % colUnit) return `key length ${shape.keyLength} is not a multiple of 16·stride = ${colUnit}`;
    const bytes = workgroupBytes(spec);
    if (bytes > limits.maxComputeWorkgroupStorageSize) return `needs ${bytes} B of workgroup memory, device has ${limits.maxComputeWorkgroupStorageSize}`;
    const groups = shape.queryLength / rowUnit;
    for (const [axis, n] of [['query row groups', groups], ['heads', shape.heads], ['batch', shape.batch]] as const) {
      if (n > limits.maxComputeWorkgroupsPerDimension) return `${axis} = ${n} workgroups exceeds maxComputeWorkgroupsPerDimension`;
    }
    return null;
  },
};

/** The tensor-core spec for this call, or why it cannot take it (the portable kernel then does). */
export function tensorCoreEstimateSpec(
  device: GPUDevice, q: GpuTensorView, k: GpuTensorView, rowsPerBlock: number, stride: number, causal: boolean, tc: TcEstimateOptions = {},
): TcEstimateSpec | string {
  if (tc.emulate) {
    if (!device.features.has('shader-f16')) return 'the adapter has no shader-f16 (needed even by the emulated tensor-core kernel)';
  } else if (!hasTensorCores(device)) return 'the adapter has no f16→f32 16×16×16 subgroup-matrix configuration';
  if (q.dtype !== 'f16' || k.dtype !== 'f16') return 'tensor cores take f16 q and k';
  if (q.headDim !== 64 && q.headDim !== 128) return `head dim ${q.headDim} is not 64 or 128`;
  if (rowsPerBlock !== 4 && rowsPerBlock !== 8 && rowsPerBlock !== 16) return `blockSize / stride = ${rowsPerBlock} is not 4, 8 or 16`;
  const rowTiles = tc.rowTiles ?? 1;
  const unit = 16 * stride;
  if (q.length % unit || k.length % unit) return `lengths ${q.length}/${k.length} are not multiples of 16·stride = ${unit}`;
  if (q.length % (rowTiles * unit)) return `query length ${q.length} is not a multiple of ${16 * rowTiles}·stride = ${rowTiles * unit} (rowTiles ${rowTiles})`;
  return { headDim: q.headDim, rowsPerBlock, causal, rowTiles, subgroups: tc.subgroups ?? 4, swizzle: tc.swizzle ?? true, ...(tc.emulate ? { emulate: true } : {}) };
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
    workgroups: [q.length / (16 * spec.rowTiles * p.stride), q.heads, q.batch],
  });
}
