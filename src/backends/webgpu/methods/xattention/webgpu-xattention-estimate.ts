/// <reference types="@webgpu/types" />
/**
 * XAttention estimation on the GPU (spec xattention.md steps 1-5; CPU twin: accumulateStripe /
 * estimateXAttention in methods/xattention-estimate.ts):
 *
 *   A[i, j] = scale/S · Σ_{s<S} q(i·S + S-1-s) · k(j·S + s)      Qs rows reversed, Ks rows forward
 *   valid(i, j) = i < ceil(Lq/S), j < ceil(Lk/S) and, causal, j <= i + ceil(Lk/S) - ceil(Lq/S)
 *   P[i, :] = softmax of row i over its valid j (f32);  W[a, kb] = Σ P over the R×R tile (a, kb)
 *
 *   q [B, H, Lq, D], k [B, Hkv, Lk, D] (views: any layout, f32 or f16) → W f32 [B, H, nQB, nKB]
 *
 * One workgroup of 64 threads per query-block stripe (a, h, b): the stripe's R = B/S strided rows
 * against every key column up to its causal limit, in groups of GROUP_COLS <= 64·U columns. A thread
 * owns U = COLS_PER_THREAD columns of a group (lid + 64u) and computes the R × U scores at once in
 * registers: per head-dim vec4, U K loads and R Q loads (the same rows for every thread: a
 * broadcast) feed U·R dot products. U is 4 on GPUs; 1 on software adapters, where the code size of
 * the tile costs seconds of LLVM compile time per variant. Two passes over the columns: (1) per-thread online max/sum of
 * each row, reduced over the workgroup; (2) the scores again, softmaxed, summed per column into
 * colMass, then per block into W. Recomputing instead of keeping the stripe's scores costs one
 * extra QKᵀ/S but needs no scratch: nothing of size (L/S)² exists, and W [nQB × nKB] is the only
 * O(L²) buffer. A group is whole blocks (GROUP_COLS = R·floor(64U/R)), so every block's columns lie
 * in one group and W needs no atomics.
 */
import type { DType } from '../../../../core/tensor.js';
import { type KernelProgram, ParamsLayout } from '../../runtime/program.js';

export const ESTIMATE_WORKGROUP = 64;
/** Largest B/S: each thread keeps R scores and the R rows' max and 1/sum in registers. */
export const MAX_ROWS_PER_BLOCK = 128;

export type XAttentionEstimateSpec = {
  readonly dtype: DType;
  /**
   * Size of the per-thread row arrays: R = B/S, the strided rows (and columns) of a block, when
   * unrolled; when rolled, R rounded up to a power of two >= 8 (rowCapacity()), so that one
   * pipeline serves several block sizes and strides.
   */
  readonly rowCapacity: number;
  /**
   * 'unrolled': loops over the R rows have a constant bound (GPU compilers unroll them and keep the
   * per-row arrays in registers). 'rolled': the bound comes from Params, which cuts lavapipe's LLVM
   * compile time several-fold (see AttentionSpec.headDimLoop).
   */
  readonly rowLoop: 'unrolled' | 'rolled';
  /** U: key columns each thread scores at once (columnsPerThread()). */
  readonly columnsPerThread: number;
};

export interface XAttentionEstimateShape {
  /** R = B/S of the call. */
  rowsPerBlock: number;
  numQueryBlocks: number;
  heads: number;
  batch: number;
  headDim: number;
  maxBindingBytes: number;
}

export const xattentionEstimateParams = new ParamsLayout([
  ['heads', 'u32'], ['groupSize', 'u32'], ['queryLength', 'u32'], ['keyLength', 'u32'],
  ['stride', 'u32'], ['queryRows', 'u32'], ['keyCols', 'u32'], ['causalOffset', 'i32'],
  ['causal', 'u32'], ['scaleOverStride', 'f32'], ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'],
  ['headDimVec4', 'u32'], ['rowsPerBlock', 'u32'], ['groupCols', 'u32'], ['qOffset', 'u32'], ['qStrideB', 'u32'], ['qStrideH', 'u32'],
  ['qStrideL', 'u32'], ['kOffset', 'u32'], ['kStrideB', 'u32'], ['kStrideH', 'u32'], ['kStrideL', 'u32'],
] as const);

export type XAttentionEstimateParamName = (typeof xattentionEstimateParams.fields)[number][0];

/** The spec's rowCapacity for R = B/S: R itself when unrolled, else R rounded up to a power of two >= 8. */
export function rowCapacity(rowsPerBlock: number, rowLoop: XAttentionEstimateSpec['rowLoop']): number {
  return rowLoop === 'unrolled' ? rowsPerBlock : Math.max(8, 2 ** Math.ceil(Math.log2(rowsPerBlock)));
}

/** U for a row capacity: 4 columns per thread when unrolled (GPUs), else the fewest that hold a block. */
export function columnsPerThread(rowCapacity: number, rowLoop: XAttentionEstimateSpec['rowLoop']): number {
  return Math.max(rowLoop === 'unrolled' ? 4 : 1, Math.ceil(rowCapacity / ESTIMATE_WORKGROUP));
}

/** Columns per group: whole blocks filling the workgroup's 64·U column slots (see the file header). */
export function groupColumns(rowsPerBlock: number, columnsPerThread: number): number {
  return rowsPerBlock * Math.floor((ESTIMATE_WORKGROUP * columnsPerThread) / rowsPerBlock);
}

export const xattentionEstimateProgram: KernelProgram<XAttentionEstimateSpec, XAttentionEstimateParamName, XAttentionEstimateShape> = {
  name: 'xattention-estimate',
  params: xattentionEstimateParams,
  bindings: () => [{ name: 'q', kind: 'read-only-storage' }, { name: 'k', kind: 'read-only-storage' }, { name: 'blockSums', kind: 'storage' }],
  constants(spec) {
    // Unrolled: the exact group of R = rowCapacity. Rolled: colMass holds the largest group.
    const u = spec.columnsPerThread;
    const g = spec.rowLoop === 'unrolled' ? groupColumns(spec.rowCapacity, u) : ESTIMATE_WORKGROUP * u;
    return { workgroupSize: ESTIMATE_WORKGROUP, rows: spec.rowCapacity, groupCols: g, colsPerThread: u };
  },
  workgroupSize: () => ESTIMATE_WORKGROUP,
  supports(spec, shape, limits) {
    if (shape.rowsPerBlock < 1 || shape.rowsPerBlock > MAX_ROWS_PER_BLOCK) return `blockSize / stride must be in [1, ${MAX_ROWS_PER_BLOCK}], got ${shape.rowsPerBlock}`;
    if (shape.rowsPerBlock > spec.rowCapacity) return `blockSize / stride = ${shape.rowsPerBlock} exceeds the variant's row capacity ${spec.rowCapacity}`;
    if (ESTIMATE_WORKGROUP * spec.columnsPerThread < spec.rowCapacity) return `${spec.columnsPerThread} columns per thread cannot hold a block of ${spec.rowCapacity} columns`;
    if (shape.headDim % 4 !== 0) return `head dim must be a multiple of 4 (vec4 loads), got ${shape.headDim}`;
    const maxGroups = limits.maxComputeWorkgroupsPerDimension;
    for (const [axis, n] of [['query blocks', shape.numQueryBlocks], ['heads', shape.heads], ['batch', shape.batch]] as const) {
      if (n > maxGroups) return `${axis} = ${n} workgroups exceeds maxComputeWorkgroupsPerDimension ${maxGroups}`;
    }
    if (shape.maxBindingBytes > limits.maxStorageBufferBindingSize) {
      return `a buffer of ${shape.maxBindingBytes} B exceeds maxStorageBufferBindingSize ${limits.maxStorageBufferBindingSize}`;
    }
    return null;
  },
  wgsl: estimateWgsl,
};

function estimateWgsl(spec: XAttentionEstimateSpec, header: string): string {
  const T = spec.dtype;
  // Loop bounds: constants (unrolled), or the same values from Params (rolled; arrays sized by capacity).
  const rolled = spec.rowLoop === 'rolled';
  const R = rolled ? 'P.rowsPerBlock' : 'ROWS';
  const G = rolled ? 'P.groupCols' : 'GROUP_COLS';
  return /* wgsl */ `${T === 'f16' ? 'enable f16;\n' : ''}${header}
// Running max of a row that has seen nothing; finite so exp(m - x) never makes inf - inf = NaN.
const MASKED: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> q: array<${T}>;
@group(0) @binding(2) var<storage, read> k: array<${T}>;
@group(0) @binding(3) var<storage, read_write> blockSums: array<f32>;  // W [B, H, nQB, nKB], zeroed

var<workgroup> redM: array<f32, WORKGROUP_SIZE>;   // [64] per-thread row max, reduced
var<workgroup> redL: array<f32, WORKGROUP_SIZE>;   // [64] per-thread row sum at that max
var<workgroup> colMass: array<f32, GROUP_COLS>;    // [GROUP_COLS] softmax mass of each column of a group
var<workgroup> rowMax: array<f32, ROWS>;           // [ROWS] max of each strided row of the stripe
var<workgroup> rowInv: array<f32, ROWS>;           // [ROWS] 1 / softmax denominator (0 for padding rows)

fn loadQ4(e: u32) -> vec4<f32> { return vec4<f32>(f32(q[e]), f32(q[e + 1u]), f32(q[e + 2u]), f32(q[e + 3u])); }
fn loadK4(e: u32) -> vec4<f32> { return vec4<f32>(f32(k[e]), f32(k[e + 1u]), f32(k[e + 2u]), f32(k[e + 3u])); }

fn validEntry(i: u32, j: u32) -> bool {
  return i < P.queryRows && j < P.keyCols && (P.causal == 0u || i32(j) <= i32(i) + P.causalOffset);
}

// The thread's register tile: s[u][r] = A[i0 + r, g0 + lid + 64u] (module scope: no array copies).
var<private> s: array<array<f32, ROWS>, COLS_PER_THREAD>;

// Fills s for the group starting at column g0. Queries and keys past Lq / Lk are the zero padding
// (add nothing); columns past the stripe's end are scored too and ignored by the caller.
fn antidiagonals(qBase: u32, kBase: u32, i0: u32, g0: u32, lid: u32) {
  for (var u = 0u; u < COLS_PER_THREAD; u++) {
    for (var r = 0u; r < ${R}; r++) { s[u][r] = 0.0; }
  }
  for (var t = 0u; t < P.stride; t++) {
    var kRow: array<u32, COLS_PER_THREAD>;
    var kLive: array<f32, COLS_PER_THREAD>;  // 0 for keys past Lk (read clamped, counted as zero)
    for (var u = 0u; u < COLS_PER_THREAD; u++) {
      let kj = (g0 + lid + u * WORKGROUP_SIZE) * P.stride + t;
      kRow[u] = kBase + min(kj, P.keyLength - 1u) * P.kStrideL;
      kLive[u] = select(0.0, 1.0, kj < P.keyLength);
    }
    for (var d = 0u; d < P.headDimVec4; d++) {
      var kv: array<vec4<f32>, COLS_PER_THREAD>;
      for (var u = 0u; u < COLS_PER_THREAD; u++) { kv[u] = loadK4(kRow[u] + d * 4u) * kLive[u]; }
      for (var r = 0u; r < ${R}; r++) {
        let qi = (i0 + r) * P.stride + P.stride - 1u - t;
        if (qi < P.queryLength) {
          let qv = loadQ4(qBase + qi * P.qStrideL + d * 4u);
          for (var u = 0u; u < COLS_PER_THREAD; u++) { s[u][r] += dot(qv, kv[u]); }
        }
      }
    }
  }
  for (var u = 0u; u < COLS_PER_THREAD; u++) {
    for (var r = 0u; r < ${R}; r++) { s[u][r] *= P.scaleOverStride; }
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let a = wg.x;
  let h = wg.y;
  let b = wg.z;
  let qBase = P.qOffset + b * P.qStrideB + h * P.qStrideH;
  let kBase = P.kOffset + b * P.kStrideB + (h / P.groupSize) * P.kStrideH;
  let i0 = a * ${R};
  // Columns any row of the stripe sees: up to the causal limit of its last real row.
  let lastRow = i32(min(i0 + ${R}, P.queryRows)) - 1;
  let colEnd = select(P.keyCols, u32(clamp(lastRow + P.causalOffset + 1, 0, i32(P.keyCols))), P.causal != 0u);

  // Pass 1: each thread's online max m and sum l (at m) of every row over its columns.
  var m: array<f32, ROWS>;
  var l: array<f32, ROWS>;
  for (var r = 0u; r < ${R}; r++) { m[r] = MASKED; }
  for (var g0 = 0u; g0 < colEnd; g0 += ${G}) {
    antidiagonals(qBase, kBase, i0, g0, lid);
    for (var u = 0u; u < COLS_PER_THREAD; u++) {
      let c = lid + u * WORKGROUP_SIZE;
      let j = g0 + c;
      if (c < ${G} && j < colEnd) {
        for (var r = 0u; r < ${R}; r++) {
          let x = s[u][r];
          if (validEntry(i0 + r, j)) {
            if (x > m[r]) { l[r] *= exp(m[r] - x); m[r] = x; }
            l[r] += exp(x - m[r]);
          }
        }
      }
    }
  }
  // Row max and 1/sum over the workgroup, one row at a time.
  for (var r = 0u; r < ${R}; r++) {
    redM[lid] = m[r];
    redL[lid] = l[r];
    workgroupBarrier();
    for (var step = WORKGROUP_SIZE / 2u; step > 0u; step /= 2u) {
      if (lid < step) {
        let mx = max(redM[lid], redM[lid + step]);
        redL[lid] = redL[lid] * exp(redM[lid] - mx) + redL[lid + step] * exp(redM[lid + step] - mx);
        redM[lid] = mx;
      }
      workgroupBarrier();
    }
    if (lid == 0u) {
      rowMax[r] = redM[0];
      rowInv[r] = select(0.0, 1.0 / redL[0], redL[0] > 0.0);  // padding rows have no mass
    }
    workgroupBarrier();
  }

  // Pass 2: softmax mass per column, then per block (a block's columns all lie in one group).
  let wRow = ((b * P.heads + h) * P.numQueryBlocks + a) * P.numKeyBlocks;
  for (var g0 = 0u; g0 < colEnd; g0 += ${G}) {
    antidiagonals(qBase, kBase, i0, g0, lid);
    for (var u = 0u; u < COLS_PER_THREAD; u++) {
      let c = lid + u * WORKGROUP_SIZE;
      let j = g0 + c;
      if (c < ${G}) {
        var mass = 0.0;
        if (j < colEnd) {
          for (var r = 0u; r < ${R}; r++) {
            if (validEntry(i0 + r, j)) { mass += exp(s[u][r] - rowMax[r]) * rowInv[r]; }
          }
        }
        colMass[c] = mass;
      }
    }
    workgroupBarrier();
    for (var blk = lid; blk < ${G} / ${R}; blk += WORKGROUP_SIZE) {
      let kb = g0 / ${R} + blk;
      if (kb < P.numKeyBlocks) {
        var sum = 0.0;
        for (var c = 0u; c < ${R}; c++) { sum += colMass[blk * ${R} + c]; }
        blockSums[wRow + kb] = sum;
      }
    }
    workgroupBarrier();
  }
}
`;
}
