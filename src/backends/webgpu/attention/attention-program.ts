/// <reference types="@webgpu/types" />
/**
 * The one attention skeleton (flash attention with online softmax) that every portable WebGPU
 * attention kernel of this library is a variant of. Variant hooks, chosen by the spec:
 *   blocks     'all'  every key up to the causal limit (dense flash attention)
 *              'csr'  only the key blocks a BlockMask keeps: rowPtr/colIdx per (b, h, query block)
 *   tokenRule  'none', or a token-rule kind: an in-block token test from Params, supplied by the
 *              rule's visibility hook (token-visibility.ts, table in methods/gpu-token-rules.ts)
 *   kv         'strided'  K/V rows at offset + b·strideB + kh·strideH + j·strideL
 *              'paged'    K/V rows through a block table: page = table[b·tableStride + j / pageSize],
 *                         row at offset + page·strideB + kh·strideH + (j % pageSize)·strideL
 *   dtype      'f32' | 'f16'  storage of Q, K, V and O; arithmetic is f32 throughout
 *
 * Work decomposition: one workgroup of WORKGROUP_SIZE (64) threads per (batch b, head h, chunk of
 * up to 64 rows of one mask query block); one thread per query row i. Per visited key tile:
 *   kTile [TILE_KEYS, HEAD_DIM/4] vec4<f32>, vTile [TILE_KEYS, VALUE_DIM/4] vec4<f32> in workgroup
 *   memory (TILE_KEYS·(HEAD_DIM+VALUE_DIM)·4 bytes ≤ 16 KiB, the WebGPU default limit), loaded by
 *   all threads; each thread keeps q[HEAD_DIM] (in the I/O dtype; scores are scaled by scale·log2 e so exp2 gives e^x),
 *   acc[VALUE_DIM], the running max m and sum l in registers:
 *     m' = max(m, max_c s_c);  acc = acc·2^(m-m') + Σ_c 2^(s_c-m') v_c;  l = l·2^(m-m') + Σ_c 2^(s_c-m')
 * Queries shorter than keys are right-aligned (query i sits at key position queryOffset + i).
 * A row that sees no key writes zeros. Tiles wholly above the causal diagonal of the workgroup's
 * last row are not loaded.
 */
import type { DType } from '../../../core/tensor.js';
import { TOKEN_RULE_PARAMS, type TokenRuleKey, type TokenRuleParam, tokenRuleHook } from '../methods/gpu-token-rules.js';
import { type BindingSpec, type KernelProgram, ParamsLayout } from '../runtime/program.js';

export type AttentionSpec = {
  readonly blocks: 'all' | 'csr';
  readonly tokenRule: TokenRuleKey;
  readonly kv: 'strided' | 'paged';
  readonly dtype: DType;
  readonly headDim: number;
  readonly valueDim: number;
  /**
   * 'unrolled': head-dim loops have constant bounds, so GPU compilers unroll them and keep q/acc in
   * registers (fast on GPUs). 'rolled': the bounds come from Params, so the loops stay loops; on
   * CPU adapters (lavapipe) this cuts LLVM compile time ~8× (6.5 s → 0.8 s at D=64) for slower runs.
   */
  readonly headDimLoop: 'unrolled' | 'rolled';
};

/** What `supports` checks against device limits. */
export interface AttentionShape {
  batch: number;
  heads: number;
  /** Workgroups along x: query blocks × chunks per block. */
  workgroupsX: number;
  /** Largest bound buffer in bytes. */
  maxBindingBytes: number;
}

export const ATTENTION_WORKGROUP_SIZE = 64;
/** Largest head dim a thread keeps in registers (q and acc are private arrays of this size). */
export const MAX_HEAD_DIM = 256;

const SHAPE_FIELDS = [
  ['batch', 'u32'], ['heads', 'u32'], ['groupSize', 'u32'], ['queryLength', 'u32'],
  ['keyLength', 'u32'], ['queryOffset', 'u32'], ['causal', 'u32'], ['scaleLog2e', 'f32'],
  ['blockRows', 'u32'], ['blockCols', 'u32'], ['numQueryBlocks', 'u32'], ['chunksPerBlock', 'u32'],
  ['qOffset', 'u32'], ['qStrideB', 'u32'], ['qStrideH', 'u32'], ['qStrideL', 'u32'],
  ['kOffset', 'u32'], ['kStrideB', 'u32'], ['kStrideH', 'u32'], ['kStrideL', 'u32'],
  ['vOffset', 'u32'], ['vStrideB', 'u32'], ['vStrideH', 'u32'], ['vStrideL', 'u32'],
  ['oOffset', 'u32'], ['oStrideB', 'u32'], ['oStrideH', 'u32'], ['oStrideL', 'u32'],
] as const;
const KV_AND_LOOP_FIELDS = [['pageSize', 'u32'], ['tableStride', 'u32'], ['headDimVec4', 'u32'], ['valueDimVec4', 'u32']] as const;

export type AttentionParamName = (typeof SHAPE_FIELDS)[number][0] | TokenRuleParam | (typeof KV_AND_LOOP_FIELDS)[number][0];

/** Shape, offsets and strides; then every token rule's fields (the tokenRule hook); then paged KV and loop bounds. */
export const attentionParams = new ParamsLayout<AttentionParamName>([
  ...SHAPE_FIELDS, ...TOKEN_RULE_PARAMS.map((f) => [f, 'u32'] as const), ...KV_AND_LOOP_FIELDS,
]);

/** Keys per shared-memory tile: K and V tiles together stay within 16 KiB. */
export function tileKeys(spec: AttentionSpec): number {
  return Math.max(4, Math.min(32, Math.floor(4096 / (spec.headDim + spec.valueDim))));
}

export const attentionProgram: KernelProgram<AttentionSpec, AttentionParamName, AttentionShape> = {
  name: 'attention',
  params: attentionParams,
  bindings(spec) {
    const b: BindingSpec[] = [
      { name: 'q', kind: 'read-only-storage' }, { name: 'k', kind: 'read-only-storage' },
      { name: 'v', kind: 'read-only-storage' }, { name: 'o', kind: 'storage' },
    ];
    if (spec.blocks === 'csr') b.push({ name: 'rowPtr', kind: 'read-only-storage' }, { name: 'colIdx', kind: 'read-only-storage' });
    if (spec.kv === 'paged') b.push({ name: 'blockTable', kind: 'read-only-storage' });
    return b;
  },
  constants: (spec) => ({ headDim: spec.headDim, valueDim: spec.valueDim, workgroupSize: ATTENTION_WORKGROUP_SIZE, tileKeys: tileKeys(spec) }),
  workgroupSize: () => ATTENTION_WORKGROUP_SIZE,
  wgsl: (spec, header) => attentionWgsl(spec, header, { bindings: attentionProgram.bindings(spec) }),
  supports(spec, shape, limits) {
    if (spec.headDim % 4 !== 0 || spec.valueDim % 4 !== 0) return `head dims must be multiples of 4 (vec4 tiles), got D=${spec.headDim}, Dv=${spec.valueDim}`;
    if (spec.headDim > MAX_HEAD_DIM || spec.valueDim > MAX_HEAD_DIM) return `head dims must be at most ${MAX_HEAD_DIM} (per-thread registers), got D=${spec.headDim}, Dv=${spec.valueDim}`;
    const shared = tileKeys(spec) * (spec.headDim + spec.valueDim) * 4;
    if (shared > limits.maxComputeWorkgroupStorageSize) return `needs ${shared} B of workgroup memory, device has ${limits.maxComputeWorkgroupStorageSize}`;
    const maxGroups = limits.maxComputeWorkgroupsPerDimension;
    for (const [axis, n] of [['query blocks × chunks', shape.workgroupsX], ['heads', shape.heads], ['batch', shape.batch]] as const) {
      if (n > maxGroups) return `${axis} = ${n} workgroups exceeds maxComputeWorkgroupsPerDimension ${maxGroups}`;
    }
    if (shape.maxBindingBytes > limits.maxStorageBufferBindingSize) {
      return `a buffer of ${shape.maxBindingBytes} B exceeds maxStorageBufferBindingSize ${limits.maxStorageBufferBindingSize}`;
    }
    return null;
  },
};

/**
 * The variant hooks, one WGSL snippet per spec value; a Record over the spec's union type, so a
 * new value does not compile until it has its hook.
 */
const KV_HOOK: Record<AttentionSpec['kv'], string> = {
  strided: `// Hook kv: element offset of key/value row j of (batch b, KV head kh).
fn keyRow(b: u32, kh: u32, j: u32) -> u32 { return P.kOffset + b * P.kStrideB + kh * P.kStrideH + j * P.kStrideL; }
fn valueRow(b: u32, kh: u32, j: u32) -> u32 { return P.vOffset + b * P.vStrideB + kh * P.vStrideH + j * P.vStrideL; }`,
  paged: `// Hook kv: element offset of key/value row j of (sequence b, KV head kh) through the block table.
fn kvPage(b: u32, j: u32) -> u32 { return u32(blockTable[b * P.tableStride + j / P.pageSize]); }
fn keyRow(b: u32, kh: u32, j: u32) -> u32 { return P.kOffset + kvPage(b, j) * P.kStrideB + kh * P.kStrideH + (j % P.pageSize) * P.kStrideL; }
fn valueRow(b: u32, kh: u32, j: u32) -> u32 { return P.vOffset + kvPage(b, j) * P.vStrideB + kh * P.vStrideH + (j % P.pageSize) * P.vStrideL; }`,
};

const BLOCK_LIST_HOOK: Record<AttentionSpec['blocks'], string> = {
  all: `// Hook blocks: one entry covering every key (dense); the causal limit clips it.
fn blockListRange(b: u32, h: u32, qb: u32) -> vec2<u32> { return vec2<u32>(0u, 1u); }
fn blockKeys(n: u32) -> vec2<u32> { return vec2<u32>(0u, P.keyLength); }`,
  csr: `// Hook blocks: entries [rowPtr[row], rowPtr[row + 1]) of colIdx for this (b, h, query block);
// entry n covers keys [colIdx[n]·bc, min((colIdx[n] + 1)·bc, Lk)).
fn blockListRange(b: u32, h: u32, qb: u32) -> vec2<u32> {
  let row = (b * P.heads + h) * P.numQueryBlocks + qb;
  return vec2<u32>(u32(rowPtr[row]), u32(rowPtr[row + 1u]));
}
fn blockKeys(n: u32) -> vec2<u32> {
  let j0 = u32(colIdx[n]) * P.blockCols;
  return vec2<u32>(j0, min(j0 + P.blockCols, P.keyLength));
}`,
};

/** Block list of programs with the `tiles` hook: every key tile of P.blockCols keys, in order. */
const TILES_BLOCK_LIST = `// Hook blocks (tiles): entry n covers keys [n·bc, min((n + 1)·bc, Lk)), every tile in order.
fn blockListRange(b: u32, h: u32, qb: u32) -> vec2<u32> { return vec2<u32>(0u, (P.keyLength + P.blockCols - 1u) / P.blockCols); }
fn blockKeys(n: u32) -> vec2<u32> { return vec2<u32>(n * P.blockCols, min((n + 1u) * P.blockCols, P.keyLength)); }`;

/**
 * Hooks a program built on this skeleton may add beyond the spec's tables (flash-skip-softmax and
 * SageSLA use them):
 *   bindings  the program's bindings (the skeleton's own come first, in attentionProgram's order)
 *   tiles     the block list is every key tile of P.blockCols keys (in order), not 'all' or CSR
 *   gate      WGSL defining `fn keepBlock(b, h, kh, qb, n, j0, j1, lid, rowActive, keyPos, i, qv, m) -> bool`,
 *             called (in uniform control flow) before a causally valid block is visited; it must
 *             return a workgroup-uniform value. A false skips the block: no V loads, m not raised.
 *   init      WGSL statements run once by every thread before the block loop (e.g. resetting
 *             workgroup state a gate keeps, so nothing relies on zero-initialised workgroup memory)
 *   logits    'int8' (SageSLA): q and k are int8 packed 4 per u32 (element offsets stay in int8
 *             units), with scales qScale [B, H, ceil(Lq / blockRows)] and kScale [B, Hkv,
 *             ceil(Lk / blockCols)] already in the log2 domain; the score is the integer
 *             dot4I8Packed sum times both scales. kTile then holds packed u32s.
 */
export interface SkeletonHooks {
  bindings: readonly BindingSpec[];
  tiles?: boolean;
  gate?: string;
  init?: string;
  logits?: 'float' | 'int8';
}

export function attentionWgsl(spec: AttentionSpec, header: string, hooks: SkeletonHooks): string {
  const T = spec.dtype;
  const csr = spec.blocks === 'csr';
  const paged = spec.kv === 'paged';
  const bindings = hooks.bindings;
  const int8 = hooks.logits === 'int8';
  const QK = int8 ? 'u32' : T;
  const rolled = spec.headDimLoop === 'rolled';
  // Loop bounds over the head dims (in vec4s): constants, or the same values from Params.
  const dLoop = rolled ? 'P.headDimVec4' : 'D4';
  const dvLoop = rolled ? 'P.valueDimVec4' : 'DV4';
  const binding = (name: string) => bindings.findIndex((b) => b.name === name) + 1;
  return /* wgsl */ `${T === 'f16' ? 'enable f16;\n' : ''}${header}
const D4: u32 = HEAD_DIM / 4u;
const DV4: u32 = VALUE_DIM / 4u;
// Scores of masked keys; finite so that max/exp2 arithmetic never makes inf - inf = NaN.
const MASKED: f32 = -3.0e38;

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(${binding('q')}) var<storage, read> q: array<${QK}>;
@group(0) @binding(${binding('k')}) var<storage, read> k: array<${QK}>;
@group(0) @binding(${binding('v')}) var<storage, read> v: array<${T}>;
@group(0) @binding(${binding('o')}) var<storage, read_write> o: array<${T}>;
${csr ? `@group(0) @binding(${binding('rowPtr')}) var<storage, read> rowPtr: array<i32>;  // [B·H·nQB + 1]
@group(0) @binding(${binding('colIdx')}) var<storage, read> colIdx: array<i32>;  // [kept blocks]` : ''}
${paged ? `@group(0) @binding(${binding('blockTable')}) var<storage, read> blockTable: array<i32>;  // [B, tableStride]` : ''}

${int8 ? `@group(0) @binding(${binding('qScale')}) var<storage, read> qScale: array<f32>;  // [B, H, nQB]
@group(0) @binding(${binding('kScale')}) var<storage, read> kScale: array<f32>;  // [B, Hkv, nKB]
var<workgroup> kTile: array<u32, TILE_KEYS * D4>;         // [TILE_KEYS, HEAD_DIM/4] packed int8
var<workgroup> kScaleTile: array<f32, TILE_KEYS>;         // [TILE_KEYS] each key's block scale
fn loadQ4(e: u32) -> u32 { return q[e / 4u]; }
fn loadK4(e: u32) -> u32 { return k[e / 4u]; }` : `var<workgroup> kTile: array<vec4<f32>, TILE_KEYS * D4>;   // [TILE_KEYS, HEAD_DIM/4]
fn loadQ4(e: u32) -> vec4<f32> { return vec4<f32>(f32(q[e]), f32(q[e + 1u]), f32(q[e + 2u]), f32(q[e + 3u])); }
fn loadK4(e: u32) -> vec4<f32> { return vec4<f32>(f32(k[e]), f32(k[e + 1u]), f32(k[e + 2u]), f32(k[e + 3u])); }`}
var<workgroup> vTile: array<vec4<f32>, TILE_KEYS * DV4>;  // [TILE_KEYS, VALUE_DIM/4]

fn loadV4(e: u32) -> vec4<f32> { return vec4<f32>(f32(v[e]), f32(v[e + 1u]), f32(v[e + 2u]), f32(v[e + 3u])); }

${KV_HOOK[spec.kv]}
${tokenRuleHook(spec.tokenRule).portableWgsl}
${hooks.tiles ? TILES_BLOCK_LIST : BLOCK_LIST_HOOK[spec.blocks]}
${hooks.gate ?? ''}
// Cooperative load of keys [t0, t0 + cols) of (b, kh) into kTile/vTile; rows past cols are zero.
fn loadTile(b: u32, kh: u32, t0: u32, cols: u32, lid: u32) {
  for (var e = lid; e < TILE_KEYS * D4; e += WORKGROUP_SIZE) {
    let c = e / D4;
    kTile[e] = select(${int8 ? '0u' : 'vec4<f32>(0.0)'}, loadK4(keyRow(b, kh, t0 + min(c, cols - 1u)) + (e % D4) * 4u), c < cols);
  }
${int8 ? `  let kvHeads = P.heads / P.groupSize;
  let nKB = (P.keyLength + P.blockCols - 1u) / P.blockCols;
  for (var c = lid; c < TILE_KEYS; c += WORKGROUP_SIZE) {
    kScaleTile[c] = kScale[(b * kvHeads + kh) * nKB + min(t0 + c, P.keyLength - 1u) / P.blockCols];
  }
` : ''}  for (var e = lid; e < TILE_KEYS * DV4; e += WORKGROUP_SIZE) {
    let c = e / DV4;
    vTile[e] = select(vec4<f32>(0.0), loadV4(valueRow(b, kh, t0 + min(c, cols - 1u)) + (e % DV4) * 4u), c < cols);
  }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = wg.y;
  let qb = wg.x / P.chunksPerBlock;
  let firstRow = qb * P.blockRows + (wg.x % P.chunksPerBlock) * WORKGROUP_SIZE;
  let rowsEnd = min(min(firstRow + WORKGROUP_SIZE, (qb + 1u) * P.blockRows), P.queryLength);
  if (firstRow >= rowsEnd) { return; }  // uniform: a chunk past the end of a partial block
  let i = firstRow + lid;
  let rowActive = i < rowsEnd;
  let kh = h / P.groupSize;
  let keyPos = P.queryOffset + i;
  // Keys past the causal diagonal of the workgroup's last row are never loaded.
  let keyLimit = select(P.keyLength, min(P.keyLength, P.queryOffset + rowsEnd), P.causal != 0u);

  // f16 I/O keeps q as f16 (exact: it was stored so) to free registers for acc; f32 keeps f32.
  var qv: array<${int8 ? 'u32' : `vec4<${T}>`}, D4>;
  var acc: array<vec4<f32>, DV4>;
  var m = MASKED;
  var l = 0.0;
  ${int8 ? 'var qs = 0.0;  // the row\'s block scale (log2 domain)' : ''}
  if (rowActive) {
    let qRow = P.qOffset + b * P.qStrideB + h * P.qStrideH + i * P.qStrideL;
    for (var d = 0u; d < ${dLoop}; d++) { qv[d] = ${int8 ? 'loadQ4(qRow + d * 4u)' : `vec4<${T}>(loadQ4(qRow + d * 4u))`}; }
    ${int8 ? 'qs = qScale[(b * P.heads + h) * P.numQueryBlocks + i / P.blockRows];' : ''}
  }
${hooks.init ?? ''}
  let list = blockListRange(b, h, qb);
  for (var n = list.x; n < list.y; n++) {
    let keys = blockKeys(n);
    let j1 = min(keys.y, keyLimit);
${hooks.gate ? `    // Hook gate: a causally valid block the gate rejects is skipped whole.
    if (keys.x >= j1) { continue; }
    if (!keepBlock(b, h, kh, qb, n, keys.x, j1, lid, rowActive, keyPos, i, &qv, m)) { continue; }
` : ''}    for (var t0 = keys.x; t0 < j1; t0 += TILE_KEYS) {
      let cols = min(TILE_KEYS, j1 - t0);
      loadTile(b, kh, t0, cols, lid);
      workgroupBarrier();
      if (rowActive) {
        for (var c = 0u; c < cols; c++) {
          let j = t0 + c;
          if ((P.causal == 0u || j <= keyPos) && tokenVisible(i, j)) {
${int8 ? `            var xi = 0i;  // |Σ| <= D·127² fits i32
            for (var d = 0u; d < ${dLoop}; d++) { xi += dot4I8Packed(qv[d], kTile[c * D4 + d]); }
            let x = f32(xi) * qs * kScaleTile[c];` : `            var x = 0.0;
            for (var d = 0u; d < ${dLoop}; d++) { x += dot(vec4<f32>(qv[d]), kTile[c * D4 + d]); }
            x *= P.scaleLog2e;`}
            // Online softmax one key at a time; the rescale runs only when the max grows.
            if (x > m) {
              let rescale = exp2(m - x);
              l *= rescale;
              for (var d = 0u; d < ${dvLoop}; d++) { acc[d] *= rescale; }
              m = x;
            }
            let p = exp2(x - m);
            l += p;
            for (var d = 0u; d < ${dvLoop}; d++) { acc[d] += p * vTile[c * DV4 + d]; }
          }
        }
      }
      workgroupBarrier();
    }
  }

  if (rowActive) {
    let inv = select(0.0, 1.0 / l, l > 0.0);  // a row that saw no key stays zero
    let oRow = P.oOffset + b * P.oStrideB + h * P.oStrideH + i * P.oStrideL;
    for (var d = 0u; d < ${dvLoop}; d++) {
      let x = acc[d] * inv;
      for (var e = 0u; e < 4u; e++) { o[oRow + d * 4u + e] = ${T}(x[e]); }
    }
  }
}
`;
}
