/// <reference types="@webgpu/types" />
/**
 * XAttention block selection on the GPU (spec xattention.md step 6/7; CPU twin: selectBlocks in
 * methods/xattention/antidiagonal-estimate.ts). One workgroup per query-block row (b, h, a):
 *
 *   W row [nKB] (block sums) → kept-block bitmap flags [rows, ceil(nKB/32)] and counts [rows]
 *
 * The CPU visits the candidate blocks in descending W (ties: lower block first) and keeps each while
 * the kept mass is below tau·Σ W, so the block that crosses the threshold is kept too. Kept mass is
 * non-decreasing, so that loop keeps candidate c exactly when
 *   forced + Σ_{c' ranked before c} W[c'] < tau·Σ W
 * and both algorithms evaluate that rule for every candidate independently:
 *   'sort'  (rows of up to `capacity` blocks; capacity/8 threads): the candidates (W, block) in
 *           workgroup memory, padded to a power of two n with entries that rank last, bitonic-sorted
 *           by rank, each thread holding a group of 8 positions in registers for up to three steps
 *           between barriers (about 20 barriers at n = 1024 instead of 55); the exclusive prefix of
 *           the sorted W (each group's 8 in order, then a scan of the group masses) is Σ before
 *           each position. Workgroup memory at capacity 2048: 22.3 KiB.
 *   'tiled' (any row length; 64 threads): each thread ranks its own candidates by a scan over the
 *           row, staged through workgroup memory in tiles of `capacity` blocks: O(nKB²) per row.
 * H200, 32 heads, 128K tokens, blockSize 128 (nKB = 1024), causal: 11.1 ms tiled, 1.44 ms sorted;
 * 256K (nKB = 2048) 84.7 → 5.2 ms. The host picks the sort for rows of 129 .. capacity blocks.
 * The sums run in different orders (rank-order groups, index-order tiles, f64 on the CPU), so a
 * candidate whose kept mass lands within f32 rounding of tau·Σ W can go either way (6 rows of
 * 32768 sorted, 10 tiled, against the CPU on random W at 128K); dyadic W decide alike everywhere.
 * Causal: blocks 0 and the diagonal block are forced (their mass counted once), candidates are the
 * blocks left of the diagonal, nothing right of it is kept. The diagonal is the block holding the
 * key position of the query block's last query (diagonalBlock on the CPU). Non-causal: every block
 * is a candidate, and block 0 is kept in any case (the reference's gather marks it).
 */
import { type KernelProgram, ParamsLayout } from '../../runtime/program.js';

export const SELECT_TILE = 256;
/** Most blocks per row the sort holds: 2048 (W, block) pairs, 18 KiB of workgroup memory with padding. */
export const SELECT_SORT_CAPACITY = 2048;
/**
 * Rows of this many blocks or fewer take the tiled scan: its O(nKB²) is still cheaper than the
 * sort's barriers (H200: 128 blocks 0.13 ms tiled vs 0.20 ms sorted, 256 blocks 0.33 vs 0.20 ms).
 */
export const SELECT_TILED_UP_TO = 128;
const TILED_WORKGROUP = 64;

export type XAttentionSelectSpec = { readonly algorithm: 'tiled' | 'sort'; readonly capacity: number };

export const xattentionSelectParams = new ParamsLayout([
  ['heads', 'u32'], ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'], ['blockSize', 'u32'],
  ['queryLength', 'u32'], ['keyLength', 'u32'], ['causal', 'u32'], ['threshold', 'f32'], ['flagWords', 'u32'],
] as const);

export type XAttentionSelectParamName = (typeof xattentionSelectParams.fields)[number][0];

export interface XAttentionSelectShape { workgroupsX: number; numKeyBlocks: number }

// The sort gives each thread one group of 8 positions: 256 threads at the default capacity.
const workgroupSize = (spec: XAttentionSelectSpec): number => (spec.algorithm === 'sort' ? spec.capacity / 8 : TILED_WORKGROUP);

/** Bytes of workgroup memory a variant declares (the buffers at the top of its WGSL). */
function workgroupBytes(spec: XAttentionSelectSpec): number {
  const n = workgroupSize(spec);
  return spec.algorithm === 'sort' ? spec.capacity * 9 + n * 16 + (spec.capacity / 32) * 4 + 4 : n * 4 + spec.capacity * 4 + 4;
}

export const xattentionSelectProgram: KernelProgram<XAttentionSelectSpec, XAttentionSelectParamName, XAttentionSelectShape> = {
  name: 'xattention-select',
  params: xattentionSelectParams,
  bindings: () => [{ name: 'blockSums', kind: 'read-only-storage' }, { name: 'flags', kind: 'storage' }, { name: 'counts', kind: 'storage' }],
  constants: (spec) => ({ workgroupSize: workgroupSize(spec), capacity: spec.capacity }),
  workgroupSize,
  supports(spec, shape, limits) {
    const max = limits.maxComputeWorkgroupsPerDimension;
    if (shape.workgroupsX > max) return `${shape.workgroupsX} query blocks exceed maxComputeWorkgroupsPerDimension ${max}`;
    if (workgroupSize(spec) > limits.maxComputeInvocationsPerWorkgroup) return `needs ${workgroupSize(spec)} invocations per workgroup, device has ${limits.maxComputeInvocationsPerWorkgroup}`;
    if (workgroupBytes(spec) > limits.maxComputeWorkgroupStorageSize) return `needs ${workgroupBytes(spec)} B of workgroup memory, device has ${limits.maxComputeWorkgroupStorageSize}`;
    if (spec.algorithm === 'sort' && shape.numKeyBlocks > spec.capacity) return `${shape.numKeyBlocks} key blocks exceed the sort capacity ${spec.capacity}`;
    return null;
  },
  wgsl: (spec, header) => `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> blockSums: array<f32>;             // W [B, H, nQB, nKB]
@group(0) @binding(2) var<storage, read_write> flags: array<atomic<u32>>;   // [B·H·nQB, flagWords], zeroed
@group(0) @binding(3) var<storage, read_write> counts: array<u32>;          // [B·H·nQB]
${spec.algorithm === 'sort' ? SORT_WGSL : TILED_WGSL}`,
};

/**
 * The variant for rows of `numKeyBlocks` blocks: the sort for rows longer than SELECT_TILED_UP_TO
 * that fit it where the device gives it its workgroup, else the tiled scan. `algorithm` forces one
 * (tests run both on one input).
 */
export function selectSpec(numKeyBlocks: number, limits: GPUSupportedLimits, algorithm: 'auto' | 'tiled' | 'sort' = 'auto'): XAttentionSelectSpec {
  const sort: XAttentionSelectSpec = { algorithm: 'sort', capacity: SELECT_SORT_CAPACITY };
  if (algorithm === 'sort') return sort;
  const tiled: XAttentionSelectSpec = { algorithm: 'tiled', capacity: SELECT_TILE };
  if (algorithm === 'tiled') return tiled;
  const fits = xattentionSelectProgram.supports(sort, { workgroupsX: 1, numKeyBlocks }, limits) === null;
  return numKeyBlocks > SELECT_TILED_UP_TO && fits ? sort : tiled;
}

// Shared by both bodies: the row, its required mass and its candidates [firstCandidate, candidateEnd).
const ROW_WGSL = /* wgsl */ `
  let a = wg.x;
  let row = (wg.z * P.heads + wg.y) * P.numQueryBlocks + a;
  let nKB = P.numKeyBlocks;
  let wRow = row * nKB;
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
  let candidateEnd = select(nKB, diagonal, causal);`;

const TILED_WGSL = /* wgsl */ `
var<workgroup> part: array<f32, WORKGROUP_SIZE>;  // [64] partial sums of the row total
var<workgroup> tileW: array<f32, CAPACITY>;       // [CAPACITY] W[t0 .. t0 + CAPACITY) of the row
var<workgroup> kept: atomic<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
${ROW_WGSL}
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

  for (var cBase = 0u; cBase < nKB; cBase += WORKGROUP_SIZE) {
    let c = cBase + lid;
    let wc = blockSums[wRow + min(c, nKB - 1u)];
    var before = 0.0;  // mass of the candidates ranked before c
    for (var t0 = firstCandidate; t0 < candidateEnd; t0 += CAPACITY) {
      let n = min(CAPACITY, candidateEnd - t0);
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
`;

/**
 * Compare-exchange of registers x and y (y the higher position) so the pair ends in rank order
 * where x's position i has i & k == 0, reversed elsewhere: the direction of a bitonic merge of width k.
 */
const exchange = (x: number, y: number, i: string) => `  {
    let s = ranksBefore(w${y}, b${y}, w${x}, b${x}) == (((${i}) & k) == 0u);
    let tw = select(w${x}, w${y}, s); w${y} = select(w${y}, w${x}, s); w${x} = tw;
    let tb = select(b${x}, b${y}, s); b${y} = select(b${y}, b${x}, s); b${x} = tb;
  }`;
const registers = [0, 1, 2, 3, 4, 5, 6, 7];
/** The four exchanges of one step at register bit q (registers x and x + 2^q, bit q of x clear). */
const step = (q: number, i: (x: number) => string) => registers.filter((x) => !((x >> q) & 1)).map((x) => exchange(x, x | (1 << q), i(x))).join('\n');

// Each thread holds a group of 8 positions in registers w0..w7 / b0..b7 (W, block): register x of
// group g is position base | (x << low), base = g with three zero bits inserted at bit `low`.
// Padding ranks after every real candidate: the lowest finite W, and a block index above any real
// one for the tie (a real W of -inf or NaN makes tau·Σ W keep no candidate anyway).
const SORT_WGSL = /* wgsl */ `
const PAD_W: f32 = -0x1.fffffep+127f;
const PAD_BLOCK: u32 = 0xffffffffu;
// Positions are stored at p + p / 8: a group's 8 registers (strides 1 .. 2^low) then hit distinct
// banks across a warp instead of 8-way conflicts at low = 0.
const PADDED: u32 = CAPACITY + CAPACITY / 8u;

var<workgroup> sortW: array<f32, PADDED>;               // [CAPACITY + CAPACITY/8] W by position, padded
var<workgroup> sortBlock: array<u32, PADDED>;           // [CAPACITY + CAPACITY/8] block of each position
var<workgroup> part: array<vec2<f32>, 2u * WORKGROUP_SIZE>;  // [2, 256] (group mass, row-total partial), scanned ping-pong
var<workgroup> bits: array<atomic<u32>, CAPACITY / 32u>;  // [CAPACITY / 32] the row's kept-block bitmap
var<workgroup> kept: atomic<u32>;

fn slot(p: u32) -> u32 { return p + (p >> 3u); }

// x ranks before y: larger W first, equal W the lower block first (selectBlocks' order).
fn ranksBefore(wx: f32, bx: u32, wy: f32, by: u32) -> bool {
  return wx > wy || (wx == wy && bx < by);
}

// Merges of width 2, 4, 8 (all inside one group of consecutive positions), loaded from the row.
fn sortEight(g: u32, wRow: u32, first: u32, m: u32) {
${registers.map((x) => `  var w${x} = PAD_W;\n  var b${x} = PAD_BLOCK;\n  if (8u * g + ${x}u < m) { w${x} = blockSums[wRow + first + 8u * g + ${x}u]; b${x} = first + 8u * g + ${x}u; }`).join('\n')}
  var k = 2u;
${step(0, (x) => `8u * g + ${x}u`)}
  k = 4u;
${step(1, (x) => `8u * g + ${x}u`)}
${step(0, (x) => `8u * g + ${x}u`)}
  k = 8u;
${step(2, (x) => `8u * g + ${x}u`)}
${step(1, (x) => `8u * g + ${x}u`)}
${step(0, (x) => `8u * g + ${x}u`)}
${registers.map((x) => `  sortW[slot(8u * g + ${x}u)] = w${x};\n  sortBlock[slot(8u * g + ${x}u)] = b${x};`).join('\n')}
}

// The steps of merge width k at position bits hi down to low (at most three) on group g.
fn mergeSteps(g: u32, low: u32, hi: u32, k: u32) {
  let base = ((g >> low) << (low + 3u)) | (g & ((1u << low) - 1u));
${registers.map((x) => `  var w${x} = sortW[slot(base | (${x}u << low))];\n  var b${x} = sortBlock[slot(base | (${x}u << low))];`).join('\n')}
${[2, 1, 0].map((q) => `  if (low + ${q}u <= hi) {\n${step(q, (x) => `base | (${x}u << low)`)}\n  }`).join('\n')}
${registers.map((x) => `  sortW[slot(base | (${x}u << low))] = w${x};\n  sortBlock[slot(base | (${x}u << low))] = b${x};`).join('\n')}
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
${ROW_WGSL}
  let m = select(0u, candidateEnd - firstCandidate, candidateEnd > firstCandidate);
  // Sort length n = 2^logN: m rounded up to a power of two, at least one group; uniform (wg and P).
  let logN = max(32u - countLeadingZeros(max(m, 1u) - 1u), 3u);
  let groups = (1u << logN) / 8u;
  if (lid == 0u) { atomicStore(&kept, 0u); }
  for (var i = lid; i < CAPACITY / 32u; i += WORKGROUP_SIZE) { atomicStore(&bits[i], 0u); }
  var own = 0.0;
  for (var c = lid; c < nKB; c += WORKGROUP_SIZE) { own += blockSums[wRow + c]; }
  if (lid < groups) { sortEight(lid, wRow, firstCandidate, m); }
  workgroupBarrier();
  // Merges of width 16 .. n; each pass does up to three steps in registers between barriers.
  for (var s = 4u; s <= logN; s++) {
    for (var top = s; top > 0u; top -= min(top, 3u)) {
      if (lid < groups) { mergeSteps(lid, top - min(top, 3u), top - 1u, 1u << s); }
      workgroupBarrier();
    }
  }

  // Exclusive prefix of the sorted W: each group's 8 positions in order, then a Hillis-Steele scan
  // of the group masses, carrying the row-total partials along for tau·Σ W.
${registers.map((x) => `  var w${x} = 0.0;\n  var b${x} = PAD_BLOCK;`).join('\n')}
  var groupMass = 0.0;
  if (lid < groups) {
${registers.map((x) => `    if (8u * lid + ${x}u < m) { w${x} = sortW[slot(8u * lid + ${x}u)]; b${x} = sortBlock[slot(8u * lid + ${x}u)]; groupMass += w${x}; }`).join('\n')}
  }
  // Two halves, read one and write the other, so each round needs one barrier, not two.
  var src = 0u;
  part[lid] = vec2<f32>(groupMass, own);
  workgroupBarrier();
  for (var off = 1u; off < WORKGROUP_SIZE; off <<= 1u) {
    var sum = part[src + lid];
    if (lid >= off) { sum += part[src + lid - off]; }
    src = WORKGROUP_SIZE - src;
    part[src + lid] = sum;
    workgroupBarrier();
  }
  let required = P.threshold * part[src + WORKGROUP_SIZE - 1u].y;
  var before = 0.0;  // mass of the candidates ranked before the position at hand
  if (lid > 0u) { before = part[src + lid - 1u].x; }
  var ownKept = 0u;
${registers.map((x) => `  if (b${x} != PAD_BLOCK && (b${x} == 0u || forced + before < required)) {
    atomicOr(&bits[b${x} / 32u], 1u << (b${x} % 32u));
    ownKept++;
  }
  before += w${x};`).join('\n')}
  if (lid == 0u && causal) {
    atomicOr(&bits[0], 1u);
    atomicOr(&bits[diagonal / 32u], 1u << (diagonal % 32u));
    ownKept += select(2u, 1u, diagonal == 0u);
  }
  if (ownKept != 0u) { atomicAdd(&kept, ownKept); }
  workgroupBarrier();
  for (var i = lid; i < P.flagWords; i += WORKGROUP_SIZE) {
    let word = atomicLoad(&bits[i]);
    if (word != 0u) { atomicOr(&flags[row * P.flagWords + i], word); }
  }
  if (lid == 0u) { counts[row] = atomicLoad(&kept); }
}
`;
