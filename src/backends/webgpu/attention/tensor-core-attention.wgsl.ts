/**
 * Tensor-core (subgroup-matrix) flash attention in WGSL, dense or block-sparse.
 *
 * Computes O = softmax(scale · Q Kᵀ + mask) V for one (batch, head, 16·SG query rows) per workgroup:
 *   Q [B, H, Lq, D] f16, K/V [B, Hkv, Lk, D] f16 (any strides: both layouts, views of a cache),
 *   O [B, H, Lq, D] f32.  Tiles: each of SG subgroups owns 16 query rows; key tiles of BC keys.
 *
 * Subgroup matrices are opaque (no per-element access), so the FlashAttention rescale of the
 * output accumulator (O ← O·e^(m−m')) cannot be done in registers. Two variants:
 *   passes = 1 (the default, 1.3× faster at 32K on the H100): a per-row reference max that moves
 *     only when a tile's scores exceed it by more than 2^8, so P = exp2(S − m) ≤ 256 stays exact
 *     enough in f16; the rare rescale of O (on random inputs: the first tile only) stores the
 *     accumulators to workgroup memory, scales each row there and loads them back. The decision
 *     is workgroup-wide (a flag per subgroup, read with workgroupUniformLoad) so the barriers
 *     inside stay uniform; O is divided by l at the end, through the same scratch.
 *   passes = 2: pass 1 computes S = Q Kᵀ → scratch → exact row max m and sum l; pass 2 computes
 *     S again → P = exp(S − m) / l as f16 → O += P V. QKᵀ twice, but O never leaves registers.
 *
 * Block-sparse: the key tiles visited are those of the kept key blocks of the workgroup's query
 * block (CSR rowPtr/colIdx of a BlockMask), so dense is the same loop over every block.
 * Visibility (causality, and a token rule inside kept blocks) is tested per score in the scalar
 * softmax step, so it costs nothing on the tensor cores.
 * Requirements (checked by tensorCoreSpecFor and the program's supports()): Lq % (16·SG) == 0, Lk % BC == 0, D in {64, 128},
 * mask blockRows % (16·SG) == 0 and blockCols % BC == 0 (BC: the key tile, 16, 32 or 64).
 *
 * `emulate` (tests only) rewrites the generated text's subgroup-matrix builtins into plain WGSL
 * (tensor-core-emulation.wgsl.ts), so this data flow is tested where there are no subgroup matrices.
 */

import { UnsupportedError } from '../../../core/errors.js';
import { type TokenRuleKey, tokenRuleHook } from '../methods/gpu-token-rules.js';
import { seq, SUBGROUP_MATRIX_PRELUDE } from '../runtime/subgroup-matrix-wgsl.js';
import { emulateTensorCoreWgsl } from './tensor-core-emulation.wgsl.js';

export type TensorCoreAttentionSpec = {
  readonly headDim: 64 | 128;
  readonly causal: boolean;
  /** 'csr': visit the key blocks of a CSR block list; 'all': every tile up to the causal limit. */
  readonly blocks: 'all' | 'csr';
  /** Q, K, V storage is f16; O is written as this dtype (f32 straight from the accumulators). */
  readonly out: 'f16' | 'f32';
  /** Subgroups per workgroup (each owns 16 query rows); 2 only emulated (lavapipe's 32 KiB fit it staged). */
  readonly subgroups: 2 | 4 | 8;
  /**
   * Stage each K and V tile in workgroup memory once for all subgroups (vec4 loads, padded rows)
   * instead of every subgroup reading it from global memory. Needs 16-byte aligned rows.
   */
  readonly stage: boolean;
  /**
   * 2: exact max and sum first, then P·V (QKᵀ twice). 1: one pass with a lazy rescale — a row's
   * reference max moves only when a tile's max exceeds it by more than 2^RESCALE_LOG2, so P stays
   * ≤ 2^8 (exact in f16's range) and the O accumulators go through workgroup memory only then.
   */
  readonly passes: 1 | 2;
  /**
   * Bank-conflict avoidance in workgroup memory: 'scores', lanes walk their row of the score
   * scratch from rotated columns; 'staging', groups of 8 lanes write staged K/V words in a rotated
   * order (a dynamic vector index). Measured on the H200 (bench/tensor-core-variants.ts, D128, 32K):
   * the score rotation 1.45× faster than none, the staging rotation 1.4× slower (its dynamic index
   * costs more than the 4-way bank conflicts it removes).
   */
  readonly swizzle: 'none' | 'scores' | 'staging' | 'both';
  /**
   * Bench-only diagnostics that leave a stage out (the output is then wrong): 'no-softmax' skips
   * the per-score loops (P is whatever the tile holds), 'no-mma' skips the QKᵀ and PV multiplies.
   * With a token rule: 'rule-causal-scores' keeps the rule's whole-tile test but tests causality
   * alone per score; 'rule-causal-tiles' tests the rule per score but classifies tiles as without it
   * (so tiles the rule cuts count as whole): what each half of the rule's code costs.
   */
  readonly diag?: 'no-softmax' | 'no-mma' | 'rule-causal-scores' | 'rule-causal-tiles';
  /**
   * QKᵀ as CT independent accumulator chains over the head dim instead of one chain per 16 keys
   * at a time: 2–6% faster staged, up to 27% slower unstaged at D64 (H200), so it follows `stage`.
   */
  readonly interleave: boolean;
  /** A token rule inside kept blocks, through its visibility hook (attention/token-visibility.ts), or 'none'. */
  readonly tokenRule: TokenRuleKey;
  /**
   * Test-only: plain WGSL in place of the subgroup-matrix builtins (tensor-core-emulation.wgsl.ts),
   * so the data flow runs on adapters without them. Never chosen by the dispatcher.
   */
  readonly emulate?: boolean;
  /**
   * Keys per tile (64 when absent; the dispatcher's default is 32). Narrower tiles shrink the score
   * scratch and the live registers (more workgroups per SM) and let 8 subgroups (128 query rows per
   * staged tile) fit staged and one-pass in 48 KiB of workgroup memory.
   */
  readonly keyTile?: 16 | 32 | 64;
  /**
   * Staged, one pass: each thread loads its share of the next K (V) tile into registers while the
   * current tile is multiplied, and stores it to workgroup memory after the next barrier, so the
   * global-memory latency of staging overlaps the multiplies and the softmax (the tiled GEMM's
   * design, through registers: WGSL has no asynchronous copies).
   */
  readonly prefetch?: boolean;
  /**
   * Prefetched: the next K tile's loads are not behind a test for the last tile; there they re-read
   * the last tile (unused), as the XAttention GEMM estimate's clamped loads (15% off there).
   */
  readonly prefetchClamp?: boolean;
  /**
   * The token rule's per-score test as its hook's single expression (tensorCoreExprWgsl) instead of
   * its statements with early returns, which diverge where a workgroup mixes rule cases (tri-shape's
   * dense and windowed rows): on the H200 the rule's per-score test costs 2.5 of tri-shape's 23.9 ms
   * at 32K (bench/results/2026-12-04f-h200/tc-rulediag.json).
   */
  readonly ruleExpression?: boolean;
  /**
   * Split, one pass: tiles where each row sees all of the tile or none of it (the hook's
   * tensorCoreTileRowwiseWgsl; tri-shape: outside every row's window, past the sinks) test a per-row
   * constant instead of the rule per score. At 32K one tri-shape workgroup per head (dense and windowed
   * rows mixed) tests 1796 of its 2048 tiles per score otherwise.
   */
  readonly ruleRowwise?: boolean;
  /**
   * Visit only the tiles some row of the workgroup sees: in a block list, the tiles of a diagonal
   * block past the workgroup's last row (causal), and the tiles a token rule hides from every row
   * (its hook's tensorCoreTileHiddenWgsl: tri-shape's window edges). Uniform per workgroup.
   */
  readonly skipHidden?: boolean;
  /**
   * Causal: workgroups take query tiles from the last (most keys) to the first, so the longest
   * workgroups start first and the short ones fill the tail.
   */
  readonly heavyFirst?: boolean;
  /**
   * Workgroups take heads innermost (grid [heads, query tiles, batch]): with heavyFirst, every head's
   * heaviest query tile starts before any head's next one. Query tiles innermost, the last head's
   * heaviest tile starts after about (H-1)/H of the grid, a tail where a few tiles see far more keys
   * than the rest (tri-shape's dense last rows: 2048 key tiles at 32K against about 264 for the others).
   */
  readonly headsInner?: boolean;
  /**
   * One pass: the softmax loops run twice over in the code, once for tiles every row sees wholly
   * (no per-score test) and once with it, chosen per tile (uniform), instead of one loop testing
   * `full || visible(i, j)` per score.
   */
  readonly splitFull?: boolean;
  /**
   * flash-skip-softmax in the loop (one pass, every key tile, no token rule): the workgroup's rows
   * are the method's query tile and P.skipTiles key tiles its key tile. A tile whose block is not
   * decided yet votes keep when some row's tile max is above its running max over kept blocks
   * + log2 threshold; votes are OR-ed per tile (workgroup-uniform), so a block is decided at its
   * first voting tile. Until then nothing is added to l or O; when that tile is not the block's
   * first, the loop goes back to the block's first tile and computes the block whole. Kept flags
   * and counters (visited, skipped, raised rows) are written by the same dispatch.
   */
  readonly flashSkip?: boolean;
  /**
   * flashSkip: publish the votes before the softmax and run exp2, P and V's staging only on kept
   * tiles (one more barrier per kept tile), instead of computing P on every tile before the vote.
   */
  readonly voteFirst?: boolean;
};

/** The dispatch grid of a variant: heads innermost with `headsInner` (main() reads its axes to match). */
export const tensorCoreGrid = (spec: Pick<TensorCoreAttentionSpec, 'headsInner'>, queryTiles: number, heads: number, batch: number): [number, number, number] =>
  spec.headsInner ? [heads, queryTiles, batch] : [queryTiles, heads, batch];

export const TC_KEY_TILE = 64;
/** Keys per tile of a variant. */
export const tcKeyTile = (spec: Pick<TensorCoreAttentionSpec, 'keyTile'>): 16 | 32 | 64 => spec.keyTile ?? TC_KEY_TILE;
export const TC_ROWS_PER_SUBGROUP = 16;


/**
 * f16 output: accumulators are f32 matrices, so they go through the subgroup's f32 scratch
 * (BC columns at a time) and each lane converts its half-row.
 */
function storeF16(D: number, BC: number): string {
  const parts: string[] = [];
  for (let half = 0; half < D / BC; half++) {
    parts.push(`      workgroupBarrier();`);
    for (let c = 0; c < BC / 16; c++) {
      parts.push(`      subgroupMatrixStore<row_major>(&sTile, sg * 16u * BC + ${c * 16}u, o${half * (BC / 16) + c}, BC);`);
    }
    parts.push(`      workgroupBarrier();
      for (var c = 0u; c < BC / 2u; c++) {
        let cc = (c + rot) & (BC / 2u - 1u);
        O[oBase + row * P.oStrideL + ${half * BC}u + side * (BC / 2u) + cc] = f16(sTile[scratch + cc]);
      }`);
  }
  return parts.join('\n');
}

/** How far (log2) a row's scores may rise above its reference max before O is rescaled. */
export const RESCALE_LOG2 = 8;

type Src = (d: number) => string;

/**
 * S = Q Kᵀ of the key tile at j0 into the subgroup's f32 scratch (staging K first when the spec
 * stages), between the barriers that keep the previous tile's readers and this tile's apart.
 */
function scoreTile(spec: TensorCoreAttentionSpec, kSrc: Src, pad: string, stageK: string[]): string {
  const DT = spec.headDim / 16;
  const CT = tcKeyTile(spec) / 16;
  // Interleaved: the tile's CT score matrices accumulate side by side over the head dim, CT
  // independent chains of multiplies instead of one chain of DT at a time.
  const interleaved = spec.diag === 'no-mma' ? [] : [
    ...Array.from({ length: CT }, (_, c) => `var s${c} = subgroup_matrix_result<f32, 16, 16>();`),
    ...Array.from({ length: DT * CT }, (_, i) => {
      const d = Math.floor(i / CT), c = i % CT;
      return `{ let c = ${c}u; let kRow = kBase + (j0 + c * 16u) * P.kStrideL; s${c} = subgroupMatrixMultiplyAccumulate(q${d}, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(${kSrc(d)}), s${c}); }`;
    }),
    ...Array.from({ length: CT }, (_, c) => `subgroupMatrixStore<row_major>(&sTile, sg * 16u * BC + ${c * 16}u, s${c}, BC);`),
  ];
  if (spec.interleave) {
    return [
      `workgroupBarrier(); // the previous tile's scratch (and staged V) have been read`,
      ...stageK,
      ...interleaved,
      'workgroupBarrier();',
    ].map((line) => pad + line).join('\n');
  }
  return [
    `workgroupBarrier(); // the previous tile's scratch (and staged V) have been read`,
    ...stageK,
    `for (var c = 0u; c < ${spec.diag === 'no-mma' ? '0u' : 'CT'}; c++) {`,
    '  var s = subgroup_matrix_result<f32, 16, 16>();',
    '  let kRow = kBase + (j0 + c * 16u) * P.kStrideL;',
    ...Array.from({ length: DT }, (_, d) => `  s = subgroupMatrixMultiplyAccumulate(q${d}, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(${kSrc(d)}), s);`),
    '  subgroupMatrixStore<row_major>(&sTile, sg * 16u * BC + c * 16u, s, BC);',
    '}',
    'workgroupBarrier();',
  ].map((line) => pad + line).join('\n');
}

/**
 * How K and V reach the staged tile: code before the tile loop, for K (ending in the barrier), for V.
 * `v` is `vPut` (V into workgroup memory) then `kNext` (the next K tile's loads set off, when prefetched);
 * flash-skip's vote-first order runs vPut on kept tiles only.
 */
interface Staging { readonly before: string; readonly k: string[]; readonly v: string; readonly vPut: string; readonly kNext: string }

function staging(spec: TensorCoreAttentionSpec): Staging {
  if (!spec.stage) return { before: '', k: [], v: '', vPut: '', kNext: '' };
  if (!spec.prefetch) {
    const vPut = 'stageV(vBase, j0, lid); // every subgroup is past its K reads (barrier above)';
    return { before: '', k: ['stageK(kBase, j0, lid);', 'workgroupBarrier();'], v: vPut, vPut, kNext: '' };
  }
  if (spec.passes !== 1) throw new UnsupportedError('prefetched staging runs in the one-pass kernel only');
  const D = spec.headDim;
  const BC = tcKeyTile(spec);
  const threads = spec.subgroups * 32;
  const chunks = (BC * D) / 8 / threads; // 16-byte chunks per thread per tile
  if (!Number.isInteger(chunks)) throw new UnsupportedError(`prefetched staging needs whole chunks per thread (${BC}×${D} tile, ${threads} threads)`);
  const step = threads / (D / 8); // tile rows between a thread's chunks
  const KVS = D + 8;
  const fetch = (buf: string, base: string, stride: string, j: string) =>
    seq(chunks, (n) => `pf${n} = ${buf}[(${base} + (${j} + pfR + ${n * step}u) * ${stride}) / 8u + pfC];`).split('\n').join(' ');
  const put = seq(chunks, (n) => `{ let o = (pfR + ${n * step}u) * ${KVS}u + pfC * 8u; ${
    seq(4, (w) => `let h${w} = bitcast<vec2<f16>>(pf${n}[${w}]); kv[o + ${2 * w}u] = h${w}.x; kv[o + ${2 * w + 1}u] = h${w}.y;`).split('\n').join(' ')} }`).split('\n').join(' ');
  const vPut = `    ${put} // V (every subgroup is past its K reads: barrier above)`;
  const next = spec.prefetchClamp
    ? (spec.skipHidden ? '{ let jf = tileStart(select(t, tNext, tNext < nTiles), qbRow);' : '{ let jf = tileStart(min(t + 1u, nTiles - 1u), qbRow);')
    : (spec.skipHidden ? 'if (tNext < nTiles) { let jf = tileStart(tNext, qbRow);' : 'if (t + 1u < nTiles) { let jf = tileStart(t + 1u, qbRow);');
  const kNext = `    ${next} ${fetch('K', 'kBase', 'P.kStrideL', 'jf')} } // in flight during PV`;
  return {
    before: `  // Prefetch registers: this thread's ${chunks} 16-byte chunks of the next tile (rows pfR + n·${step}, chunk pfC).
  let pfR = lid / ${D / 8}u;
  let pfC = lid % ${D / 8}u;
${seq(chunks, (n) => `  var pf${n} = vec4<u32>();`)}
  if (${spec.skipHidden ? 'tFirst < nTiles' : 'nTiles > 0u'}) { let jf = tileStart(${spec.skipHidden ? 'tFirst' : '0u'}, qbRow); ${fetch('K', 'kBase', 'P.kStrideL', 'jf')} }`,
    k: [...(spec.flashSkip ? [`if (rewound) { ${fetch('K', 'kBase', 'P.kStrideL', 'j0')} } // the prefetch loaded the tile after the one that went back`] : []),
      `${put} // K of this tile, loaded during the previous one`, `${fetch('V', 'vBase', 'P.vStrideL', 'j0')} // V: in flight during QKᵀ and the softmax`, 'workgroupBarrier();'],
    v: `${vPut}\n${kNext}`, vPut, kNext,
  };
}

/**
 * The tile loop's header: every tile, or (skipHidden) only tiles some row of the workgroup sees,
 * with tNext the next such tile (the prefetch loads it during this one).
 */
function tileLoop(spec: TensorCoreAttentionSpec, pad: string): string {
  if (spec.flashSkip) {
    return `${pad}for (var t = 0u; t < nTiles;) { // t moves at the end: on, or back to a block's first tile
${pad}  if (t % P.skipTiles == 0u && !rewound) { blockStart = t; blockKeep = false; mBlock = M; }`;
  }
  if (!spec.skipHidden) return `${pad}for (var t = 0u; t < nTiles; t++) {`;
  return `${pad}var tNext = tFirst;
${pad}for (var t = tNext; t < nTiles; t = tNext) {
${pad}  tNext = nextTile(t + 1u, rowBase, qbRow, nTiles);`;
}

/**
 * A loop over this lane's BC/2 scores of the tile: `visibleStmt` for the scores the row sees
 * (with p declared 0 before it), then `after`. Split: whole tiles (`full`, uniform) run a copy
 * of the loop without the per-score test, so the token rule's code is off their path.
 */
function perScore(spec: TensorCoreAttentionSpec, pad: string, visibleStmt: string, after = ''): string {
  const n = spec.diag === 'no-softmax' ? '0u' : 'BC / 2u';
  const loop = (test: string | undefined) => [
    `for (var c = 0u; c < ${n}; c++) {`,
    '  let cc = (c + rot) & (BC / 2u - 1u);',
    ...(test ? ['  let j = j0 + side * (BC / 2u) + cc;'] : []),
    ...(after ? ['  var p = 0.0;'] : []),
    test ? `  if (${test}) { ${visibleStmt} }` : `  ${visibleStmt}`,
    ...(after ? [`  ${after}`] : []),
    '}',
  ];
  const rowwise = spec.ruleRowwise ? ['} else if (rowwise) {', ...loop('rowSees').map((l) => `  ${l}`)] : [];
  const lines = spec.splitFull
    ? ['if (full) {', ...loop(undefined).map((l) => `  ${l}`), ...rowwise, '} else {', ...loop('visible(qi, j)').map((l) => `  ${l}`), '}']
    : loop('full || visible(qi, j)');
  return lines.map((l) => pad + l).join('\n');
}

/**
 * The one-pass loop: S = QKᵀ → scratch; per row, move the reference max only when this tile's max
 * exceeds it by more than 2^RESCALE_LOG2; P = exp2(S − m) → f16; if any row of the workgroup moved,
 * rescale O through the scratch (uniform branch); O += P V. The epilogue divides by l in scratch.
 */
function onePassLoop(spec: TensorCoreAttentionSpec, kSrc: Src, vSrc: Src): string {
  const D = spec.headDim;
  const DT = D / 16;
  const BC = tcKeyTile(spec);
  const st = staging(spec);
  const CT = BC / 16;
  const SG = spec.subgroups;
  // P = exp2(S − m) → f16 scratch, its row sum into `sum`.
  const softmaxP = (pad: string) => perScore(spec, pad, 'p = exp2(sTile[scratch + cc] * P.scaleLog2 - m);', 'pTile[scratch + cc] = f16(p); sum += p;');
  // O goes through the subgroup's 16×BC f32 scratch CT matrices at a time.
  const viaScratch = (body: (half: number) => string) => Array.from({ length: D / BC }, (_, half) => `
      workgroupBarrier();
${seq(CT, (c) => `      subgroupMatrixStore<row_major>(&sTile, sg * 16u * BC + ${c * 16}u, o${half * CT + c}, BC);`)}
      workgroupBarrier();
${body(half)}`).join('\n');
  return `${st.before ? `${st.before}\n` : ''}  var m = -3.0e38; // this row's reference max (log2 units)
  var l = 0.0;      // Σ exp2(s − m) over the keys seen
${seq(DT, (d) => `  var o${d} = subgroup_matrix_result<f32, 16, 16>();`)}
${spec.flashSkip ? `  var M = -3.0e38;          // this row's running max over kept blocks (log2 units): the skip rule's
  var mBlock = -3.0e38;     // M when the current block began
  var blockStart = 0u;      // uniform from here on: derived from workgroupUniformLoad results
  var blockKeep = false;    // the current block is decided and kept
  var seenFirst = false;    // some earlier block held a visible score (that block is always kept)
  var rewound = false;      // this tile follows a vote that went back to its block's first tile` : ''}
${tileLoop(spec, '  ')}
    let j0 = tileStart(t, qbRow);
    let full = tileFull(j0, rowBase); // every score of the tile visible: no per-score test
${spec.ruleRowwise ? '    let rowwise = !full && tileRowwise(j0, rowBase); // each row sees all of the tile or none\n' : ''}${scoreTile(spec, kSrc, '    ', st.k)}
    var tileMax = -3.0e38;
${perScore(spec, '    ', 'tileMax = max(tileMax, sTile[scratch + cc] * P.scaleLog2);')}
    tileMax = max(tileMax, subgroupShuffleXor(tileMax, 1u));
    var alpha = 1.0;
    if (tileMax > m + RESCALE_LOG2) {
      alpha = exp2(m - tileMax); // 0 while the row has seen nothing
      m = tileMax;
      l = l * alpha;
    }
    let moved = subgroupAny(alpha != 1.0);
${spec.flashSkip ? `    // The row's vote: exp(s − M) ≥ threshold for some score (or the tile raises M), block undecided.
    let seen = tileMax > -3.0e38;
    let vote = !blockKeep && seen && tileMax - max(M, tileMax) > P.log2Threshold;
    let sgVote = subgroupAny(vote);
    let sgSeen = subgroupAny(seen);
    if (lane == 0u) { rescaled[sg] = select(0u, 1u, moved) | select(0u, 2u, sgVote) | select(0u, 4u, sgSeen); }` : `    if (lane == 0u) { rescaled[sg] = select(0u, 1u, moved); }`}
${spec.flashSkip && spec.voteFirst ? '' : `    var sum = 0.0;
${softmaxP('    ')}
${spec.flashSkip ? '    let rowSum = sum + subgroupShuffleXor(sum, 1u); // added once the tile is known to be kept' : '    l += sum + subgroupShuffleXor(sum, 1u);'}
${st.v ? `    ${st.v.trimStart()}` : ''}`}
    let flags = workgroupUniformLoad(&rescaled); // ${spec.flashSkip && spec.voteFirst ? 'the votes' : 'also the barrier that publishes P (and V)'}
${spec.flashSkip ? `    let anyFlags = ${seq(SG, (i) => `flags[${i}]`).split('\n').join(' | ')};
    var back = false; // decided on a later tile of the block: compute the block from its first tile
    if (!blockKeep && ((anyFlags & 2u) != 0u || ((anyFlags & 4u) != 0u && !seenFirst))) {
      blockKeep = true;
      back = t != blockStart;
    }
    let keepTile = blockKeep && !back;
    if ((anyFlags & 4u) != 0u) { seenFirst = true; }
${spec.voteFirst ? `    // Decided before the softmax: a skipped tile costs QKᵀ and its max alone (uniform branch).
    if (keepTile) {
      var sum = 0.0;
${softmaxP('      ')}
      l += sum + subgroupShuffleXor(sum, 1u);
      M = max(M, tileMax);
${st.vPut ? `      ${st.vPut.trimStart()}` : ''}
      workgroupBarrier(); // publishes P (and V)
    }
${st.kNext ? `    ${st.kNext.trimStart()}` : ''}` : `    if (keepTile) {
      l += rowSum;
      M = max(M, tileMax);
    }`}` : ''}
    if (t > ${spec.skipHidden ? 'tFirst' : '0u'} && (${spec.flashSkip ? 'anyFlags & 1u' : seq(SG, (i) => `flags[${i}]`).split('\n').join(' | ')}) != 0u) { // tile 0: O is still zero
${viaScratch((half) => `      for (var c = 0u; c < BC / 2u; c++) { let cc = (c + rot) & (BC / 2u - 1u); sTile[scratch + cc] *= alpha; }
      workgroupBarrier();
${seq(CT, (c) => `      o${half * CT + c} = subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>, row_major>(&sTile, sg * 16u * BC + ${c * 16}u, BC);`)}`)}
    }
    for (var c = 0u; c < ${spec.diag === 'no-mma' ? '0u' : spec.flashSkip ? 'select(0u, CT, keepTile)' : 'CT'}; c++) {
      let pm = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&pTile, sg * 16u * BC + c * 16u, BC);
      let vRow = vBase + (j0 + c * 16u) * P.vStrideL;
${seq(DT, (d) => `      o${d} = subgroupMatrixMultiplyAccumulate(pm, subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(${vSrc(d)}), o${d});`)}
    }
${spec.flashSkip ? `    if (!back && ((t + 1u) % P.skipTiles == 0u || t + 1u == nTiles)) { // the block's last tile
      // A kept block raised the row's max (FlashAttention rescales it: ModelOpt's correction_factor).
      let rowRaised = select(0u, 1u, blockKeep && side == 0u && M > mBlock);
      let raised = subgroupAdd(rowRaised);
      if (lane == 0u && raised > 0u) { atomicAdd(&counters[2], raised); }
      if (lid == 0u) {
        atomicAdd(&counters[0], 1u);
        if (!blockKeep) { atomicAdd(&counters[1], 1u); }
        kept[qbRow * P.numKeyBlocks + t / P.skipTiles] = select(0u, 1u, blockKeep);
      }
    }
    rewound = back;
    t = select(t + 1u, blockStart, back);` : ''}
  }
  // O / l, through the scratch (the accumulators are opaque), written as ${spec.out}.
  let inv = select(0.0, 1.0 / l, l > 0.0);
  let oBase = P.oOffset + b * P.oStrideB + h * P.oStrideH + (rowBase + sg * 16u) * P.oStrideL;
${viaScratch((half) => `      for (var c = 0u; c < BC / 2u; c++) {
        let cc = (c + rot) & (BC / 2u - 1u);
        O[oBase + row * P.oStrideL + ${half * BC}u + side * (BC / 2u) + cc] = ${spec.out}(sTile[scratch + cc] * inv);
      }`)}
`;
}

export function tensorCoreAttentionWgsl(spec: TensorCoreAttentionSpec, header: string): string {
  const D = spec.headDim;
  const DT = D / 16;
  const SG = spec.subgroups;
  const BC = tcKeyTile(spec);
  const st = staging(spec);
  const CT = BC / 16;
  const sparse = spec.blocks === 'csr';
  const hook = tokenRuleHook(spec.tokenRule);
  const expr = hook.tensorCoreExprWgsl;
  if (spec.ruleExpression && expr === undefined) throw new UnsupportedError(`token rule "${spec.tokenRule}" has no tensor-core expression`);
  const rowwiseRule = hook.tensorCoreTileRowwiseWgsl;
  const rowSees = hook.tensorCoreRowSeesWgsl;
  if (spec.ruleRowwise && (rowwiseRule === undefined || rowSees === undefined || !spec.splitFull || spec.passes !== 1)) {
    throw new UnsupportedError(`ruleRowwise needs a token rule with rowwise tiles (got "${spec.tokenRule}"), split loops and one pass`);
  }
  const visibility = spec.diag === 'rule-causal-scores' ? '  return true;' : hook.tensorCoreWgsl;
  const tileRule = hook.tensorCoreTileWgsl;
  const causalTiles = spec.tokenRule === 'none' || spec.diag === 'rule-causal-tiles';
  const hiddenRule = hook.tensorCoreTileHiddenWgsl;
  if (visibility === undefined) throw new UnsupportedError(`token rule "${spec.tokenRule}" has no tensor-core WGSL`);
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
    // Each group of 8 lanes writes its chunks' words in a rotated order: chunk starts are 16-byte
    // aligned (8 of the 32 banks), so in natural order 4 lanes would share a bank on every store.
    let g = ${spec.swizzle === 'staging' || spec.swizzle === 'both' ? '(i >> 3u) & 3u' : '0u'};
${seq(4, (w) => `    { let wr = (${w}u + g) & 3u; let h = bitcast<vec2<f16>>(v[wr]); kv[o + 2u * wr] = h.x; kv[o + 2u * wr + 1u] = h.y; }`)}
  }
}`;
  const wgsl = /* wgsl */ `
${SUBGROUP_MATRIX_PRELUDE}

${header}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> Q: array<f16>;
@group(0) @binding(2) var<storage, read> K: ${kvType};
@group(0) @binding(3) var<storage, read> V: ${kvType};
@group(0) @binding(4) var<storage, read_write> O: array<${spec.out}>;
${sparse ? `@group(0) @binding(5) var<storage, read> rowPtr: array<u32>;
@group(0) @binding(6) var<storage, read> colIdx: array<u32>;` : ''}
${spec.flashSkip ? `@group(0) @binding(5) var<storage, read_write> kept: array<u32>;                // [B, H, nQB, nKB], 1 = computed
@group(0) @binding(6) var<storage, read_write> counters: array<atomic<u32>, 3>;  // visited, skipped, raised rows` : ''}

const DT: u32 = ${DT}u;      // 16-wide slices of the head dim
const BR: u32 = ${SG * 16}u; // query rows per workgroup
const CT: u32 = ${CT}u;      // 16-wide slices of a key tile

// Per subgroup: 16 rows × BC scores (f32) and probabilities (f16).  [SG][16][BC]
var<workgroup> sTile: array<f32, ${SG * 16 * BC}>;
var<workgroup> pTile: array<f16, ${SG * 16 * BC}>;
${spec.passes === 1 ? `// One pass: whether each subgroup moved a row's reference max on this tile (one writer per slot).
var<workgroup> rescaled: array<u32, ${SG}>;
const RESCALE_LOG2: f32 = ${RESCALE_LOG2}.0;` : ''}
${spec.stage ? `// The current K (then V) tile, shared by all subgroups.  [BC][D + 8]
var<workgroup> kv: array<f16, ${BC * KVS}>;
${spec.prefetch ? '' : `${stageFn('stageK', 'K', 'P.kStrideL')}
${stageFn('stageV', 'V', 'P.vStrideL')}`}` : ''}

// Key tiles visited for this workgroup: every tile up to the causal limit, or the tiles of the
// kept blocks. Workgroup-uniform, so every subgroup runs the same loop (barriers stay legal).
${sparse ? `fn tileCount(rowBase: u32, qb: u32) -> u32 {
  return (rowPtr[qb + 1u] - rowPtr[qb]) * (P.blockCols / BC);
}

fn tileStart(t: u32, qb: u32) -> u32 {
  let per = P.blockCols / BC;
  let kb = colIdx[rowPtr[qb] + t / per];
  return kb * P.blockCols + (t % per) * BC;
}` : `fn tileCount(rowBase: u32, qb: u32) -> u32 {
  var n = P.kLen / BC;
  if (CAUSAL) {
    let lastKey = (P.kLen - P.qLen) + rowBase + BR - 1u;
    n = min(n, lastKey / BC + 1u);
  }
  return n;
}

fn tileStart(t: u32, qb: u32) -> u32 { return t * BC; }`}

// Whether query row i (of this call) sees key j: causality, then the token rule.
fn visible(i: u32, j: u32) -> bool {
  let p = (P.kLen - P.qLen) + i; // the query's key position
${spec.ruleExpression && spec.diag !== 'rule-causal-scores' ? `  return (!CAUSAL | (j <= p)) & (${expr});` : `  if (CAUSAL && j > p) { return false; }
${visibility}`}
}

// Whether every row of the workgroup sees every key of the tile at j0 (the tile ends at or before
// the first row's causal limit, and the token rule, if any, hides none of it): the per-score test
// is then skipped. Uniform.
fn tileFull(j0: u32, rowBase: u32) -> bool {
${causalTiles ? `  if (!CAUSAL) { return true; }
  return j0 + BC - 1u <= (P.kLen - P.qLen) + rowBase;` : tileRule === undefined ? '  return false;' : `  let p0 = (P.kLen - P.qLen) + rowBase; // the first row's key position (token rules are causal)
  if (j0 + BC - 1u > p0) { return false; }
  let p1 = p0 + BR - 1u;
${tileRule}`}
}

${spec.ruleRowwise ? `// Whether every row of the workgroup sees all of the tile at j0 or none of it (uniform; rowSeesAll says which).
fn tileRowwise(j0: u32, rowBase: u32) -> bool {
  let p0 = (P.kLen - P.qLen) + rowBase;
  if (j0 + BC - 1u > p0) { return false; }
${rowwiseRule}
}

fn rowSeesAll(i: u32) -> bool { return ${rowSees}; }

` : ''}${spec.skipHidden ? `// Whether no row of the workgroup sees any key of the tile at j0 (uniform): the tile is skipped.
fn tileHidden(j0: u32, rowBase: u32) -> bool {
  let p0 = (P.kLen - P.qLen) + rowBase;
  let p1 = p0 + BR - 1u;
  if (CAUSAL && j0 > p1) { return true; }
${hiddenRule ?? '  return false;'}
}

// The first tile at or after t0 that is not hidden (n when none is left).
fn nextTile(t0: u32, rowBase: u32, qb: u32, n: u32) -> u32 {
  var t = t0;
  while (t < n && tileHidden(tileStart(t, qb), rowBase)) { t++; }
  return t;
}

` : ''}@compute @workgroup_size(${SG * 32})
fn main(@builtin(workgroup_id) wg: vec3u,
        @builtin(subgroup_id) sg: u32,
        @builtin(subgroup_invocation_id) lane: u32,
        @builtin(local_invocation_index) lid: u32) {
  let b = wg.z;
  let h = ${spec.headsInner ? 'wg.x' : 'wg.y'};
  let qTile = ${spec.headsInner ? 'wg.y' : 'wg.x'};
  let kvh = h / P.group;
  let rowBase = ${spec.heavyFirst && spec.causal ? '(P.qLen / BR - 1u - qTile) * BR; // heavy first: the last query tile (most keys) first' : 'qTile * BR;'}
  let qBase = P.qOffset + b * P.qStrideB + h * P.qStrideH + (rowBase + sg * 16u) * P.qStrideL;
  let kBase = P.kOffset + b * P.kStrideB + kvh * P.kStrideH;
  let vBase = P.vOffset + b * P.vStrideB + kvh * P.vStrideH;
  let qbRow = (b * P.heads + h) * P.numQueryBlocks + rowBase / max(P.blockRows, 1u);

  // Q slices stay in registers for the whole call (named, not an array, so nothing spills).
${seq(DT, (t) => `  let q${t} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&Q, qBase + ${t * 16}u, P.qStrideL);`)}

  // This lane's share of the subgroup's 16×BC tile: row lane/2, columns [side·BC/2, +BC/2).
  let row = lane / 2u;
  let side = lane % 2u;
  let qi = rowBase + sg * 16u + row; // this lane's query row${spec.ruleRowwise ? '\n  let rowSees = rowSeesAll(qi); // on rowwise tiles: all or none' : ''}
  let scratch = sg * 16u * BC + row * BC + side * (BC / 2u);
  // Lane (row, side) walks its 32 columns from column rot: at every step the 32 lanes of the
  // subgroup hit 32 different banks of the scratch (row strides are multiples of 32 words, so
  // unrotated they would all hit one bank, a 32-way conflict on every score read and write).
  let rot = ${spec.swizzle === 'scores' || spec.swizzle === 'both' ? '(row + 16u * side) & (BC / 2u - 1u)' : '0u'};
  let nTiles = tileCount(rowBase, qbRow);
${spec.skipHidden ? '  let tFirst = nextTile(0u, rowBase, qbRow, nTiles); // skipped tiles are never visited\n' : ''}
${spec.passes === 1 ? onePassLoop(spec, kSrc, vSrc) : `  var m = -3.0e38;
  var l = 0.0;
  for (var phase = 0u; phase < 2u; phase++) {
${seq(DT, (d) => `    var o${d} = subgroup_matrix_result<f32, 16, 16>();`)}
${tileLoop(spec, '    ')}
      let j0 = tileStart(t, qbRow);
      let full = tileFull(j0, rowBase); // every score of the tile visible: no per-score test
${scoreTile(spec, kSrc, '      ', st.k)}
      if (phase == 0u) {
        var tileMax = -3.0e38;
        for (var c = 0u; c < BC / 2u; c++) {
          let cc = (c + rot) & (BC / 2u - 1u);
          let j = j0 + side * (BC / 2u) + cc;
          if (full || visible(qi, j)) { tileMax = max(tileMax, sTile[scratch + cc] * P.scaleLog2); }
        }
        tileMax = max(tileMax, subgroupShuffleXor(tileMax, 1u));
        let mNew = max(m, tileMax);
        var sum = 0.0;
        for (var c = 0u; c < BC / 2u; c++) {
          let cc = (c + rot) & (BC / 2u - 1u);
          let j = j0 + side * (BC / 2u) + cc;
          if (full || visible(qi, j)) { sum += exp2(sTile[scratch + cc] * P.scaleLog2 - mNew); }
        }
        sum += subgroupShuffleXor(sum, 1u);
        l = l * exp2(m - mNew) + sum;
        m = mNew;
      } else {
        let inv = select(0.0, 1.0 / l, l > 0.0);
        for (var c = 0u; c < BC / 2u; c++) {
          let cc = (c + rot) & (BC / 2u - 1u);
          let j = j0 + side * (BC / 2u) + cc;
          var p = 0.0;
          if (full || visible(qi, j)) { p = exp2(sTile[scratch + cc] * P.scaleLog2 - m) * inv; }
          pTile[scratch + cc] = f16(p);
        }
${st.v ? `        ${st.v.trimStart()}` : ''}
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
${spec.out === 'f32' ? seq(DT, (d) => `      subgroupMatrixStore<row_major>(&O, oBase + ${d * 16}u, o${d}, P.oStrideL);`) : storeF16(D, BC)}
    }
  }
`}}
`;
  return spec.emulate ? emulateTensorCoreWgsl(wgsl, SG, spec.out) : wgsl;
}
