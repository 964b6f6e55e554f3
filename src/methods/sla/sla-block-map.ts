/**
 * SLA's block map (thu-ml/SLA `get_block_map`): which key blocks each query block attends to
 * exactly; every other key block goes to SLA's linear part.
 *
 *   q [B, H, Lq, D], k [B, Hkv, Lk, D] (either layout, f32 or f16; GQA: head h reads KV head h / group)
 *   pooledQ   [B, H, nQB, D]      mean of q over each BLKQ rows (a partial last block: its real rows)
 *   pooledK   [B, Hkv, nKB, D]    mean of smoothed k (k minus its mean over the sequence) over BLKK rows
 *   scores    [B, H, nQB, nKB]    pooledQ · pooledKᵀ in f32 (no scale: only the ranking matters)
 *   sparseMap [B, H, nQB, nKB]    1 at the selected blocks
 *   lut       [B, H, nQB, topk]   selected key blocks, ascending; causal rows with fewer valid
 *                                 blocks than topk list counts[row] blocks and pad with -1
 *   counts    [B, H, nQB]         selected blocks per row (= topk when not causal)
 *
 * topk = max(1, min(nKB, floor(topkRatio · nKB))); the reference has no max(1, ·) and would select
 * nothing for tiny ratios. Ties rank the lower block index first (torch.topk leaves ties unspecified).
 *
 * Causal (the reference has no causal mode): a query block may only select causally valid key
 * blocks (blocks holding at least one key visible to one of its queries). topk stays the count
 * over all nKB blocks, so a row with fewer valid blocks than topk keeps all of them (early query
 * blocks are dense, and their linear part is empty). Smoothing K with the mean over the whole
 * sequence does not leak future keys into the choice: it shifts a row's scores by the constant
 * pooledQ · mean, which leaves the ranking unchanged (it only keeps the pooled values well scaled).
 */
import { describeAttention } from '../../core/attention-shape.js';
import { blockCausallyValid, BlockMask, type BlockMaskDims } from '../../core/block-mask.js';
import { InvalidArgumentError, requireInteger } from '../../core/errors.js';
import type { Scores } from '../../core/scores.js';
import type { HeadTensor } from '../../core/tensor.js';

export interface SlaBlockMap {
  batch: number;
  heads: number;
  queryLength: number;
  keyLength: number;
  blockQ: number;
  blockK: number;
  causal: boolean;
  numQueryBlocks: number;
  numKeyBlocks: number;
  topk: number;
  sparseMap: Uint8Array;
  lut: Int32Array;
  counts: Int32Array;
  /** [B, H, nQB, nKB] pooledQ · pooledKᵀ (f32). */
  pooledScores: Float32Array;
}

export function checkTopkRatio(parameter: string, topkRatio: unknown): number {
  if (typeof topkRatio !== 'number' || !(topkRatio > 0 && topkRatio <= 1)) {
    throw new InvalidArgumentError(parameter, topkRatio, 'a number in (0, 1]');
  }
  return topkRatio;
}

/** Key blocks each query block attends to exactly. */
export function slaTopk(topkRatio: number, numKeyBlocks: number): number {
  return Math.max(1, Math.min(numKeyBlocks, Math.floor(topkRatio * numKeyBlocks)));
}

/**
 * Top-k of a call with `keyLength` keys that are the first of a longer call's, `keysAfter` more (a
 * causal window, as calibration measures one): counted over the whole call, at most the blocks here.
 */
export function slaWindowTopk(topkRatio: number, keyLength: number, keysAfter: number, BLKK: number): number {
  requireInteger('keysAfter', keysAfter, 0);
  return Math.min(Math.ceil(keyLength / BLKK), slaTopk(topkRatio, Math.ceil((keyLength + keysAfter) / BLKK)));
}

/**
 * `keysAfter`: k is the start of a longer call's keys (a causal window cut from it, as calibration
 * measures one); top-k counts the whole call's key blocks, as SLA does when the whole call runs.
 */
export function getBlockMap(q: HeadTensor, k: HeadTensor, topkRatio: number, BLKQ: number, BLKK: number, opts: { causal?: boolean; keysAfter?: number } = {}): SlaBlockMap {
  checkTopkRatio('topkRatio', topkRatio);
  requireInteger('BLKQ', BLKQ, 1);
  requireInteger('BLKK', BLKK, 1);
  const p = describeAttention(q, k, k, { causal: opts.causal });
  q.assertFinite('q');
  k.assertFinite('k');
  const D = p.headDim;
  const nQB = Math.ceil(p.queryLength / BLKQ);
  const nKB = Math.ceil(p.keyLength / BLKK);
  const pooledQ = meanPool(q, BLKQ, null);
  const pooledK = meanPool(k, BLKK, sequenceMean(k));
  const scores = new Float32Array(p.batch * p.heads * nQB * nKB);
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.heads; h++) {
      const kh = Math.floor(h / p.groupSize);
      for (let qb = 0; qb < nQB; qb++) {
        const qo = ((b * p.heads + h) * nQB + qb) * D;
        for (let kb = 0; kb < nKB; kb++) {
          const ko = ((b * p.kvHeads + kh) * nKB + kb) * D;
          let s = 0;
          for (let d = 0; d < D; d++) s += pooledQ[qo + d] * pooledK[ko + d];
          scores[((b * p.heads + h) * nQB + qb) * nKB + kb] = Math.fround(s);
        }
      }
    }
  const dims: BlockMaskDims = {
    batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength,
    blockRows: BLKQ, blockCols: BLKK, causal: p.causal,
  };
  return selectTopBlocks(dims, scores, slaWindowTopk(topkRatio, p.keyLength, opts.keysAfter ?? 0, BLKK), (_r, qb, kb) => blockCausallyValid(dims, qb, kb));
}

/**
 * Per (b, h, query block) the `topk` highest-scoring valid key blocks (ties: lower index first),
 * as sparseMap, ascending lut and counts. Shared by getBlockMap and by calculateSparsity, which
 * ranks blocks of a given score matrix.
 */
export function selectTopBlocks(dims: BlockMaskDims, scores: Float32Array, topk: number, valid: (row: number, qb: number, kb: number) => boolean): SlaBlockMap {
  const nQB = Math.ceil(dims.queryLength / dims.blockRows);
  const nKB = Math.ceil(dims.keyLength / dims.blockCols);
  const rows = dims.batch * dims.heads * nQB;
  const sparseMap = new Uint8Array(rows * nKB);
  const lut = new Int32Array(rows * topk).fill(-1);
  const counts = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const qb = r % nQB;
    const cand: number[] = [];
    for (let kb = 0; kb < nKB; kb++) if (valid(r, qb, kb)) cand.push(kb);
    cand.sort((a, c) => scores[r * nKB + c] - scores[r * nKB + a] || a - c);
    const chosen = cand.slice(0, topk).sort((a, c) => a - c);
    counts[r] = chosen.length;
    chosen.forEach((kb, i) => {
      lut[r * topk + i] = kb;
      sparseMap[r * nKB + kb] = 1;
    });
  }
  return {
    batch: dims.batch, heads: dims.heads, queryLength: dims.queryLength, keyLength: dims.keyLength,
    blockQ: dims.blockRows, blockK: dims.blockCols, causal: dims.causal,
    numQueryBlocks: nQB, numKeyBlocks: nKB, topk, sparseMap, lut, counts, pooledScores: scores,
  };
}

/** The selected blocks as the BlockMask every kernel reads (br = BLKQ, bc = BLKK). */
export function blockMapToMask(map: SlaBlockMap): BlockMask {
  return BlockMask.fromDense({
    batch: map.batch, heads: map.heads, queryLength: map.queryLength, keyLength: map.keyLength,
    blockRows: map.blockQ, blockCols: map.blockK, causal: map.causal,
  }, map.sparseMap);
}

/** Selected key blocks of one (b, h, query block), ascending (a view of the lut). */
export function selectedBlocks(map: SlaBlockMap, b: number, h: number, qb: number): Int32Array {
  const r = (b * map.heads + h) * map.numQueryBlocks + qb;
  return map.lut.subarray(r * map.topk, r * map.topk + map.counts[r]);
}

/** Per (b, head, channel) mean over the sequence, f32: [B, Ht, D]. */
export function sequenceMean(t: HeadTensor): Float32Array {
  const D = t.headDim;
  const out = new Float32Array(t.batch * t.heads * D);
  const acc = new Float64Array(D);
  for (let b = 0; b < t.batch; b++)
    for (let h = 0; h < t.heads; h++) {
      acc.fill(0);
      for (let l = 0; l < t.length; l++) {
        const row = t.row(b, h, l);
        for (let d = 0; d < D; d++) acc[d] += row[d];
      }
      for (let d = 0; d < D; d++) out[(b * t.heads + h) * D + d] = Math.fround(acc[d] / t.length);
    }
  return out;
}

/**
 * Mean of (t − mean) over blocks of `blk` rows, [B, Ht, nB, D] in f32 (Math.fround): the pooled
 * values stay f32 because rounding them to f16 changes which blocks win. A partial last block
 * averages its real rows only.
 */
export function meanPool(t: HeadTensor, blk: number, mean: Float32Array | null): Float32Array {
  const D = t.headDim;
  const nB = Math.ceil(t.length / blk);
  const out = new Float32Array(t.batch * t.heads * nB * D);
  const acc = new Float64Array(D);
  for (let b = 0; b < t.batch; b++)
    for (let h = 0; h < t.heads; h++) {
      const mo = (b * t.heads + h) * D;
      for (let nb = 0; nb < nB; nb++) {
        acc.fill(0);
        const l1 = Math.min((nb + 1) * blk, t.length);
        for (let l = nb * blk; l < l1; l++) {
          const row = t.row(b, h, l);
          for (let d = 0; d < D; d++) acc[d] += mean ? Math.fround(row[d] - mean[mo + d]) : row[d];
        }
        const o = ((b * t.heads + h) * nB + nb) * D;
        for (let d = 0; d < D; d++) out[o + d] = Math.fround(acc[d] / (l1 - nb * blk));
      }
    }
  return out;
}

/**
 * Mean of each BLKQ × BLKK tile of a score matrix over its entries that are not -Infinity,
 * [B, H, nQB, nKB]; -Infinity for a tile with none (causally invalid, or masked before).
 */
export function tileMeans(scores: Scores, BLKQ: number, BLKK: number): Float32Array {
  const Lq = scores.queryLength;
  const Lk = scores.keyLength;
  const nQB = Math.ceil(Lq / BLKQ);
  const nKB = Math.ceil(Lk / BLKK);
  const pooled = new Float32Array(scores.batch * scores.heads * nQB * nKB).fill(-Infinity);
  for (let bh = 0; bh < scores.batch * scores.heads; bh++)
    for (let qb = 0; qb < nQB; qb++)
      for (let kb = 0; kb < nKB; kb++) {
        let sum = 0;
        let n = 0;
        for (let i = qb * BLKQ; i < Math.min((qb + 1) * BLKQ, Lq); i++)
          for (let j = kb * BLKK; j < Math.min((kb + 1) * BLKK, Lk); j++) {
            const s = scores.data[(bh * Lq + i) * Lk + j];
            if (s !== -Infinity) (sum += s), n++;
          }
        if (n > 0) pooled[(bh * nQB + qb) * nKB + kb] = sum / n;
      }
  return pooled;
}
