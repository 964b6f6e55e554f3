/**
 * Tensor-core (subgroup-matrix) flash attention in WGSL, dense or block-sparse.
 *
 * Computes O = softmax(scale · Q Kᵀ + mask) V for one (batch, head, 16·SG query rows) per workgroup:
 *   Q [B, H, Lq, D] f16, K/V [B, Hkv, Lk, D] f16 (any strides: both layouts, views of a cache),
 *   O [B, H, Lq, D] f32.  Tiles: each of SG subgroups owns 16 query rows; key tiles of BC = 64.
 *
 * Subgroup matrices are opaque (no per-element access), so the FlashAttention rescale of the
 * output accumulator (O ← O·e^(m−m')) cannot be done in registers. Instead of round-tripping O
 * through workgroup memory on every key tile, we run two passes over the key tiles:
 *   pass 1: S = Q Kᵀ on tensor cores → workgroup scratch → exact row max m and sum l;
 *   pass 2: S again → P = exp(S − m) / l (already normalised) as f16 → O += P V on tensor cores.
 * QKᵀ is computed twice (1.5× the MMA work of one pass) but O never leaves registers.
 *
 * Block-sparse: the key tiles visited are those of the kept key blocks of the workgroup's query
 * block (CSR rowPtr/colIdx of a BlockMask), so dense is the same loop over every block.
 * Requirements (checked by `tensorCoreSupports`): Lq % (16·SG) == 0, Lk % 64 == 0, D in {64, 128},
 * mask blockRows % (16·SG) == 0 and blockCols % 64 == 0.
 */

export interface TensorCoreAttentionSpec {
  headDim: 64 | 128;
  causal: boolean;
  /** Visit the key blocks of a CSR block list instead of every tile. */
  sparse: boolean;
  /** Subgroups per workgroup (each owns 16 query rows). */
  subgroups: 4 | 8;
  /**
   * Stage each K and V tile in workgroup memory once for all subgroups (vec4 loads, padded rows)
   * instead of every subgroup reading it from global memory. Needs 16-byte aligned rows.
   */
  stage: boolean;
}

export const TC_KEY_TILE = 64;
export const TC_ROWS_PER_SUBGROUP = 16;

/** Params uniform: 24 u32/f32 words, in this order. */
export const TC_PARAM_FIELDS = [
  'qLen', 'kLen', 'heads', 'group',
  'qOffset', 'qStrideB', 'qStrideH', 'qStrideL',
  'kOffset', 'kStrideB', 'kStrideH', 'kStrideL',
  'vOffset', 'vStrideB', 'vStrideH', 'vStrideL',
  'oOffset', 'oStrideB', 'oStrideH', 'oStrideL',
  'scaleLog2', 'numQueryBlocks', 'blockRows', 'blockCols',
] as const;

export function tensorCoreAttentionLabel(spec: TensorCoreAttentionSpec): string {
  return `tc-attention-d${spec.headDim}-${spec.causal ? 'causal' : 'full'}-${spec.sparse ? 'sparse' : 'dense'}-sg${spec.subgroups}${spec.stage ? '-staged' : ''}`;
}

/** One generated line per index: unrolled code, so subgroup matrices live in named registers. */
function seq(n: number, line: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => line(i)).join('\n');
}

export function tensorCoreAttentionWgsl(spec: TensorCoreAttentionSpec): string {
  const D = spec.headDim;
  const DT = D / 16;
  const SG = spec.subgroups;
  const BC = TC_KEY_TILE;
  const CT = BC / 16;
  const KVS = D + 8; // padded row stride of the staged tile: rows start in different banks
  const kvType = spec.stage ? 'array<vec4<u32>>' : 'array<f16>';
  // Where the subgroup-matrix loads of K and V read from, per 16-key slice c and 16-wide slice d.
  const kSrc = (d: number) => spec.stage ? `&kv, c * 16u * ${KVS}u + ${d * 16}u, ${KVS}u` : `&K, kRow + ${d * 16}u, P.kStrideL`;
  const vSrc = (d: number) => spec.stage ? `&kv, c * 16u * ${KVS}u + ${d * 16}u, ${KVS}u` : `&V, vRow + ${d * 16}u, P.vStrideL`;
  const stageFn = (name: string, buf: string, stride: string) => `
fn ${name}(base: u32, j0: u32, lid: u32) {
  for (var i = lid; i < BC * D / 8u; i += SG * 32u) {
    let r = i / (D / 8u);
    let c8 = i % (D / 8u);
    let v = ${buf}[(base + (j0 + r) * ${stride}) / 8u + c8];
    let o = r * ${KVS}u + c8 * 8u;
    let a = bitcast<vec2<f16>>(v.x); let b = bitcast<vec2<f16>>(v.y);
    let c = bitcast<vec2<f16>>(v.z); let d = bitcast<vec2<f16>>(v.w);
    kv[o] = a.x; kv[o + 1u] = a.y; kv[o + 2u] = b.x; kv[o + 3u] = b.y;
    kv[o + 4u] = c.x; kv[o + 5u] = c.y; kv[o + 6u] = d.x; kv[o + 7u] = d.y;
  }
}`;
  return /* wgsl */ `
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
// Offsets derive from subgroup_id, which Tint's analysis cannot prove uniform per subgroup.
diagnostic(off, chromium.subgroup_matrix_uniformity);
diagnostic(off, subgroup_uniformity);

struct Params {
  qLen: u32, kLen: u32, heads: u32, group: u32,
  qOffset: u32, qStrideB: u32, qStrideH: u32, qStrideL: u32,
  kOffset: u32, kStrideB: u32, kStrideH: u32, kStrideL: u32,
  vOffset: u32, vStrideB: u32, vStrideH: u32, vStrideL: u32,
  oOffset: u32, oStrideB: u32, oStrideH: u32, oStrideL: u32,
  scaleLog2: f32, numQueryBlocks: u32, blockRows: u32, blockCols: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Q: array<f16>;
@group(0) @binding(2) var<storage, read> K: ${kvType};
@group(0) @binding(3) var<storage, read> V: ${kvType};
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<storage, read> rowPtr: array<u32>;
@group(0) @binding(6) var<storage, read> colIdx: array<u32>;

const D: u32 = ${D}u;
const DT: u32 = ${DT}u;      // 16-wide slices of the head dim
const SG: u32 = ${SG}u;      // subgroups per workgroup
const BR: u32 = ${SG * 16}u; // query rows per workgroup
const BC: u32 = ${BC}u;      // keys per tile
const CT: u32 = ${CT}u;      // 16-wide slices of a key tile
const CAUSAL: bool = ${spec.causal};
const SPARSE: bool = ${spec.sparse};

// Per subgroup: 16 rows × BC scores (f32) and probabilities (f16).  [SG][16][BC]
var<workgroup> sTile: array<f32, ${SG * 16 * BC}>;
var<workgroup> pTile: array<f16, ${SG * 16 * BC}>;
${spec.stage ? `// The current K (then V) tile, shared by all subgroups.  [BC][D + 8]
var<workgroup> kv: array<f16, ${BC * KVS}>;
${stageFn('stageK', 'K', 'P.kStrideL')}
${stageFn('stageV', 'V', 'P.vStrideL')}` : ''}

// Key tiles visited for this workgroup: every tile up to the causal limit, or the tiles of the
// kept blocks. Workgroup-uniform, so every subgroup runs the same loop (barriers stay legal).
fn tileCount(rowBase: u32, qb: u32) -> u32 {
  if (SPARSE) {
    let r = qb;
    return (rowPtr[r + 1u] - rowPtr[r]) * (P.blockCols / BC);
  }
  var n = P.kLen / BC;
  if (CAUSAL) {
    let lastKey = (P.kLen - P.qLen) + rowBase + BR - 1u;
    n = min(n, lastKey / BC + 1u);
  }
  return n;
}

fn tileStart(t: u32, qb: u32) -> u32 {
  if (SPARSE) {
    let per = P.blockCols / BC;
    let kb = colIdx[rowPtr[qb] + t / per];
    return kb * P.blockCols + (t % per) * BC;
  }
  return t * BC;
}

@compute @workgroup_size(${SG * 32})
fn main(@builtin(workgroup_id) wg: vec3u,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let kvh = h / P.group;
  let rowBase = wg.x * BR;
  let qBase = P.qOffset + b * P.qStrideB + h * P.qStrideH + (rowBase + sg * 16u) * P.qStrideL;
  let kBase = P.kOffset + b * P.kStrideB + kvh * P.kStrideH;
  let vBase = P.vOffset + b * P.vStrideB + kvh * P.vStrideH;
  let qbRow = (b * P.heads + h) * P.numQueryBlocks + rowBase / max(P.blockRows, 1u);

  // Q slices stay in registers for the whole call (named, not an array, so nothing spills).
${seq(DT, (t) => `  let q${t} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Q, qBase + ${t * 16}u, P.qStrideL);`)}

  // This lane's share of the subgroup's 16×BC tile: row lane/2, columns [side·BC/2, +BC/2).
  let row = lane / 2u;
  let side = lane % 2u;
  let qPos = (P.kLen - P.qLen) + rowBase + sg * 16u + row; // key position of this query
  let scratch = sg * 16u * BC + row * BC + side * (BC / 2u);
  let nTiles = tileCount(rowBase, qbRow);

  var m = -3.0e38;
  var l = 0.0;
  for (var phase = 0u; phase < 2u; phase++) {
${seq(DT, (d) => `    var o${d} = subgroup_matrix_result<f32, 16, 16>();`)}
    for (var t = 0u; t < nTiles; t++) {
      let j0 = tileStart(t, qbRow);
      workgroupBarrier(); // the previous tile's scratch has been read
${spec.stage ? `      stageK(kBase, j0, lid);
      workgroupBarrier();` : ''}
      for (var c = 0u; c < CT; c++) {
        var s = subgroup_matrix_result<f32, 16, 16>();
        let kRow = kBase + (j0 + c * 16u) * P.kStrideL;
${seq(DT, (d) => `        s = subgroupMatrixMultiplyAccumulate(q${d}, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(${kSrc(d)}), s);`)}
        subgroupMatrixStore<row_major>(&sTile, sg * 16u * BC + c * 16u, s, BC);
      }
      workgroupBarrier();
      if (phase == 0u) {
        var tileMax = -3.0e38;
        for (var c = 0u; c < BC / 2u; c++) {
          let j = j0 + side * (BC / 2u) + c;
          if (!CAUSAL || j <= qPos) { tileMax = max(tileMax, sTile[scratch + c] * P.scaleLog2); }
        }
        tileMax = max(tileMax, subgroupShuffleXor(tileMax, 1u));
        let mNew = max(m, tileMax);
        var sum = 0.0;
        for (var c = 0u; c < BC / 2u; c++) {
          let j = j0 + side * (BC / 2u) + c;
          if (!CAUSAL || j <= qPos) { sum += exp2(sTile[scratch + c] * P.scaleLog2 - mNew); }
        }
        sum += subgroupShuffleXor(sum, 1u);
        l = l * exp2(m - mNew) + sum;
        m = mNew;
      } else {
        let inv = select(0.0, 1.0 / l, l > 0.0);
        for (var c = 0u; c < BC / 2u; c++) {
          let j = j0 + side * (BC / 2u) + c;
          var p = 0.0;
          if (!CAUSAL || j <= qPos) { p = exp2(sTile[scratch + c] * P.scaleLog2 - m) * inv; }
          pTile[scratch + c] = f16(p);
        }
${spec.stage ? '        stageV(vBase, j0, lid); // every subgroup is past its K reads (barrier above)' : ''}
        workgroupBarrier();
        for (var c = 0u; c < CT; c++) {
          let pm = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&pTile, sg * 16u * BC + c * 16u, BC);
          let vRow = vBase + (j0 + c * 16u) * P.vStrideL;
${seq(DT, (d) => `          o${d} = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(${vSrc(d)}), o${d});`)}
        }
      }
    }
    if (phase == 1u) {
      let oBase = P.oOffset + b * P.oStrideB + h * P.oStrideH + (rowBase + sg * 16u) * P.oStrideL;
${seq(DT, (d) => `      subgroupMatrixStore<row_major>(&O, oBase + ${d * 16}u, o${d}, P.oStrideL);`)}
    }
  }
}
`;
}
