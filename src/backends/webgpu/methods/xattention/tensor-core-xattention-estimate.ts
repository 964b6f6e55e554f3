/// <reference types="@webgpu/types" />
/**
 * XAttention estimation on tensor cores (subgroup matrices): the same W as webgpu-xattention-estimate.ts
 * (spec steps 1-5), for f16 q/k on adapters with f16→f32 16×16×16 configurations.
 *
 * The antidiagonal score is a plain matmul over a reduction of length S·D:
 *   A[i, j] = scale/S · Σ_{s<S} q(i·S + S-1-s) · k(j·S + s)
 * so for each (s, 16-wide slice d of the head dim) the left operand is 16 strided query rows at
 * token offset S-1-s (row stride S·qStrideL) and the right operand is 16 key columns at token
 * offset s (column stride S·kStrideL): strided subgroup-matrix loads (K's possibly staged, below).
 *
 * One workgroup = `subgroups` subgroups, each owning RS = 16·rowTiles strided query rows (so a row's
 * softmax never leaves its subgroup), stepping together over 64-column tiles up to the causal limit
 * of the workgroup's last row. Per tile and (s, d): rowTiles left loads from Q, 4 right fragments
 * (each feeding rowTiles products, rowTiles × 4 accumulators). With `stage` the 64 K rows of each s
 * are first copied into workgroup memory with 16-byte loads (one copy serves every subgroup; the
 * fragments then come from there), else each subgroup loads them strided from K.
 * passes 2, as the portable kernel: (1) per-row online max/sum; (2) scores again → softmax → each
 * R×R block's mass into W. passes 1: the scores once; each (row, key block)'s log-sum-exp into a
 * workspace [B, H, Lq/S, nKB], which xattention-lse-reduce.ts turns into W (exact in real arithmetic:
 * e^{lse − LSE_row} is the block's share of the row). Nothing of size (L/S)² exists.
 *
 * Scratch walk: a row has 64/LPR columns per lane (LPR = 2/rowTiles lanes per row). A lane walks its
 * columns block by block (R columns), so pass 2 sums a row's part of a block in a register and R
 * lanes add their rows with xor-shuffles. The scratch's row stride is 64 words, so a column's bank
 * is the column mod 32: with `swizzle` the lanes of query block qa (and side) start at block
 * qa + (RS/R)·side and lane r of a block at column r of it, so the 32 lanes always read 32 banks
 * (without, all 32 read one bank: kept to be measured).
 *
 * Requirements (tcEstimateProgram.supports): f16, D in {64, 128}, R in {4, 8, 16}, Lq a multiple of
 * RS·S and Lk of 16·S (loads never leave the tensors; every strided row is real); stage needs
 * K's offset and strides in multiples of 8 halves (else it is left off).
 * Workgroup memory: scratch f32 [subgroups][RS][64], staged K f16 [64][D + 8].
 *
 * `emulate` (tests only) rewrites the subgroup-matrix builtins into plain WGSL
 * (attention/tensor-core-emulation.wgsl.ts) so this data flow is checked on lavapipe.
 */
import { compileProgram, encodeProgram, type KernelProgram, ParamsLayout } from '../../runtime/program.js';
import type { GpuTensorView } from '../../runtime/buffers.js';
import { hasTensorCores } from '../../runtime/webgpu-device.js';
import { seq, SUBGROUP_MATRIX_PRELUDE } from '../../runtime/subgroup-matrix-wgsl.js';
import { emulateTensorCoreWgsl, emulationWorkgroupBytes } from '../../attention/tensor-core-emulation.wgsl.js';
import { takeWorkspace } from '../../runtime/workspace.js';
import { lseReduceProgram } from './xattention-lse-reduce.js';
import { GEMM_SUBGROUPS, gemmEstimateWgsl, gemmGrid, gemmWorkgroupBytes } from './tensor-core-xattention-gemm.wgsl.js';

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
  /** K slices staged in workgroup memory (16-byte loads, shared by the subgroups), else strided fragment loads. */
  readonly stage: boolean;
  /** Staged: the next slice's K loads issued into registers before this slice's products. */
  readonly prefetch: boolean;
  /**
   * 2: max/sum, then the scores again for W. 1: the scores once, each (row, key block)'s log-sum-exp
   * into a workspace f32 [B, H, Lq/S, nKB] that xattention-lse-reduce.ts turns into W (half the products).
   */
  readonly passes: 1 | 2;
  /**
   * Key columns per step (64 when absent): 32 halves the score scratch and the staged K slice, so
   * more workgroups fit on an SM and 2 row tiles fit staged with 4 subgroups (each left load then
   * feeds 2 products instead of 4).
   */
  readonly cols?: 32 | 64;
  /**
   * The next slice's Q fragments are loaded into registers before this slice's products (software
   * pipelining of the strided left loads, which otherwise wait on L2 right before their products).
   */
  readonly prefetchQ?: boolean;
  /**
   * One pass tiled as the ceiling GEMM (tensor-core-xattention-gemm.wgsl.ts): 128×128 score tiles,
   * both operands staged and double-buffered, the log-sum-exp as the epilogue. Ignores rowTiles,
   * subgroups, swizzle, stage, prefetch, cols and prefetchQ.
   */
  readonly gemm?: true;
  /** gemm: reduction depth per staged step (16 when absent), and panel addressing (tensor-core-xattention-gemm.wgsl.ts). */
  readonly gemmBk?: 16 | 32;
  readonly gemmPanels?: boolean;
  /** gemm, benchmarks only (wrong results): a stage left out (GemmEstimateSpec.gemmDiag). */
  readonly gemmDiag?: 'no-staging' | 'no-mma' | 'no-epilogue' | 'global-only' | 'stores-only';
  /** gemm: loads clamped into the operands instead of skipped by a test (GemmEstimateSpec.gemmClamp). */
  readonly gemmClamp?: boolean;
  /** Test-only: plain WGSL in place of the subgroup-matrix builtins (never chosen by the planner). */
  readonly emulate?: true;
};

/**
 * Caller's choices; defaults: passes 1 where its workspace fits a binding (else 2); gemm where passes
 * is 1, Q and K are 8-aligned and no row-kernel option below is given; the row-owning kernel's
 * rowTiles 1, subgroups 4, swizzle, stage (needs 8-aligned K strides) and prefetch true.
 */
export type TcEstimateOptions = { rowTiles?: 1 | 2; subgroups?: 2 | 4; swizzle?: boolean; stage?: boolean; prefetch?: boolean; passes?: 1 | 2; cols?: 32 | 64; prefetchQ?: boolean; gemm?: boolean; gemmBk?: 16 | 32; gemmPanels?: boolean; gemmDiag?: 'no-staging' | 'no-mma' | 'no-epilogue' | 'global-only' | 'stores-only'; gemmClamp?: boolean; emulate?: boolean };

// Key columns per step: each subgroup scores its rows × these (COLS/16 fragments per left load).
const colsOf = (spec: Pick<TcEstimateSpec, 'cols'>): 32 | 64 => spec.cols ?? 64;

export const tcEstimateParams = new ParamsLayout([
  ['heads', 'u32'], ['groupSize', 'u32'], ['stride', 'u32'], ['keyCols', 'u32'],
  ['causalOffset', 'i32'], ['scaleOverStride', 'f32'], ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'], ['queryRows', 'u32'],
  ['qOffset', 'u32'], ['qStrideB', 'u32'], ['qStrideH', 'u32'], ['qStrideL', 'u32'],
  ['kOffset', 'u32'], ['kStrideB', 'u32'], ['kStrideH', 'u32'], ['kStrideL', 'u32'],
  ['queryTiles', 'u32'], // gemm: query-row tiles, folded into the grid's y with the heads
] as const);

type TcEstimateParam = (typeof tcEstimateParams.fields)[number][0];

export interface TcEstimateShape {
  queryLength: number;
  keyLength: number;
  stride: number;
  heads: number;
  batch: number;
}

const KS = (spec: TcEstimateSpec) => spec.headDim + 8; // padded row stride of the staged K slice

const lseBytes = (batch: number, heads: number, queryRows: number, numKeyBlocks: number) => batch * heads * queryRows * numKeyBlocks * 4;

/** Workgroups along the strided query rows (the last one may have idle subgroups). */
const workgroupsX = (spec: TcEstimateSpec, queryRows: number) => Math.ceil(queryRows / (spec.subgroups * 16 * spec.rowTiles));

function workgroupBytes(spec: TcEstimateSpec): number {
  if (spec.gemm) return gemmWorkgroupBytes(spec); // no cross-lane operations: the emulation adds nothing
  const COLS = colsOf(spec);
  return spec.subgroups * 16 * spec.rowTiles * COLS * 4 + (spec.stage ? COLS * KS(spec) * 2 : 0) + (spec.emulate ? emulationWorkgroupBytes(spec.subgroups) : 0);
}

function tcEstimateWgsl(spec: TcEstimateSpec, header: string): string {
  const wgsl = spec.gemm ? gemmEstimateWgsl(spec, SUBGROUP_MATRIX_PRELUDE, header) : tcEstimateRealWgsl(spec, header);
  // P.keyCols is a positive multiple of 16, so twice it is at least 32.
  return spec.emulate ? emulateTensorCoreWgsl(wgsl, spec.gemm ? GEMM_SUBGROUPS : spec.subgroups, 'f32', '(P.keyCols * 2u)') : wgsl;
}

function tcEstimateRealWgsl(spec: TcEstimateSpec, header: string): string {
  const { rowTiles: F, subgroups: SG, stage } = spec;
  const D = spec.headDim;
  const DT = D / 16;
  const COLS = colsOf(spec);
  const CT = COLS / 16;
  const R = spec.rowsPerBlock;
  const RS = 16 * F; // strided query rows of a subgroup
  const LPR = 2 / F; // lanes per row
  const CL = COLS / LPR; // columns per lane
  const NBL = CL / R; // blocks per lane
  const TILE = RS * COLS;
  const pf = stage && spec.prefetch;
  const pq = spec.prefetchQ === true;
  const leftLoad = (row: string, f: number, d: number) => `subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Q, ${row} + ${f}u * qTile + ${d * 16}u, P.stride * P.qStrideL)`;
  const NPF = (COLS * D) / 8 / (SG * 32); // 16-byte K loads per invocation and slice
  const right = (c: number, d: number) => stage ? `&kv, ${c * 16 * KS(spec) + d * 16}u, ${KS(spec)}u` : `&K, kRow + ${c}u * kTile + ${d * 16}u, P.stride * P.kStrideL`;
  // Scores of the subgroup's RS rows × 64 columns into its scratch; chunks past sgEnd left zero.
  const scoreTile = `
${seq(F, (f) => seq(CT, (c) => `    var acc${f}${c} = subgroup_matrix_result<f32, 16, 16>();`))}
${pf ? seq(NPF, (n) => `    pre${n} = kSlice(kBase, j0, lid + ${n * SG * 32}u);`) : ''}
${pq ? `    // Slice 0's Q fragments (an idle subgroup reads row 0's: in bounds, never used).
    let q0Row = qBase + (select(0u, i0, live) * P.stride + P.stride - 1u) * P.qStrideL;
${seq(F, (f) => seq(DT, (d) => `    var lq${f}_${d} = ${leftLoad('q0Row', f, d)};`))}` : ''}
    for (var s = 0u; s < P.stride; s++) {
${pq ? '' : `      let qRow = qBase + (i0 * P.stride + P.stride - 1u - s) * P.qStrideL;
`}${stage ? `      workgroupBarrier(); // every subgroup is done with the previous slice
${pf ? seq(NPF, (n) => `      putK(lid + ${n * SG * 32}u, pre${n});`) : '      stageK(kBase + s * P.kStrideL, j0, lid);'}
      workgroupBarrier();
${pf ? `      if (s + 1u < P.stride) { // the next slice's loads fly during this slice's products
${seq(NPF, (n) => `        pre${n} = kSlice(kBase + (s + 1u) * P.kStrideL, j0, lid + ${n * SG * 32}u);`)}
      }` : ''}` : '      let kRow = kBase + (j0 * P.stride + s) * P.kStrideL;'}
      if (live) {
${pq ? `${seq(F, (f) => seq(DT, (d) => `        let cur${f}_${d} = lq${f}_${d};`))}
        if (s + 1u < P.stride) { // the next slice's fragments fly during this slice's products
          let qNext = qBase + (i0 * P.stride + P.stride - 2u - s) * P.qStrideL;
${seq(F, (f) => seq(DT, (d) => `          lq${f}_${d} = ${leftLoad('qNext', f, d)};`))}
        }` : ''}
${seq(DT, (d) => `        {
${seq(F, (f) => pq ? `          let left${f} = cur${f}_${d};` : `          let left${f} = ${leftLoad('qRow', f, d)};`)}
${seq(CT, (c) => `          if (j0 + ${c * 16}u < sgEnd) {
            let right = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(${right(c, d)});
${seq(F, (f) => `            acc${f}${c} = subgroupMatrixMultiplyAccumulate(left${f}, right, acc${f}${c});`)}
          }`)}
        }`)}
      }
    }
    workgroupBarrier(); // the previous tile's scratch has been read
${seq(F, (f) => seq(CT, (c) => `    subgroupMatrixStore<row_major>(&scratch, sg * ${TILE}u + ${f * 16 * COLS + c * 16}u, acc${f}${c}, ${COLS}u);`))}
    workgroupBarrier();
    let jl = j0 + side * ${CL}u; // this lane's first column`;
  // This lane's columns block by block (see the header: the swizzle).
  const walk = (body: string, after = '') => `
    for (var t = 0u; t < ${NBL}u; t++) {
      let cb = ((t + rotB) % ${NBL}u) * R;
${body}
${after}
    }`;
  const stageFn = `
// K rows of columns j0..j0+63 at one token offset (in base), zero past the last column.  [64][D + 8]
var<workgroup> kv: array<f16, ${COLS * KS(spec)}>;

// 8 halves i of the slice: column i / ${D / 8}, dims 8·(i % ${D / 8}).. (16 consecutive i: one 256-byte K row).
fn kSlice(base: u32, j0: u32, i: u32) -> vec4u {
  let r = i / ${D / 8}u;
  if (j0 + r >= P.keyCols) { return vec4u(); }
  return K[(base + (j0 + r) * P.stride * P.kStrideL) / 8u + i % ${D / 8}u];
}

fn putK(i: u32, v: vec4u) {
  let o = (i / ${D / 8}u) * ${KS(spec)}u + (i % ${D / 8}u) * 8u;
${seq(4, (w) => `  { let x = bitcast<vec2<f16>>(v[${w}]); kv[o + ${2 * w}u] = x.x; kv[o + ${2 * w + 1}u] = x.y; }`)}
}

fn stageK(base: u32, j0: u32, lid: u32) {
  for (var i = lid; i < ${COLS * D / 8}u; i += ${SG * 32}u) { putK(i, kSlice(base, j0, i)); }
}`;
  // Phase 0: online max and sum of each row over the columns this lane sees. Phase 1: each block's
  // mass: the lane's row part, then over the block's R rows (lanes LPR apart). One loop, so the
  // unrolled score tile exists once.
  const twoPasses = `  var m = MASKED;
  var l = 0.0;
  var rowMax = MASKED;
  var rowInv = 0.0;
  let wRow = ((b * P.heads + h) * P.numQueryBlocks + i0 / R + qa) * P.numKeyBlocks;
  for (var phase = 0u; phase < 2u; phase++) {
    for (var j0 = 0u; j0 < colEnd; j0 += ${COLS}u) {
${scoreTile}
      if (phase == 0u) {
${walk(`      for (var c = 0u; c < R; c++) {
        let cc = cb + (c + rotC) % R;
        if (validEntry(i0 + row, jl + cc, sgEnd)) {
          let x = scratch[mine + cc] * P.scaleOverStride;
          if (x > m) { l *= exp(m - x); m = x; }
          l += exp(x - m);
        }
      }`)}
      } else {
${walk(`      var part = 0.0;
      for (var c = 0u; c < R; c++) {
        let cc = cb + (c + rotC) % R;
        if (validEntry(i0 + row, jl + cc, sgEnd)) { part += exp(scratch[mine + cc] * P.scaleOverStride - rowMax); }
      }
      part *= rowInv;`, `${seq(Math.log2(R), (k) => `      part += subgroupShuffleXor(part, ${LPR << k}u);`)}
      let kb = (jl + cb) / R;
      if (live && r == 0u && kb < P.numKeyBlocks && jl + cb < sgEnd) { W[wRow + kb] = part; }`)}
      }
    }
    if (phase == 0u) {
${LPR === 2 ? `      // Over the two lanes of a row.
      let mo = subgroupShuffleXor(m, 1u);
      let lo = subgroupShuffleXor(l, 1u);
      rowMax = max(m, mo);
      let rowSum = l * exp(m - rowMax) + lo * exp(mo - rowMax);` : `      rowMax = m;
      let rowSum = l;`}
      rowInv = select(0.0, 1.0 / rowSum, rowSum > 0.0);
    }
  }`;
  // One pass: each (row, key block)'s log-sum-exp, lse = max + log Σ e^{x − max}, from the lane that
  // holds the block's R columns of the row; xattention-lse-reduce.ts makes W of them.
  const onePass = `  let lseRow = ((b * P.heads + h) * P.queryRows + i0 + row) * P.numKeyBlocks;
  for (var j0 = 0u; j0 < colEnd; j0 += ${COLS}u) {
${scoreTile}
${walk(`      var mb = MASKED;
      for (var c = 0u; c < R; c++) {
        let cc = cb + (c + rotC) % R;
        if (validEntry(i0 + row, jl + cc, sgEnd)) { mb = max(mb, scratch[mine + cc] * P.scaleOverStride); }
      }
      var sb = 0.0;
      for (var c = 0u; c < R; c++) {
        let cc = cb + (c + rotC) % R;
        if (validEntry(i0 + row, jl + cc, sgEnd)) { sb += exp(scratch[mine + cc] * P.scaleOverStride - mb); }
      }
      let kb = (jl + cb) / R;
      if (live && kb < P.numKeyBlocks && jl + cb < sgEnd) { LSE[lseRow + kb] = select(MASKED, mb + log(sb), sb > 0.0); }`)}
  }`;
  return /* wgsl */ `
${SUBGROUP_MATRIX_PRELUDE}

${header}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Q: array<f16>;
@group(0) @binding(2) var<storage, read> K: ${stage ? 'array<vec4u>' : 'array<f16>'};
${spec.passes === 1 ? '@group(0) @binding(3) var<storage, read_write> LSE: array<f32>; // [B, H, Lq/S, nKB]' : '@group(0) @binding(3) var<storage, read_write> W: array<f32>; // [B, H, nQB, nKB], zeroed'}

// Per subgroup: its ${RS} rows × ${COLS} columns of scores.  [SG][${RS}][${COLS}]
var<workgroup> scratch: array<f32, ${SG * TILE}>;
${stage ? stageFn : ''}

const R: u32 = ${R}u;
const MASKED: f32 = -3.0e38;

fn validEntry(i: u32, j: u32, end: u32) -> bool {
  return j < end && (!CAUSAL || i32(j) <= i32(i) + P.causalOffset);
}

// The causal column limit after rows [0, rowEnd): every key column when not causal.
fn colLimit(rowEnd: u32) -> u32 {
  if (CAUSAL) { return u32(clamp(i32(rowEnd) + P.causalOffset, 0, i32(P.keyCols))); }
  return P.keyCols;
}

@compute @workgroup_size(${SG * 32})
fn main(@builtin(workgroup_id) wg: vec3u,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let i0 = (wg.x * ${SG}u + sg) * ${RS}u; // first strided query row of the subgroup
  // A subgroup past the last row takes part in the barriers (and staging) only.
  let live = i0 < P.queryRows;
  let qBase = P.qOffset + b * P.qStrideB + h * P.qStrideH;
  let kBase = P.kOffset + b * P.kStrideB + (h / P.groupSize) * P.kStrideH;
  let qTile = 16u * P.stride * P.qStrideL;
  let kTile = 16u * P.stride * P.kStrideL;
  let colEnd = colLimit(min(wg.x * ${SG * RS}u + ${SG * RS}u, P.queryRows)); // the workgroup's
  let sgEnd = min(colLimit(i0 + ${RS}u), colEnd); // this subgroup's
  // This lane's part of the subgroup's scratch: row lane/${LPR}, columns [side·${CL}, +${CL}).
  let row = lane / ${LPR}u;
  let side = lane % ${LPR}u;
  let qa = row / R; // query block within the subgroup
  let r = row % R;
  let rotB = ${spec.swizzle ? `qa + ${RS / R}u * side` : '0u'};
  let rotC = ${spec.swizzle ? 'r' : '0u'};
  let mine = sg * ${TILE}u + row * ${COLS}u + side * ${CL}u;
${pf ? seq(NPF, (n) => `  var pre${n}: vec4u; // the next K slice`) : ''}

${spec.passes === 1 ? onePass : twoPasses}
}
`;
}

export const tcEstimateProgram: KernelProgram<TcEstimateSpec, TcEstimateParam, TcEstimateShape> = {
  name: 'tc-xattention-estimate',
  params: tcEstimateParams,
  bindings: (spec) => [{ name: 'q', kind: 'read-only-storage' }, { name: 'k', kind: 'read-only-storage' }, { name: spec.passes === 1 ? 'lse' : 'blockSums', kind: 'storage' }],
  constants: (spec) => ({ causal: spec.causal }),
  workgroupSize: (spec) => (spec.gemm ? GEMM_SUBGROUPS : spec.subgroups) * 32,
  wgsl: tcEstimateWgsl,
  supports(spec, shape, limits) {
    const rowUnit = 16 * spec.rowTiles * shape.stride;
    const colUnit = 16 * shape.stride;
    if (shape.queryLength % rowUnit) return `query length ${shape.queryLength} is not a multiple of ${16 * spec.rowTiles}·stride = ${rowUnit}`;
    if (shape.keyLength % colUnit) return `key length ${shape.keyLength} is not a multiple of 16·stride = ${colUnit}`;
    if (spec.passes === 1) {
      const lse = lseBytes(shape.batch, shape.heads, shape.queryLength / shape.stride, Math.ceil(shape.keyLength / (shape.stride * spec.rowsPerBlock)));
      if (lse > Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize)) return `one pass needs a ${lse} B lse workspace, over the device's buffer limits`;
    }
    const bytes = workgroupBytes(spec);
    if (bytes > limits.maxComputeWorkgroupStorageSize) return `needs ${bytes} B of workgroup memory, device has ${limits.maxComputeWorkgroupStorageSize}`;
    if (spec.gemm && spec.passes !== 1) return 'the GEMM-tiled estimate is one pass only';
    const rows = shape.queryLength / shape.stride;
    const { grid } = gemmGrid(rows, shape.keyLength / shape.stride, shape.heads, shape.batch);
    const axes = spec.gemm
      ? [['key-column tiles', grid[0]], ['query-row tiles × heads', grid[1]], ['batch', grid[2]]] as const
      : [['query row groups', workgroupsX(spec, rows)], ['heads', shape.heads], ['batch', shape.batch]] as const;
    for (const [axis, n] of axes) {
      if (n > limits.maxComputeWorkgroupsPerDimension) return `${axis} = ${n} workgroups exceeds maxComputeWorkgroupsPerDimension`;
    }
    return null;
  },
};

const ROW_KERNEL_OPTIONS = ['rowTiles', 'subgroups', 'swizzle', 'stage', 'prefetch', 'cols', 'prefetchQ'] as const;

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
  const aligned = k.offset % 8 === 0 && k.strideB % 8 === 0 && k.strideH % 8 === 0 && k.strideL % 8 === 0;
  const stage = (tc.stage ?? true) && aligned;
  const qAligned = q.offset % 8 === 0 && q.strideB % 8 === 0 && q.strideH % 8 === 0 && q.strideL % 8 === 0;
  // One pass with prefetched staging: 10.0 ms at 32K on the H200 against 25.7 for two passes unprefetched
  // (bench/results/2026-12-04-h200/xattn-estimate*.json); two where the lse workspace exceeds a binding.
  const lse = lseBytes(q.batch, q.heads, q.length / stride, Math.ceil(k.length / (stride * rowsPerBlock)));
  const lseFits = lse <= Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  const passes = tc.passes ?? (lseFits ? 1 : 2);
  // The GEMM tiling by default wherever it runs and no option of the row-owning kernel is asked for:
  // 3.41 against 8.78 ms at 32K, 48.4 against 130.5 ms at 128K on the H200 (bench/results/2026-12-04e-h200/).
  const rowKernelAsked = ROW_KERNEL_OPTIONS.some((o) => tc[o] !== undefined);
  const gemmFits = gemmWorkgroupBytes({ headDim: q.headDim, rowsPerBlock }) <= device.limits.maxComputeWorkgroupStorageSize;
  const gemm = tc.gemm ?? (!rowKernelAsked && passes === 1 && aligned && qAligned && gemmFits);
  if (gemm) {
    // Panels and 32-deep steps: 3.41 ms at 32K and 48.4 at 128K on the H200 against 5.70 / 80.8 flat with
    // 16-deep steps (32-deep alone is slower: 8.45 / 128.6; bench/results/2026-12-04e-h200/est-gemm2.json).
    // 32-deep needs 48 KiB of workgroup memory: 16-deep where the device has less. Clamped loads (no
    // branch in the loop): 2.95 / 41.0 against 3.47 / 48.3 (bench/results/2026-12-04f-h200/plan-clamp.json).
    const gemmBk = tc.gemmBk ?? (gemmWorkgroupBytes({ headDim: q.headDim, rowsPerBlock, gemmBk: 32 }) <= device.limits.maxComputeWorkgroupStorageSize ? 32 : 16);
    if (passes !== 1) return `the GEMM-tiled estimate is one pass only (${lseFits ? 'passes 2 asked for' : `its ${lse} B lse workspace exceeds the device's buffer limits`})`;
    if (!aligned || !qAligned) return 'the GEMM-tiled estimate needs Q and K offsets and strides in multiples of 8 halves (16-byte loads)';
    return { headDim: q.headDim, rowsPerBlock, causal, rowTiles: 1, subgroups: GEMM_SUBGROUPS, swizzle: true, stage: true, prefetch: true, passes: 1, gemm: true,
      ...(gemmBk === 32 ? { gemmBk: 32 } : {}), ...((tc.gemmPanels ?? true) ? { gemmPanels: true } : {}),
      ...(tc.gemmDiag ? { gemmDiag: tc.gemmDiag } : {}), ...((tc.gemmClamp ?? true) ? { gemmClamp: true } : {}), ...(tc.emulate ? { emulate: true } : {}) };
  }
  return {
    headDim: q.headDim, rowsPerBlock, causal, rowTiles, subgroups: tc.subgroups ?? 4, swizzle: tc.swizzle ?? true, stage, prefetch: stage && (tc.prefetch ?? true), passes,
    ...(tc.cols === 32 ? { cols: 32 } : {}), ...(tc.prefetchQ ? { prefetchQ: true } : {}), ...(tc.emulate ? { emulate: true } : {}),
  };
}

/**
 * Encodes the estimation of W into `blockScores` (zeroed); with passes 1 also the lse workspace and
 * the reduce dispatch. Returns what to destroy once submitted (the workspace then goes back to its pool).
 */
export async function encodeTensorCoreEstimate(
  device: GPUDevice, encoder: GPUCommandEncoder, q: GpuTensorView, k: GpuTensorView, blockScores: GPUBuffer, spec: TcEstimateSpec,
  p: { stride: number; scale: number; keyCols: number; causalOffset: number; numQueryBlocks: number; numKeyBlocks: number },
): Promise<{ destroy(): void }[]> {
  const queryRows = q.length / p.stride;
  // The lse workspace passes from call to call (runtime/workspace.ts): 1 GiB at 128K, H=32, B=128.
  const taken = spec.passes === 1 ? takeWorkspace(device, 'xattention.lse', lseBytes(q.batch, q.heads, queryRows, p.numKeyBlocks)) : undefined;
  const lse = taken?.buffer;
  const compiled = await compileProgram(device, tcEstimateProgram, spec);
  const owned: { destroy(): void }[] = taken ? [taken] : [];
  const gemm = gemmGrid(queryRows, p.keyCols, q.heads, q.batch);
  owned.push(encodeProgram(device, encoder, tcEstimateProgram, compiled, {
    params: {
      heads: q.heads, groupSize: q.heads / k.heads, stride: p.stride, keyCols: p.keyCols, causalOffset: p.causalOffset,
      scaleOverStride: p.scale / p.stride, numQueryBlocks: p.numQueryBlocks, numKeyBlocks: p.numKeyBlocks, queryRows,
      qOffset: q.offset, qStrideB: q.strideB, qStrideH: q.strideH, qStrideL: q.strideL,
      kOffset: k.offset, kStrideB: k.strideB, kStrideH: k.strideH, kStrideL: k.strideL, queryTiles: gemm.queryTiles,
    },
    buffers: { q: q.buffer, k: k.buffer, ...(lse ? { lse } : { blockSums: blockScores }) },
    workgroups: spec.gemm ? gemm.grid : [workgroupsX(spec, queryRows), q.heads, q.batch],
  }));
  if (lse) {
    const reduce = await compileProgram(device, lseReduceProgram, {});
    owned.push(encodeProgram(device, encoder, lseReduceProgram, reduce, {
      params: {
        heads: q.heads, queryRows, numQueryBlocks: p.numQueryBlocks, numKeyBlocks: p.numKeyBlocks,
        rowsPerBlock: spec.rowsPerBlock, causal: spec.causal ? 1 : 0, causalOffset: p.causalOffset,
      },
      buffers: { lse, blockSums: blockScores },
      workgroups: [p.numQueryBlocks, q.heads, q.batch],
    }));
  }
  return owned;
}
