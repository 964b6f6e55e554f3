/// <reference types="@webgpu/types" />
/**
 * The model GEMM for long prompts on subgroup matrices: y [M, N] (=|+=) x [M, K] · Wᵀ (+ bias), the
 * Params and bindings of gemm.ts, in the design bench/ceiling measured fastest on the H200 (a
 * 128 × 128 tile per workgroup of 2 × 2 subgroups, each owning 4 × 4 accumulators of 16 × 16;
 * K steps of 16 staged in workgroup memory, double-buffered). tensor-core-gemm.ts loads every
 * fragment straight from storage, so each x and W element is read once per 64-wide tile and the
 * matrix units wait on memory; here each is read once per 128-wide tile, with 16-byte loads, and the
 * next K step's loads are in flight while this step multiplies.
 *
 * Staging: x rows and W rows (both contiguous along K) go to per-subgroup panels
 * [64 rows][16 + 8 halves]: the pad puts the 16-byte rows of one 8×8 fragment load in distinct
 * banks, and a panel per subgroup row (column) gives each fragment load a constant offset. W's
 * fragments load column-major (Wᵀ without a transpose). Rows of x past M and of W past N read the
 * last row (in bounds) and are not stored, so any M and N run; K and the x / W offsets and strides
 * must be multiples of 16 and 8 halves (`tiledGemmReason`). The epilogue passes each accumulator
 * through a 16 × 16 f32 scratch per subgroup so that lanes add the bias, accumulate and convert.
 *
 * `emulate` swaps the subgroup-matrix builtins for plain WGSL of the same data flow (a fragment is
 * read from workgroup memory when it is multiplied; no barrier separates a load from its use, so
 * this is equivalent), so the staging and epilogue indexing are tested on adapters without
 * subgroup matrices (lavapipe). Reference twin: model/ops.ts `linearReference`.
 */
import { seq, SUBGROUP_MATRIX_PRELUDE } from '../runtime/subgroup-matrix-wgsl.js';
import type { KernelProgram } from '../runtime/program.js';
import { hasTensorCores } from '../runtime/webgpu-device.js';
import { gemmBindings, type GemmParamName, gemmParams, type GemmShape, type StorageType } from './gemm.js';

export interface TiledGemmSpec {
  readonly [field: string]: string | number | boolean;
  y: StorageType;
  bias: boolean;
  accumulate: boolean;
  /** Plain-WGSL stand-ins for the subgroup-matrix builtins (tests on adapters without them). */
  emulate: boolean;
}

const TILE = 128;
const BK = 16;
const SG = 2; // subgroups per tile side
const R = TILE / 16 / SG; // accumulators per subgroup side
const PITCH = BK + 8; // halves per staged row
const PANEL = R * 16 * PITCH; // halves per panel
const THREADS = SG * SG * 32;
const CHUNKS = (TILE * BK) / 8 / THREADS; // 16-byte loads per thread per operand per K step

/** null when the tiled GEMM can run this call on this device, else why not. */
export function tiledGemmReason(device: GPUDevice, x: StorageType, w: StorageType, p: GemmShape & { xOffset: number; xStride: number; wOffset: number }): string | null {
  if (!hasTensorCores(device)) return 'no f16→f32 16×16×16 subgroup matrices';
  return tiledGemmShapeReason(x, w, p);
}

/** The call's own conditions (the device aside). */
export function tiledGemmShapeReason(x: StorageType, w: StorageType, p: GemmShape & { xOffset: number; xStride: number; wOffset: number }): string | null {
  if (x !== 'f16' || w !== 'f16') return 'tensor cores take f16 x and W';
  if (p.m < 1 || p.n < 1 || p.k < BK || p.k % BK) return `K = ${p.k} is not a positive multiple of ${BK}`;
  if (p.xOffset % 8 || p.xStride % 8 || p.wOffset % 8) return 'x / W offsets and strides are not multiples of 8 (16-byte loads)';
  return null;
}

export const tiledGemmProgram: KernelProgram<TiledGemmSpec, GemmParamName, GemmShape> = {
  name: 'model-gemm-tiled',
  params: gemmParams,
  bindings: gemmBindings,
  constants: () => ({ tile: TILE }),
  workgroupSize: () => THREADS,
  supports(spec, shape, limits) {
    if (shape.k % BK) return `K must be a multiple of ${BK}`;
    if (Math.ceil(shape.m / TILE) > limits.maxComputeWorkgroupsPerDimension || Math.ceil(shape.n / TILE) > limits.maxComputeWorkgroupsPerDimension) {
      return `${shape.m}×${shape.n} needs more workgroups than the device allows`;
    }
    if (smemBytes() > limits.maxComputeWorkgroupStorageSize) return `needs ${smemBytes()} bytes of workgroup memory`;
    return null;
  },
  wgsl(spec, header) {
    const em = spec.emulate;
    const types: Record<string, string> = { x: 'vec4<u32>', w: 'vec4<u32>', bias: 'f32', y: spec.y };
    const decls = tiledGemmProgram.bindings(spec)
      .map((b, i) => `@group(0) @binding(${i + 1}) var<storage, ${b.kind === 'storage' ? 'read_write' : 'read'}> ${b.name}: array<${types[b.name]}>;`)
      .join('\n');
    const store = spec.accumulate ? `${spec.y}(f32(y[o]) + v)` : `${spec.y}(v)`;
    const acc = (m: number, n: number) => `c${m}_${n}`;
    const each = (f: (m: number, n: number) => string) => seq(R * R, (i) => f(Math.floor(i / R), i % R));
    const frag = (side: 'left' | 'right', stage: string, o: string) => {
      const panel = side === 'left' ? `As[${stage} * ${SG}u + sm]` : `Ws[${stage} * ${SG}u + sn]`;
      return `subgroupMatrixLoad<subgroup_matrix_${side}<f16, 16, 16>, ${side === 'left' ? 'row_major' : 'col_major'}>(&${panel}, ${o}, ${PITCH}u)`;
    };
    // Emulated: one call site in a loop the compiler cannot unroll (16 inlined copies take
    // lavapipe's LLVM minutes); accumulator mn = (m, n) = (mn / ${R}, mn % ${R}).
    const compute = (stage: string) => em ? `    for (var mn = 0u; mn < min(P.k, ${R * R}u); mn++) {
      acc[mn] = emuMma(Frag(${stage} * ${SG}u + sm, (mn / ${R}u) * ${16 * PITCH}u), Frag(${stage} * ${SG}u + sn, (mn % ${R}u) * ${16 * PITCH}u), acc[mn], lane);
    }` : `    {
${seq(R, (m) => `      let a${m} = ${frag('left', stage, `${m * 16 * PITCH}u`)};`)}
${seq(R, (n) => `      let b${n} = ${frag('right', stage, `${n * 16 * PITCH}u`)};`)}
${each((m, n) => `      ${acc(m, n)} = subgroupMatrixMultiplyAccumulate(a${m}, b${n}, ${acc(m, n)});`)}
    }`;
    // Chunk q of a K step: tile row q / 2, halves [(q % 2)·8, +8) of the step's 16.
    const setup = seq(CHUNKS, (i) => `  let r${i} = (lid + ${i * THREADS}u) / 2u; let h${i} = (lid + ${i * THREADS}u) % 2u;
  let gx${i} = (P.xOffset + min(row0 + r${i}, P.m - 1u) * P.xStride) / 8u + h${i};
  let gw${i} = (P.wOffset + min(col0 + r${i}, P.n - 1u) * P.k) / 8u + h${i};
  let p${i} = r${i} / ${R * 16}u; let o${i} = (r${i} % ${R * 16}u) * ${PITCH}u + h${i} * 8u;
  var rx${i} = vec4<u32>(); var rw${i} = vec4<u32>();`);
    const fetch = (k: string) => `    { let kv = (${k}) / 8u;\n${seq(CHUNKS, (i) => `      rx${i} = x[gx${i} + kv]; rw${i} = w[gw${i} + kv];`)}\n    }`;
    const put = (stage: string) => `    { let st = ${stage};\n${seq(CHUNKS, (i) => ['x', 'w'].map((t) => {
      const arr = t === 'x' ? 'As' : 'Ws';
      const halves = seq(4, (j) => `let ${t}${j} = bitcast<vec2<f16>>(r${t}${i}[${j}]);`).split('\n').join(' ');
      const stores = seq(8, (j) => `${arr}[st * ${SG}u + p${i}][o${i} + ${j}u] = ${t}${j >> 1}.${j & 1 ? 'y' : 'x'};`).split('\n').join(' ');
      return `      { ${halves} ${stores} }`;
    }).join('\n'))}\n    }`;
    const storeTile = (m: string, n: string, tile: string) => `  ${tile}
  workgroupBarrier();
  for (var e = 0u; e < 8u; e++) {
    let i = lane * 8u + e;
    let r = row0 + sm * ${R * 16}u + ${m} * 16u + i / 16u;
    let c = col0 + sn * ${R * 16}u + ${n} * 16u + i % 16u;
    if (r < P.m && c < P.n) {
      let v = Cs[sg][i]${spec.bias ? ' + bias[c]' : ''};
      let o = P.yOffset + r * P.yStride + c;
      y[o] = ${store};
    }
  }
  workgroupBarrier();`;
    const epilogue = em
      ? `  for (var mn = 0u; mn < min(P.k, ${R * R}u); mn++) {
${storeTile(`(mn / ${R}u)`, `(mn % ${R}u)`, 'emuStore(acc[mn], sg, lane);')}
  }`
      : each((m, n) => storeTile(`${m}u`, `${n}u`, `subgroupMatrixStore<row_major>(&Cs[sg], 0u, ${acc(m, n)}, 16u);`));
    return `${em ? 'enable f16;' : SUBGROUP_MATRIX_PRELUDE}
${header}
@group(0) @binding(0) var<uniform> P: Params;
${decls}

// Panels [stage·${SG} + subgroup row (x) or column (W)][${R * 16} rows][${PITCH}] (f16), and each subgroup's epilogue tile.
var<workgroup> As: array<array<f16, ${PANEL}>, ${2 * SG}>;
var<workgroup> Ws: array<array<f16, ${PANEL}>, ${2 * SG}>;
var<workgroup> Cs: array<array<f32, 256>, ${SG * SG}>;
${em ? emulation() : ''}
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32${em ? '' : ', @builtin(subgroup_id) sgid: u32, @builtin(subgroup_invocation_id) lane: u32'}) {
  let sg = ${em ? 'lid / 32u' : 'sgid'};
${em ? '  let lane = lid % 32u;' : ''}
  let sm = sg / ${SG}u; let sn = sg % ${SG}u;
  let row0 = wg.y * ${TILE}u; let col0 = wg.x * ${TILE}u;
${em ? `  var acc: array<Acc, ${R * R}>;` : each((m, n) => `  var ${acc(m, n)} = subgroup_matrix_result<f32, 16, 16>();`)}
${setup}
  let steps = P.k / ${BK}u;
${fetch('0u')}
${put('0u')}
  workgroupBarrier();
  for (var t = 0u; t < steps; t++) {
    let cur = t & 1u;
    // The last step re-reads its own K tile into the idle stage: no branch, no read past K.
${fetch(`min(t + 1u, steps - 1u) * ${BK}u`)}
${compute('cur')}
${put('1u - cur')}
    workgroupBarrier();
  }
${epilogue}
}
`;
  },
};

/** Plain-WGSL fragments: lane ℓ holds elements 8ℓ..8ℓ+7 of a 16 × 16 tile, row-major. */
function emulation(): string {
  const ij = 'let i = (lane * 8u + e) / 16u; let j = (lane * 8u + e) % 16u;';
  // Bounds the compiler cannot see: fully unrolled, lavapipe's LLVM takes minutes per kernel.
  const E = 'min(P.k, 8u)', K16 = 'min(P.k, 16u)';
  return `
struct Acc { v: array<f32, 8> }
struct Frag { p: u32, o: u32 }
fn emuMma(a: Frag, b: Frag, c: Acc, lane: u32) -> Acc {
  var r = c;
  for (var e = 0u; e < ${E}; e++) {
    ${ij}
    var sum = 0.0;
    for (var k = 0u; k < ${K16}; k++) { sum += f32(As[a.p][a.o + i * ${PITCH}u + k]) * f32(Ws[b.p][b.o + j * ${PITCH}u + k]); }
    r.v[e] += sum;
  }
  return r;
}
fn emuStore(c: Acc, sg: u32, lane: u32) {
  for (var e = 0u; e < ${E}; e++) { Cs[sg][lane * 8u + e] = c.v[e]; }
}`;
}

function smemBytes(): number {
  return 2 * 2 * SG * PANEL * 2 + SG * SG * 256 * 4;
}

export function tiledGemmWorkgroups(shape: GemmShape): [number, number, number] {
  return [Math.ceil(shape.n / TILE), Math.ceil(shape.m / TILE), 1];
}
