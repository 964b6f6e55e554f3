/**
 * The one-pass tensor-core XAttention estimate tiled as the ceiling GEMM (bench/ceiling-kernel.ts):
 * the antidiagonal scores are the product A·Bᵀ with a reduction of length S·D,
 *   A[i, (s, d)] = q(i·S + S-1-s, d),   B[j, (s, d)] = k(j·S + s, d),
 * and each (strided row, key block)'s log-sum-exp is the epilogue, written into the lse workspace
 * that xattention-lse-reduce.ts turns into W (as `passes: 1` of tensor-core-xattention-estimate.ts).
 *
 * Why: the row-owning kernel multiplies a 64-row × 64-column tile per workgroup with its Q fragments
 * read strided from L2 before each product and two barriers per staged K slice; it ran at 31 TFLOP/s
 * at 32K on the H200 against 237 for the ceiling GEMM. Here a workgroup owns a 128×128 tile of
 * scores, 2×2 subgroups each 64×64 (4×4 accumulators, as the ceiling's best 8192³ variant), and every
 * K step of 16 or 32 (one token offset s, that many of the D dims) stages both operands through
 * workgroup memory with 16-byte loads, double-buffered: the next step's loads are in registers while
 * this step multiplies, one barrier per step. The log-sum-exp needs only a row's R columns of one
 * block, so it is local to the tile: no online softmax across tiles, no second pass. H200: 3.41 ms at
 * 32K and 48.4 at 128K (panels, 32-deep) against 8.78 / 130.5 for the row-owning kernel.
 *
 * Workgroup memory: A and B [2 stages][128][BK + 8 pad] f16 (the pad puts the 16-byte rows of one
 * fragment load in distinct banks), and a 16×32 f32 strip per subgroup for the epilogue: 32 KiB with
 * 16-deep steps, 48 KiB with 32.
 * Grid: x = key-column tiles, y = query-row tiles × heads, z = batch; a causal tile whose first
 * column is past every row's limit returns at once. Requirements (checked by the caller): f16, D 64
 * or 128, R in {4, 8, 16}, Q and K offsets and strides multiples of 8 halves, passes 1.
 */
import { seq } from '../../runtime/subgroup-matrix-wgsl.js';

/** Tile of scores per workgroup (strided rows × strided key columns). */
export const GEMM_TILE = 128;
const SUB = 64; // rows (and columns) per subgroup: 2×2 subgroups
const FR = SUB / 16; // 16×16 fragments per subgroup side
const STRIP = 32; // columns of the epilogue's strip

export const GEMM_SUBGROUPS = 4;

export interface GemmEstimateSpec {
  readonly headDim: 64 | 128;
  readonly rowsPerBlock: 4 | 8 | 16;
  /** Reduction depth per staged step (default 16): 32 halves the barriers, and fills the 48 KiB of workgroup memory. */
  readonly gemmBk?: 16 | 32;
  /**
   * Operands staged as one panel per (stage, subgroup row or column), so that each fragment load
   * takes a panel pointer and a constant offset, which robustness can prove in bounds (about 30% off
   * this kernel on the H200, +16% in the ceiling GEMM). Emulated kernels address the same bytes flat.
   */
  readonly gemmPanels?: boolean;
  /**
   * Benchmarks only; the result is wrong. Each leaves one stage out to see what it costs:
   * 'no-staging' stages the first step into both buffers once and then only multiplies (with the
   * barriers); 'no-mma' stages every step but multiplies nothing; 'no-epilogue' stores the
   * accumulators but computes and writes no log-sum-exp (one word per workgroup keeps them live);
   * 'global-only' makes only the global reads (folded into one word) and barriers; 'stores-only' only
   * the workgroup stores (of made-up values) and barriers.
   */
  readonly gemmDiag?: 'no-staging' | 'no-mma' | 'no-epilogue' | 'global-only' | 'stores-only';
  /**
   * Rows and columns past the operands are read clamped to the last one (the epilogue drops their
   * scores), and the last step re-reads itself into the idle stage, so that no load or store sits
   * behind a branch (as the ceiling GEMM's). Without it, loads past the ends are skipped by a test.
   */
  readonly gemmClamp?: boolean;
  readonly emulate?: true;
}

const bkOf = (spec: GemmEstimateSpec): 16 | 32 => spec.gemmBk ?? 16;
const pitchOf = (spec: GemmEstimateSpec) => bkOf(spec) + 8; // padded row pitch of the staged operands (halves)

export function gemmWorkgroupBytes(spec: GemmEstimateSpec): number {
  return 2 * 2 * GEMM_TILE * pitchOf(spec) * 2 + GEMM_SUBGROUPS * 16 * STRIP * 4;
}

/** Workgroups [x, y, z] for a call: query-row tiles are folded into y with the heads. */
export function gemmGrid(queryRows: number, keyCols: number, heads: number, batch: number): { grid: [number, number, number]; queryTiles: number } {
  const queryTiles = Math.ceil(queryRows / GEMM_TILE);
  return { grid: [Math.ceil(keyCols / GEMM_TILE), queryTiles * heads, batch], queryTiles };
}

export function gemmEstimateWgsl(spec: GemmEstimateSpec, prelude: string, header: string): string {
  const D = spec.headDim;
  const BK = bkOf(spec);
  const AP = pitchOf(spec);
  const DT = D / BK; // K steps per token offset
  const R = spec.rowsPerBlock;
  const NBL = 16 / R; // blocks of a lane's 16 columns in the epilogue
  const T = GEMM_TILE;
  const PANEL = SUB * AP; // halves of one panel: 64 rows (or columns) of one stage
  const panels = spec.gemmPanels === true && !spec.emulate;
  const diag = spec.gemmDiag;
  const clamp = spec.gemmClamp === true;
  // Row (column) whose data a chunk reads: clamped into the operand, or as is behind the live test.
  const srcRow = (base: string, n: number, limit: string) => clamp ? `min(${base} + ${rowOf(n)}, ${limit} - 1u)` : `(${base} + ${rowOf(n)})`;
  const doMma = diag !== 'no-mma' && diag !== 'global-only' && diag !== 'stores-only';
  const doLoads = diag !== 'no-staging' && diag !== 'stores-only';
  const doStores = diag !== 'no-staging' && diag !== 'global-only';
  // Chunks of 8 halves per step: 128 rows × BK/8 per operand, over 128 threads: chunk q = lid + 128·n
  // is row q / (BK/8), piece q % (BK/8).
  const PER = BK / 8;
  const chunks = Array.from({ length: PER }, (_, n) => n);
  const rowOf = (n: number) => `(lid / ${PER}u + ${(n * 128) / PER}u)`;
  const acc = (m: number, n: number) => `acc${m}_${n}`;
  // Workgroup arrays: [4 panels = 2 stages × 2][64][AP], as panels or one flat array.
  const decl = (name: string) => panels ? `var<workgroup> ${name}: array<array<f16, ${PANEL}>, 4>;` : `var<workgroup> ${name}: array<f16, ${4 * PANEL}>;`;
  const elem = (name: string, panel: string, off: string) => panels ? `${name}[${panel}][${off}]` : `${name}[${panel} * ${PANEL}u + ${off}]`;
  // Fragment pointer and offset (no parentheses or commas in the offset: the emulation parses it).
  const frag = (name: string, panel: string, off: string) => panels ? `&${name}[${panel}], ${off}` : `&${name}, ${panel}Flat + ${off}`;
  return /* wgsl */ `
${prelude}

${header}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Q: array<vec4u>;
@group(0) @binding(2) var<storage, read> K: array<vec4u>;
@group(0) @binding(3) var<storage, read_write> LSE: array<f32>; // [B, H, Lq/S, nKB]

// Staged operands, [stage · 2 + subgroup row (A) or column (B)][64][${BK} halves + pad]
${decl('As')}
${decl('Bs')}
// Per subgroup: 16 rows × 32 columns of its scores at a time, for the epilogue.  [4][16][32]
var<workgroup> scratch: array<f32, ${GEMM_SUBGROUPS * 16 * STRIP}>;

const R: u32 = ${R}u;
const MASKED: f32 = -3.0e38;

fn validEntry(i: u32, j: u32) -> bool {
  return j < P.keyCols && (!CAUSAL || i32(j) <= i32(i) + P.causalOffset);
}

${clamp ? `fn loadQ(g: u32, live: bool) -> vec4u { return Q[g / 8u]; }
fn loadK(g: u32, live: bool) -> vec4u { return K[g / 8u]; }` : `fn loadQ(g: u32, live: bool) -> vec4u {
  if (live) { return Q[g / 8u]; }
  return vec4u();
}

fn loadK(g: u32, live: bool) -> vec4u {
  if (live) { return K[g / 8u]; }
  return vec4u();
}`}

${['A', 'B'].map((x) => `fn put${x}(p: u32, o: u32, v: vec4u) {
${seq(4, (w) => `  { let x = bitcast<vec2<f16>>(v[${w}]); ${elem(`${x}s`, 'p', `o + ${2 * w}u`)} = x.x; ${elem(`${x}s`, 'p', `o + ${2 * w + 1}u`)} = x.y; }`)}
}`).join('\n\n')}

@compute @workgroup_size(${GEMM_SUBGROUPS * 32})
fn main(@builtin(workgroup_id) wg: vec3u,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let tm = wg.y % P.queryTiles;
  let h = wg.y / P.queryTiles;
  let row0 = tm * ${T}u;
  let col0 = wg.x * ${T}u;
  let lastRow = min(row0 + ${T}u, P.queryRows) - 1u;
  if (CAUSAL && i32(col0) > i32(lastRow) + P.causalOffset) { return; } // workgroup-uniform

  let qBase = P.qOffset + b * P.qStrideB + h * P.qStrideH;
  let kBase = P.kOffset + b * P.kStrideB + (h / P.groupSize) * P.kStrideH;
  let hoff = (lid % ${PER}u) * 8u; // which 8 halves of the step's ${BK}
${chunks.map((n) => `  let aLive${n} = row0 + ${rowOf(n)} < P.queryRows;
  let bLive${n} = col0 + ${rowOf(n)} < P.keyCols;
  // Token offset s = 0 of the row / column; step (s, dc) adds -s·qStrideL (A) or s·kStrideL (B) and dc.
  let aG${n} = qBase + (${srcRow('row0', n, 'P.queryRows')} * P.stride + P.stride - 1u) * P.qStrideL + hoff;
  let bG${n} = kBase + ${srcRow('col0', n, 'P.keyCols')} * P.stride * P.kStrideL + hoff;
  let sP${n} = ${rowOf(n)} / ${SUB}u; // panel within a stage
  let sO${n} = (${rowOf(n)} % ${SUB}u) * ${AP}u + hoff;`).join('\n')}
${chunks.map((n) => `  var pa${n}: vec4u;\n  var pb${n}: vec4u;`).join('\n')}

  let sm = sg / 2u;
  let sn = sg % 2u;
${seq(FR, (m) => seq(FR, (n) => `  var ${acc(m, n)} = subgroup_matrix_result<f32, 16, 16>();`))}

  let steps = P.stride * ${DT}u;
  // Step 0 into stage 0.
${chunks.map((n) => `  pa${n} = loadQ(aG${n}, aLive${n});\n  pb${n} = loadK(bG${n}, bLive${n});`).join('\n')}
${chunks.map((n) => `  putA(sP${n}, sO${n}, pa${n});\n  putB(sP${n}, sO${n}, pb${n});`).join('\n')}
${diag === 'no-staging' ? chunks.map((n) => `  putA(2u + sP${n}, sO${n}, pa${n});\n  putB(2u + sP${n}, sO${n}, pb${n});`).join('\n') : ''}
  workgroupBarrier();
  var sink = 0u;
  for (var t = 0u; t < steps; t++) {
    let nt = ${clamp ? 'min(t + 1u, steps - 1u)' : 't + 1u'};
    if (${!doLoads ? 'false' : clamp ? 'true' : 'nt < steps'}) { // the next step's loads fly during this step's products
      let s = nt / ${DT}u;
      let dc = (nt % ${DT}u) * ${BK}u;
${chunks.map((n) => `      pa${n} = loadQ(aG${n} - s * P.qStrideL + dc, aLive${n});\n      pb${n} = loadK(bG${n} + s * P.kStrideL + dc, bLive${n});`).join('\n')}
${diag === 'global-only' ? chunks.map((n) => `      sink ^= pa${n}.x ^ pa${n}.w ^ pb${n}.y ^ pb${n}.z;`).join('\n') : ''}
    }
    if (${doMma}) {
      let ap = (t & 1u) * 2u + sm;
      let bp = (t & 1u) * 2u + sn;
${panels ? '' : `      let apFlat = ap * ${PANEL}u;
      let bpFlat = bp * ${PANEL}u;`}
${seq(BK / 16, (kk) => `${seq(FR, (m) => `      let a${kk}_${m} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(${frag('As', 'ap', `${m * 16 * AP + kk * 16}u`)}, ${AP}u);`)}
${seq(FR, (n) => `      let b${kk}_${n} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(${frag('Bs', 'bp', `${n * 16 * AP + kk * 16}u`)}, ${AP}u);`)}
${seq(FR, (m) => seq(FR, (n) => `      ${acc(m, n)} = subgroupMatrixMultiplyAccumulate(a${kk}_${m}, b${kk}_${n}, ${acc(m, n)});`))}`)}
    }
    if (${!doStores ? 'false' : clamp ? 'true' : 'nt < steps'}) {
      let sp = ((t + 1u) & 1u) * 2u; // the idle stage (with clamping, the last step re-reads itself there)
${diag === 'stores-only' ? chunks.map((n) => `      pa${n} = vec4u(t, lid, t ^ lid, t + lid);\n      pb${n} = pa${n};`).join('\n') : ''}
${chunks.map((n) => `      putA(sp + sP${n}, sO${n}, pa${n});\n      putB(sp + sP${n}, sO${n}, pb${n});`).join('\n')}
    }
    workgroupBarrier();
  }

  // Epilogue, 16 rows × 32 columns of the subgroup's 64×64 at a time: lane = (row er, side) owns 16
  // columns, ${NBL} block(s) of R; blocks and columns are walked rotated by the row so that the 32
  // lanes read 32 banks (the strip's row pitch is 32 words).
  let er = lane / 2u;
  let side = lane % 2u;
  let rotB = er / R;
  let rotC = er % R;
  let strip = sg * ${16 * STRIP}u;
  let mine = strip + er * ${STRIP}u + side * 16u;
  let lseHead = (b * P.heads + h) * P.queryRows;
${seq(FR, (m) => seq(FR / 2, (hc) => `  workgroupBarrier(); // the previous strip has been read
${seq(2, (n) => `  subgroupMatrixStore<row_major>(&scratch, strip + ${n * 16}u, ${acc(m, 2 * hc + n)}, ${STRIP}u);`)}
  workgroupBarrier();
  if (${diag === 'no-epilogue' ? 'false' : 'true'}) {
    let i = row0 + sm * ${SUB}u + ${m * 16}u + er;
    let jl = col0 + sn * ${SUB}u + ${hc * STRIP}u + side * 16u;
    for (var t = 0u; t < ${NBL}u; t++) {
      let cb = ((t + rotB) % ${NBL}u) * R;
      if (i < P.queryRows && validEntry(i, jl + cb)) {
        var mb = MASKED;
        for (var c = 0u; c < R; c++) {
          let cc = cb + (c + rotC) % R;
          if (validEntry(i, jl + cc)) { mb = max(mb, scratch[mine + cc] * P.scaleOverStride); }
        }
        var sb = 0.0;
        for (var c = 0u; c < R; c++) {
          let cc = cb + (c + rotC) % R;
          if (validEntry(i, jl + cc)) { sb += exp(scratch[mine + cc] * P.scaleOverStride - mb); }
        }
        LSE[(lseHead + i) * P.numKeyBlocks + (jl + cb) / R] = mb + log(sb);
      }
    }
  }`))}
${diag === 'no-epilogue' ? '  if (lid == 0u) { LSE[(lseHead + row0) * P.numKeyBlocks + col0 / R] = scratch[0]; } // keeps the products live' : ''}
${diag === 'global-only' ? '  if (sink == 0x9e3779b9u) { LSE[lid] = 1.0; } // keeps the reads live' : ''}
}
`;
}
