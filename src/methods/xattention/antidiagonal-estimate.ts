/**
 * XAttention block estimation (arXiv 2503.16428; spec xattention.md steps 1-7), per (batch, head):
 *
 *   A[i, j] = scale/S · Σ_{s<S} q(i·S + S-1-s) · k(j·S + s)      antidiagonal of the S×S tile (i, j)
 *   valid(i, j) = j < ceil(Lk/S) and, when causal, j <= i + off,  off = ceil(Lk/S) - ceil(Lq/S)
 *   P[i, :] = softmax over the valid j of row i (f64); rows i >= ceil(Lq/S) are padding (zero)
 *   W[a, b] = Σ P over the (B/S)×(B/S) tile of block (a, b)        W: [B, H, nQB, nKB]
 *
 * Tokens past Lq / Lk are the zero padding of step 1: they add nothing to a dot product, and padded
 * key columns are left out of the softmax, so padding to B or to any larger chunk gives one mask.
 * Memory: one row of ceil(Lk/S) scores at a time, never the (Lq/S)×(Lk/S) matrix.
 *
 * Selection per query block a (step 6/7): keep block 0 and the diagonal block, then the other
 * blocks left of the diagonal in descending W while the kept mass is below tau·Σ_b W[a, b] (the
 * crossing block is kept); nothing right of the diagonal. Non-causal: descending W alone, and
 * block 0 (the reference's gather always marks it).
 */
import { describeAttention } from '../../core/attention-shape.js';
import { BlockMask, type BlockMaskDims } from '../../core/block-mask.js';
import { InvalidArgumentError } from '../../core/errors.js';
import type { HeadTensor } from '../../core/tensor.js';

export interface XAttentionParams {
  /** tau in (0, 1]: fraction of each query block's estimated mass to keep. */
  threshold: number;
  /** B: block size in tokens on both axes, a multiple of stride. */
  blockSize: number;
  /** S: antidiagonal stride. */
  stride: number;
}

export interface XAttentionEstimate {
  /** Kept B×B blocks over (Lq × Lk), queries right-aligned to keys. */
  mask: BlockMask;
  /** W [B, H, nQB, nKB]: estimated softmax mass per block (each valid strided row sums to 1). */
  blockScores: Float32Array;
}

export function checkXAttentionParams(p: XAttentionParams, prefix = 'xattention'): XAttentionParams {
  const { threshold, blockSize, stride } = p;
  if (typeof threshold !== 'number' || !(threshold > 0 && threshold <= 1)) {
    throw new InvalidArgumentError(`${prefix}.threshold`, threshold, 'in (0, 1] (use dense: true for dense attention)');
  }
  if (typeof stride !== 'number' || !Number.isInteger(stride) || stride < 1) throw new InvalidArgumentError(`${prefix}.stride`, stride, 'an integer >= 1');
  if (typeof blockSize !== 'number' || !Number.isInteger(blockSize) || blockSize < stride || blockSize % stride !== 0) {
    throw new InvalidArgumentError(`${prefix}.blockSize`, blockSize, `a positive integer multiple of stride (${stride})`);
  }
  return p;
}

/** Sizes of the strided problem of one call. */
export interface StridedGeometry {
  queryLength: number;
  keyLength: number;
  blockSize: number;
  stride: number;
  causal: boolean;
  numQueryBlocks: number;
  numKeyBlocks: number;
  /** B/S: strided rows (and columns) per block. */
  rowsPerBlock: number;
  /** ceil(Lq/S): strided rows holding a real query. */
  queryRows: number;
  /** ceil(Lk/S): strided columns holding a real key. */
  keyCols: number;
  /** ceil(Lk/S) - ceil(Lq/S): strided causal offset (queries right-aligned). */
  offset: number;
}

export function stridedGeometry(queryLength: number, keyLength: number, params: XAttentionParams, causal: boolean): StridedGeometry {
  const { blockSize: B, stride: S } = params;
  const queryRows = Math.ceil(queryLength / S);
  const keyCols = Math.ceil(keyLength / S);
  return {
    queryLength, keyLength, blockSize: B, stride: S, causal,
    numQueryBlocks: Math.ceil(queryLength / B),
    numKeyBlocks: Math.ceil(keyLength / B),
    rowsPerBlock: B / S,
    queryRows, keyCols,
    offset: keyCols - queryRows,
  };
}

/**
 * The diagonal key block of query block a: the block holding the key position of the block's last
 * query. Equals the spec's a + nKB - nQB whenever (Lk - Lq) mod B does not push the last query past
 * it (always when Lq = Lk or B divides Lk - Lq); otherwise the spec's block would leave queries
 * without their own key (docs/methods/xattention.md).
 */
export function diagonalBlock(g: StridedGeometry, a: number): number {
  const lastQuery = Math.min((a + 1) * g.blockSize, g.queryLength) - 1;
  return Math.floor((g.keyLength - g.queryLength + lastQuery) / g.blockSize);
}

/**
 * Adds one query block's softmaxed stripe into w (length nKB): for each strided row of block a,
 * the antidiagonal scores of its valid columns (from `antidiagonal(i, j)`), softmax, block sums.
 * `row` is scratch of length keyCols.
 */
export function accumulateStripe(g: StridedGeometry, a: number, antidiagonal: (i: number, j: number) => number, row: Float64Array, w: Float64Array): void {
  const R = g.rowsPerBlock;
  const iEnd = Math.min((a + 1) * R, g.queryRows); // rows >= queryRows are padding: they stay zero
  for (let i = a * R; i < iEnd; i++) {
    const jEnd = g.causal ? Math.min(g.keyCols, i + g.offset + 1) : g.keyCols;
    let max = -Infinity;
    for (let j = 0; j < jEnd; j++) {
      row[j] = antidiagonal(i, j);
      if (row[j] > max) max = row[j];
    }
    let sum = 0;
    for (let j = 0; j < jEnd; j++) sum += row[j] = Math.exp(row[j] - max);
    for (let j = 0; j < jEnd; j++) w[Math.floor(j / R)] += row[j] / sum;
  }
}

/**
 * Kept key blocks of one query block from its block sums w (length nKB), ascending. `diagonal` is
 * the causal diagonal block, or null for non-causal selection.
 */
export function selectBlocks(w: ArrayLike<number>, threshold: number, diagonal: number | null): number[] {
  let total = 0;
  for (let b = 0; b < w.length; b++) total += w[b];
  const required = threshold * total;
  const kept = new Set<number>();
  let acc = 0;
  for (const b of diagonal === null ? [] : [0, diagonal]) {
    if (kept.has(b)) continue; // block 0 is the diagonal: count its mass once
    kept.add(b);
    acc += w[b];
  }
  const others: number[] = [];
  for (let b = 0; b < (diagonal ?? w.length); b++) if (!kept.has(b)) others.push(b);
  // Descending mass; equal masses keep the lower block first, so ties are deterministic.
  others.sort((x, y) => w[y] - w[x] || x - y);
  for (const b of others) {
    if (!(acc < required)) break;
    kept.add(b); // the block that crosses the threshold is kept too
    acc += w[b];
  }
  if (diagonal === null) kept.add(0); // the reference's gather always marks block 0
  return [...kept].sort((x, y) => x - y);
}

/**
 * Block sums W for every (batch, head) and the selected mask, from an antidiagonal function per
 * (batch, head). Shared by estimation from Q, K and by calculateSparsity on a score matrix.
 */
export function selectFromAntidiagonals(
  dims: Omit<BlockMaskDims, 'blockRows' | 'blockCols'>,
  params: XAttentionParams,
  antidiagonalOf: (b: number, h: number) => (i: number, j: number) => number,
): XAttentionEstimate {
  const g = stridedGeometry(dims.queryLength, dims.keyLength, params, dims.causal);
  const { numQueryBlocks: nQB, numKeyBlocks: nKB } = g;
  const blockScores = new Float32Array(dims.batch * dims.heads * nQB * nKB);
  const dense = new Uint8Array(blockScores.length);
  const row = new Float64Array(g.keyCols);
  const w = new Float64Array(nKB);
  for (let b = 0; b < dims.batch; b++)
    for (let h = 0; h < dims.heads; h++) {
      const antidiagonal = antidiagonalOf(b, h);
      for (let a = 0; a < nQB; a++) {
        w.fill(0);
        accumulateStripe(g, a, antidiagonal, row, w);
        const base = ((b * dims.heads + h) * nQB + a) * nKB;
        blockScores.set(w, base);
        for (const kb of selectBlocks(w, params.threshold, dims.causal ? diagonalBlock(g, a) : null)) dense[base + kb] = 1;
      }
    }
  const mask = BlockMask.fromDense({ ...dims, blockRows: params.blockSize, blockCols: params.blockSize }, dense);
  return { mask, blockScores };
}

/**
 * XAttention estimation from Q [B, H, Lq, D] and K [B, Hkv, Lk, D] (GQA: head h reads KV head
 * floor(h / (H/Hkv))). Cost about Lq·Lk·D/S multiply-adds per head.
 */
export function estimateXAttention(q: HeadTensor, k: HeadTensor, params: XAttentionParams, opts: { causal?: boolean; scale?: number } = {}): XAttentionEstimate {
  checkXAttentionParams(params);
  const p = describeAttention(q, k, k, opts);
  const { stride: S } = params;
  const qd = q.toFloat32Array();
  const kd = k.toFloat32Array();
  const D = p.headDim;
  const factor = p.scale / S;
  return selectFromAntidiagonals(
    { batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, causal: p.causal },
    params,
    (b, h) => {
      const kh = Math.floor(h / p.groupSize);
      return (i, j) => {
        let acc = 0;
        for (let s = 0; s < S; s++) {
          const qi = i * S + S - 1 - s;
          const kj = j * S + s;
          if (qi >= p.queryLength || kj >= p.keyLength) continue; // zero padding
          const qo = q.offset(b, h, qi);
          const ko = k.offset(b, kh, kj);
          for (let d = 0; d < D; d++) acc += qd[qo + d] * kd[ko + d];
        }
        return acc * factor;
      };
    },
  );
}

/**
 * For the engine's chunked prefill: the block mask of one prefill chunk. `chunkQ` holds the chunk's
 * queries [B, H, Lc, D]; `keys` all keys visible to it, cached then new [B, Hkv, Lk, D], Lk >= Lc.
 * Queries are right-aligned (chunk query i sits at key position Lk - Lc + i); causal. The mask's
 * query blocks tile the chunk from its first query, its key blocks tile keys from 0.
 */
export function estimateXAttentionChunk(chunkQ: HeadTensor, keys: HeadTensor, params: XAttentionParams, scale?: number): XAttentionEstimate {
  return estimateXAttention(chunkQ, keys, params, { causal: true, scale });
}
