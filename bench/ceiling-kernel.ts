/**
 * WGSL for the ceiling GEMM: C = A·B with A [M, K] and B [K, N] row-major f16, C [M, N] row-major
 * f32, on subgroup matrices (f16 16×16×16 → f32; on NVIDIA, Vulkan cooperative matrices).
 *
 * One workgroup computes a BM×BN tile of C with SGM×SGN subgroups; subgroup (sm, sn) owns RM×RN
 * accumulators of 16×16 (RM = BM/16/SGM, RN = BN/16/SGN). Each K step of BK stages the A and B
 * tiles in workgroup memory:
 *   As: [stages·SGM panels][RM·16 rows][BK + pad]   the rows subgroup row sm multiplies
 *   Bs: [stages·SGN panels][BK rows][RN·16 + pad]   the columns subgroup column sn multiplies
 * Why panels: a subgroup's matrix loads then take a pointer to its own panel and a constant offset
 * and stride, which robustness can prove in bounds (it predicates every load whose offset it cannot
 * see), and the pad makes the 16-byte rows of one 8×8 load fall in distinct banks.
 * `panels: false` keeps the same bytes but addresses one flat array with run-time offsets.
 *
 * Staging: 'vec' reads 16 bytes (vec4<u32>, 8 halves) per thread from global memory and writes them
 * as f16 (no f32 round trip); 'matrix' moves whole 16×16 tiles with subgroupMatrixLoad from global
 * and subgroupMatrixStore into the panel. Double buffering (stages = 2): the next K step is read
 * into registers before this step's multiplies and written to the other stage after them, so one
 * barrier per step separates writers and readers.
 *
 * `emulate` replaces the subgroup-matrix builtins with plain WGSL of the same data flow (a fragment
 * is read from workgroup memory at multiply time, which is equivalent because no barrier separates
 * the load from its use), so the staging, panel and epilogue indexing run on adapters without
 * subgroup matrices (lavapipe); subgroups are then lid / 32.
 */

export interface GemmVariant {
  readonly bm: number; readonly bn: number; readonly bk: number;
  readonly sgm: number; readonly sgn: number;
  readonly stages: 1 | 2;
  readonly staging: 'vec' | 'matrix';
  readonly panels: boolean;
  /** Halves appended to each workgroup-memory row. */
  readonly pad: number;
  /**
   * K steps read ahead into registers (2 needs stages = 2): with 2, a global read has two steps'
   * multiplies to arrive in instead of one, at the cost of a second register set.
   */
  readonly prefetch?: 1 | 2;
  /**
   * Diagnostics that leave a stage out (results are then wrong, and not validated): 'mma-only'
   * stages the first K tile once and runs only the fragment loads, multiplies and barriers;
   * 'staging-only' runs only the global reads, workgroup stores and barriers; 'global-only' (vec
   * staging) only the global reads (folded into one word, so that they stay live) and barriers;
   * 'stores-only' (vec staging) only the workgroup stores, of made-up values, and barriers.
   */
  readonly diag?: 'mma-only' | 'staging-only' | 'global-only' | 'stores-only';
}

export interface GemmShape { readonly M: number; readonly N: number; readonly K: number }

export interface GemmProgram {
  readonly code: string;
  readonly grid: [number, number];
  readonly threads: number;
  readonly smemBytes: number;
  readonly rm: number;
  readonly rn: number;
}

export function variantName(v: GemmVariant): string {
  return `${v.bm}x${v.bn}x${v.bk} sg${v.sgm}x${v.sgn} ${v.stages === 2 ? 'db' : 'sb'} ${v.staging} ${v.panels ? 'panel' : 'flat'} pad${v.pad}${v.prefetch === 2 ? ' pf2' : ''}${v.diag ? ` [${v.diag}]` : ''}`;
}

const seq = (n: number, f: (i: number) => string): string => Array.from({ length: n }, (_, i) => f(i)).join('\n');
const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);

/** Throws naming the first constraint the variant or shape breaks. */
export function checkVariant(v: GemmVariant, s: GemmShape): { rm: number; rn: number } {
  const rm = v.bm / 16 / v.sgm, rn = v.bn / 16 / v.sgn;
  if (!Number.isInteger(rm) || !Number.isInteger(rn) || rm < 1 || rn < 1) throw new Error(`tile ${v.bm}x${v.bn} does not split into 16×16 blocks over ${v.sgm}x${v.sgn} subgroups`);
  if (v.bk % 16 !== 0) throw new Error(`bk must be a multiple of 16, got ${v.bk}`);
  if (v.pad % 8 !== 0) throw new Error(`pad must keep rows 16-byte aligned (a multiple of 8 halves), got ${v.pad}`);
  if (v.prefetch === 2 && (v.stages !== 2 || (s.K / v.bk) % 2 !== 0)) throw new Error(`prefetch 2 needs stages 2 and an even number of K steps, got stages ${v.stages}, ${s.K / v.bk} steps`);
  if (s.M % v.bm || s.N % v.bn || s.K % v.bk) throw new Error(`shape ${s.M}x${s.N}x${s.K} is not a multiple of the tile ${v.bm}x${v.bn}x${v.bk}`);
  return { rm, rn };
}

export function gemmProgram(v: GemmVariant, s: GemmShape, emulate: boolean): GemmProgram {
  const { rm: RM, rn: RN } = checkVariant(v, s);
  const { bm: BM, bn: BN, bk: BK, sgm: SGM, sgn: SGN, stages: ST } = v;
  const SG = SGM * SGN, T = SG * 32;
  const AP = BK + v.pad, BP = RN * 16 + v.pad; // row pitches (halves)
  const PA = RM * 16 * AP, PB = BK * BP; // panel sizes (halves)
  const KT = s.K / BK;
  const vec = v.staging === 'vec';

  // Element and matrix-pointer expressions for panel p at offset o, in either addressing mode.
  const elem = (arr: 'As' | 'Bs', p: string, o: string) => v.panels ? `${arr}[${p}][${o}]` : `${arr}[(${p}) * ${arr === 'As' ? PA : PB}u + ${o}]`;
  const mptr = (arr: 'As' | 'Bs', p: string, o: string) => v.panels ? `&${arr}[${p}], ${o}` : `&${arr}, (${p}) * ${arr === 'As' ? PA : PB}u + ${o}`;

  const loadFrag = (side: 'left' | 'right', p: string, o: string) => {
    const arr = side === 'left' ? 'As' : 'Bs';
    const pitch = side === 'left' ? AP : BP;
    return emulate ? `Frag(${p}, ${o})` : `subgroupMatrixLoad<subgroup_matrix_${side}<f16, 16, 16>, row_major>(${mptr(arr, p, o)}, ${pitch}u)`;
  };
  const mma = (a: string, b: string, c: string) => emulate ? `${c} = emuMma(${a}, ${b}, ${c}, lane);` : `${c} = subgroupMatrixMultiplyAccumulate(${a}, ${b}, ${c});`;

  const acc = (m: number, n: number) => `c${m}_${n}`;
  const compute = (stage: string) => '    {\n' + seq(BK / 16, (kk) => [
    seq(RM, (m) => `    let a${kk}_${m} = ${loadFrag('left', `${stage} * ${SGM}u + sm`, `${m * 16 * AP + kk * 16}u`)};`),
    seq(RN, (n) => `    let b${kk}_${n} = ${loadFrag('right', `${stage} * ${SGN}u + sn`, `${kk * 16 * BP + n * 16}u`)};`),
    seq(RM * RN, (i) => `    ${mma(`a${kk}_${Math.floor(i / RN)}`, `b${kk}_${i % RN}`, acc(Math.floor(i / RN), i % RN))}`),
  ].join('\n')) + '\n    }';

  // Staging: per-thread (vec) or per-subgroup (matrix) pieces; setup runs once, fetch reads global
  // memory for the K step starting at k into registers, put writes them into stage `stage`.
  // Register variables carry the marker $R, replaced by the register set's suffix.
  const setup: string[] = [], regs: string[] = [], fetch: string[] = [], put: string[] = [], regNames: string[] = [];
  if (vec) {
    const stageVec = (name: 'a' | 'b', chunks: number) => {
      const iters = ceilDiv(chunks, T), guarded = chunks % T !== 0;
      for (let i = 0; i < iters; i++) {
        const g = guarded && i === iters - 1 ? `if (lid + ${i * T}u < ${chunks}u) ` : '';
        const id = `${name}${i}`, q = `lid + ${i * T}u`;
        regs.push(`  var r${id}$R = vec4<u32>();`);
        regNames.push(`r${id}`);
        if (name === 'a') {
          // chunk q: row q / (BK/8) of the tile, 8 halves at column (q % (BK/8))·8
          setup.push(`  let r_${id} = (${q}) / ${BK / 8}u; let c_${id} = (${q}) % ${BK / 8}u;`,
            `  let g_${id} = (row0 + r_${id}) * ${s.K / 8}u + c_${id};`,
            `  let p_${id} = r_${id} / ${RM * 16}u; let o_${id} = (r_${id} % ${RM * 16}u) * ${AP}u + c_${id} * 8u;`);
          fetch.push(`    ${g}{ r${id}$R = A[g_${id} + k / 8u]; }`);
        } else {
          // chunk q: K row q / (BN/8), 8 halves at column (q % (BN/8))·8, in panel column / (RN·16)
          setup.push(`  let r_${id} = (${q}) / ${BN / 8}u; let c_${id} = (${q}) % ${BN / 8}u;`,
            `  let g_${id} = r_${id} * ${s.N / 8}u + col0 / 8u + c_${id};`,
            `  let p_${id} = c_${id} / ${RN * 2}u; let o_${id} = r_${id} * ${BP}u + (c_${id} % ${RN * 2}u) * 8u;`);
          fetch.push(`    ${g}{ r${id}$R = B[g_${id} + k * ${s.N / 8}u]; }`);
        }
        const arr = name === 'a' ? 'As' : 'Bs', per = name === 'a' ? SGM : SGN;
        const halves = seq(4, (j) => `let h${j} = bitcast<vec2<f16>>(r${id}$R[${j}]);`).split('\n').join(' ');
        const stores = seq(8, (j) => `${elem(arr, `P`, `O + ${j}u`)} = h${j >> 1}.${j & 1 ? 'y' : 'x'};`).split('\n').join(' ');
        put.push(`    ${g}{ let P = stage * ${per}u + p_${id}; let O = o_${id}; ${halves} ${stores} }`);
      }
    };
    stageVec('a', (BM * BK) / 8);
    stageVec('b', (BK * BN) / 8);
  } else {
    const stageMat = (name: 'a' | 'b', tiles: number) => {
      const iters = ceilDiv(tiles, SG), guarded = tiles % SG !== 0;
      for (let i = 0; i < iters; i++) {
        const g = guarded && i === iters - 1 ? `if (sg + ${i * SG}u < ${tiles}u) ` : '';
        const id = `${name}${i}`, q = `sg + ${i * SG}u`;
        const side = name === 'a' ? 'left' : 'right';
        regs.push(emulate ? `  var m${id}$R = Tile();` : `  var m${id}$R = subgroup_matrix_${side}<f16, 16, 16>();`);
        if (name === 'a') {
          setup.push(`  let tr_${id} = (${q}) / ${BK / 16}u; let tc_${id} = (${q}) % ${BK / 16}u;`,
            `  let g_${id} = (row0 + tr_${id} * 16u) * ${s.K}u + tc_${id} * 16u;`,
            `  let p_${id} = tr_${id} / ${RM}u; let o_${id} = (tr_${id} % ${RM}u) * ${16 * AP}u + tc_${id} * 16u;`);
        } else {
          setup.push(`  let tr_${id} = (${q}) / ${BN / 16}u; let tc_${id} = (${q}) % ${BN / 16}u;`,
            `  let g_${id} = tr_${id} * ${16 * s.N}u + col0 + tc_${id} * 16u;`,
            `  let p_${id} = tc_${id} / ${RN}u; let o_${id} = tr_${id} * ${16 * BP}u + (tc_${id} % ${RN}u) * 16u;`);
        }
        const gOff = name === 'a' ? `g_${id} + k` : `g_${id} + k * ${s.N}u`;
        const gStride = name === 'a' ? s.K : s.N;
        const arr = name === 'a' ? 'As' : 'Bs', per = name === 'a' ? SGM : SGN, pitch = name === 'a' ? AP : BP;
        fetch.push(emulate ? `    ${g}{ m${id}$R = emuLoad${name.toUpperCase()}(${gOff}, lane); }`
          : `    ${g}{ m${id}$R = subgroupMatrixLoad<subgroup_matrix_${side}<f16, 16, 16>, row_major>(&${name.toUpperCase()}, ${gOff}, ${gStride}u); }`);
        put.push(emulate ? `    ${g}{ emuPut${name.toUpperCase()}(stage * ${per}u + p_${id}, o_${id}, m${id}$R, lane); }`
          : `    ${g}{ subgroupMatrixStore<row_major>(${mptr(arr, `stage * ${per}u + p_${id}`, `o_${id}`)}, m${id}$R, ${pitch}u); }`);
      }
    };
    stageMat('a', (BM / 16) * (BK / 16));
    stageMat('b', (BK / 16) * (BN / 16));
  }

  // Inlined as text: a WGSL function could not write the caller's register variables.
  const sets = v.prefetch === 2 ? 2 : 1;
  const R = (text: string, set: number) => text.split('$R').join(set ? `_${set}` : '');
  for (let i = 0; i < sets; i++) setup.push(...regs.map((l) => R(l, i)));
  const doFetch = (k: string, set = 0) => R(`    { let k = ${k};\n${fetch.join('\n')}\n    }`, set);
  const doPut = (stage: string, set = 0) => R(`    { let stage = ${stage};\n${put.join('\n')}\n    }`, set);

  if ((v.diag === 'global-only' || v.diag === 'stores-only') && !vec) throw new Error(`diagnostic ${v.diag} needs vec staging`);
  const loop = v.diag === 'global-only' ? `
  var sink = 0u;
  for (var t = 0u; t < ${KT}u; t++) {
${doFetch(`t * ${BK}u`)}
${regNames.map((r) => `    sink ^= ${r}.x ^ ${r}.y ^ ${r}.z ^ ${r}.w;`).join('\n')}
    workgroupBarrier();
  }
  if (sink == 0x9e3779b9u) { C[lid] = 1.0; }` : v.diag === 'stores-only' ? `
  for (var t = 0u; t < ${KT}u; t++) {
${regNames.map((r) => `    ${r} = vec4<u32>(t, lid, t ^ lid, t + lid);`).join('\n')}
${doPut(ST === 2 ? '(t & 1u)' : '0u')}
    workgroupBarrier();
  }
  if (lid == 0xffffffffu) { C[0] = f32(A[0].x) + f32(B[0].x); } // keeps A and B bound` : v.diag === 'mma-only' ? `
${doFetch('0u')}
${seq(ST, (i) => doPut(`${i}u`))}
  workgroupBarrier();
  for (var t = 0u; t < ${KT}u; t++) {
${compute(ST === 2 ? '(t & 1u)' : '0u')}
    workgroupBarrier();
  }` : v.diag === 'staging-only' ? `
  for (var t = 0u; t < ${KT}u; t++) {
${doFetch(`t * ${BK}u`)}
${doPut(ST === 2 ? '(t & 1u)' : '0u')}
    workgroupBarrier();
  }` : v.prefetch === 2 ? `
${doFetch('0u', 0)}
${doPut('0u', 0)}
${doFetch(`${BK}u`, 1)}
  workgroupBarrier();
  // Two steps per trip, so that each register set has a name: at an even step t, stage 0 holds
  // tile t and set 1 tile t+1; set 0 is refilled with tile t+2 (clamped: re-reads the last tile).
  for (var t = 0u; t < ${KT}u; t += 2u) {
${doFetch(`min(t + 2u, ${KT - 1}u) * ${BK}u`, 0)}
${compute('0u')}
${doPut('1u', 1)}
    workgroupBarrier();
${doFetch(`min(t + 3u, ${KT - 1}u) * ${BK}u`, 1)}
${compute('1u')}
${doPut('0u', 0)}
    workgroupBarrier();
  }` : ST === 2 ? `
${doFetch('0u')}
${doPut('0u')}
  workgroupBarrier();
  for (var t = 0u; t < ${KT}u; t++) {
    let cur = t & 1u;
    // The last step re-reads its own K tile into the idle stage: no branch, no read past K.
${doFetch(`min(t + 1u, ${KT - 1}u) * ${BK}u`)}
${compute('cur')}
${doPut('1u - cur')}
    workgroupBarrier();
  }` : `
  for (var t = 0u; t < ${KT}u; t++) {
${doFetch(`t * ${BK}u`)}
${doPut('0u')}
    workgroupBarrier();
${compute('0u')}
    workgroupBarrier();
  }`;

  const storeC = seq(RM * RN, (i) => {
    const m = Math.floor(i / RN), n = i % RN;
    const off = `(row0 + sm * ${RM * 16}u + ${m * 16}u) * ${s.N}u + col0 + sn * ${RN * 16}u + ${n * 16}u`;
    return emulate ? `  emuStoreC(${off}, ${acc(m, n)}, lane);` : `  subgroupMatrixStore<row_major>(&C, ${off}, ${acc(m, n)}, ${s.N}u);`;
  });

  const smemDecl = v.panels
    ? `var<workgroup> As: array<array<f16, ${PA}>, ${ST * SGM}>;\nvar<workgroup> Bs: array<array<f16, ${PB}>, ${ST * SGN}>;`
    : `var<workgroup> As: array<f16, ${ST * SGM * PA}>;\nvar<workgroup> Bs: array<f16, ${ST * SGN * PB}>;`;
  const inType = vec ? 'vec4<u32>' : 'f16';
  const prelude = emulate ? 'enable f16;' : `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
// Panel and tile indices come from subgroup_id, which the uniformity analysis cannot see as uniform.
diagnostic(off, chromium.subgroup_matrix_uniformity);
diagnostic(off, subgroup_uniformity);`;
  const code = `${prelude}
@group(0) @binding(0) var<storage, read> A: array<${inType}>;
@group(0) @binding(1) var<storage, read> B: array<${inType}>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
// A panels [${ST}×${SGM}][${RM * 16}][${AP}], B panels [${ST}×${SGN}][${BK}][${BP}] (f16)
${smemDecl}
${emulate ? emulation(v, s, AP, BP, PA, PB) : ''}
@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32${emulate ? '' : ', @builtin(subgroup_id) sgid: u32'}) {
  let sg = ${emulate ? 'lid / 32u' : 'sgid'};
  ${emulate ? 'let lane = lid % 32u;' : ''}
  let sm = sg / ${SGN}u; let sn = sg % ${SGN}u;
  let row0 = wg.y * ${BM}u; let col0 = wg.x * ${BN}u;
${seq(RM * RN, (i) => `  var ${acc(Math.floor(i / RN), i % RN)} = ${emulate ? 'Acc()' : 'subgroup_matrix_result<f32, 16, 16>()'};`)}
${setup.join('\n')}
${loop}
${storeC}
}`;
  return { code, grid: [s.N / BN, s.M / BM], threads: T, smemBytes: 2 * ST * (SGM * PA + SGN * PB), rm: RM, rn: RN };
}

/** Plain-WGSL stand-ins for the subgroup-matrix builtins: lane ℓ holds elements 8ℓ..8ℓ+7 (row-major). */
function emulation(v: GemmVariant, s: GemmShape, AP: number, BP: number, PA: number, PB: number): string {
  const el = (arr: string, p: string, o: string, size: number) => v.panels ? `${arr}[${p}][${o}]` : `${arr}[(${p}) * ${size}u + ${o}]`;
  const ij = 'let i = (lane * 8u + e) / 16u; let j = (lane * 8u + e) % 16u;';
  // Loop bounds the compiler cannot see (8 and 16 at run time): fully unrolled, the inlined
  // emulation takes lavapipe's LLVM minutes per kernel.
  const E = 'min(arrayLength(&C), 8u)', K16 = 'min(arrayLength(&C), 16u)';
  return `
struct Acc { v: array<f32, 8> }
struct Frag { p: u32, o: u32 }
struct Tile { v: array<f16, 8> }
fn emuMma(a: Frag, b: Frag, c: Acc, lane: u32) -> Acc {
  var r = c;
  for (var e = 0u; e < ${E}; e++) {
    ${ij}
    var sum = 0.0;
    for (var k = 0u; k < ${K16}; k++) {
      sum += f32(${el('As', 'a.p', `a.o + i * ${AP}u + k`, PA)}) * f32(${el('Bs', 'b.p', `b.o + k * ${BP}u + j`, PB)});
    }
    r.v[e] += sum;
  }
  return r;
}
fn emuStoreC(o: u32, c: Acc, lane: u32) {
  for (var e = 0u; e < ${E}; e++) { ${ij} C[o + i * ${s.N}u + j] = c.v[e]; }
}
${v.staging === 'matrix' ? `
fn emuLoadA(o: u32, lane: u32) -> Tile {
  var t = Tile(); for (var e = 0u; e < ${E}; e++) { ${ij} t.v[e] = A[o + i * ${s.K}u + j]; } return t;
}
fn emuLoadB(o: u32, lane: u32) -> Tile {
  var t = Tile(); for (var e = 0u; e < ${E}; e++) { ${ij} t.v[e] = B[o + i * ${s.N}u + j]; } return t;
}
fn emuPutA(p: u32, o: u32, t: Tile, lane: u32) {
  for (var e = 0u; e < ${E}; e++) { ${ij} ${el('As', 'p', `o + i * ${AP}u + j`, PA)} = t.v[e]; }
}
fn emuPutB(p: u32, o: u32, t: Tile, lane: u32) {
  for (var e = 0u; e < ${E}; e++) { ${ij} ${el('Bs', 'p', `o + i * ${BP}u + j`, PB)} = t.v[e]; }
}` : ''}`;
}
