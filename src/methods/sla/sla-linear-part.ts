/**
 * SLA's linear part Ol: linear attention with a feature map φ over the keys a query block did NOT
 * select for its sparse part (the SLA paper and the original thu-ml/SLA kernel; see
 * `linearBlocks: 'all'` for the reference's later variant that uses every key).
 *
 *   Ol_i = φ(q_i) · H_i / (ε + φ(q_i) · Z_i),   H_i = Σ_{j ∈ U_i} φ(k_j)ᵀ v_j  [D, Dv],  Z_i = Σ_{j ∈ U_i} φ(k_j)  [D]
 *   U_i = keys in key blocks not selected by i's query block (and, when causal, j <= queryOffset + i)
 *
 * Linear in L: per KV head the block sums Hb[kb], Zb[kb] and their prefix sums are built once;
 * a query block takes prefix[F] minus its selected blocks below F, where F counts the key blocks
 * wholly visible to its first query (all nKB when not causal), then adds the remaining visible
 * unselected keys token by token as its rows advance (causal: at most BLKQ + BLKK tokens).
 * Sums are f64 so that total-minus-selected does not cancel away small remainders.
 * ε = 1e-5 as in the reference's `calc_linear` (keeps relu rows with φ(q)·Z = 0 finite); a row
 * with an empty U gets Ol = 0 (the original kernel's choice when topk = nKB).
 *
 *   q [B, H, Lq, D], k [B, Hkv, Lk, D], v [B, Hkv, Lk, Dv] (f32 BHLD)  →  Ol [B, H, Lq, Dv] f32 BHLD
 */
import type { AttentionProblem } from '../../core/attention-shape.js';
import { selectedBlocks, type SlaBlockMap } from './sla-block-map.js';

export type FeatureMap = 'softmax' | 'elu' | 'relu';
export const FEATURE_MAPS: readonly FeatureMap[] = ['softmax', 'elu', 'relu'];
/** Which keys the linear part covers: the unselected blocks (paper, default) or all keys. */
export type LinearBlocks = 'unselected' | 'all';
export const LINEAR_EPS = 1e-5;

/** φ applied row by row to [rows, D]: softmax over the head dim, elu(x) + 1, or relu. */
export function applyFeatureMap(x: Float32Array, D: number, map: FeatureMap): Float32Array {
  const out = new Float32Array(x.length);
  for (let o = 0; o < x.length; o += D) {
    if (map === 'softmax') {
      let max = -Infinity;
      for (let d = 0; d < D; d++) max = Math.max(max, x[o + d]);
      let sum = 0;
      for (let d = 0; d < D; d++) sum += Math.exp(x[o + d] - max);
      for (let d = 0; d < D; d++) out[o + d] = Math.exp(x[o + d] - max) / sum;
    } else if (map === 'elu') {
      for (let d = 0; d < D; d++) out[o + d] = x[o + d] > 0 ? x[o + d] + 1 : Math.exp(x[o + d]);
    } else {
      for (let d = 0; d < D; d++) out[o + d] = Math.max(0, x[o + d]);
    }
  }
  return out;
}

export interface LinearPartOptions {
  featureMap: FeatureMap;
  linearBlocks: LinearBlocks;
}

export function slaLinearPart(p: AttentionProblem, map: SlaBlockMap, q: Float32Array, k: Float32Array, v: Float32Array, opts: LinearPartOptions): Float32Array {
  const D = p.headDim;
  const Dv = p.valueDim;
  const fq = applyFeatureMap(q, D, opts.featureMap);
  const fk = applyFeatureMap(k, D, opts.featureMap);
  const out = new Float32Array(p.batch * p.heads * p.queryLength * Dv);
  for (let b = 0; b < p.batch; b++)
    for (let kh = 0; kh < p.kvHeads; kh++) {
      const sums = blockSums(p, map, fk, v, b, kh);
      for (let h = kh * p.groupSize; h < (kh + 1) * p.groupSize; h++)
        for (let qb = 0; qb < map.numQueryBlocks; qb++) {
          const sel = opts.linearBlocks === 'all' ? new Int32Array(0) : selectedBlocks(map, b, h, qb);
          linearQueryBlock(p, map, sums, sel, fq, fk, v, b, h, qb, out);
        }
    }
  return out;
}

interface BlockSums {
  /** [nKB, D, Dv] and [nKB, D]: Σ over each key block of φ(k)ᵀv and φ(k). */
  h: Float64Array;
  z: Float64Array;
  /** [nKB + 1, D, Dv] and [nKB + 1, D]: sums over blocks [0, kb). */
  prefixH: Float64Array;
  prefixZ: Float64Array;
  /** KV row offset of (b, kh, 0) in k (and, times Dv / D, in v). */
  kRow0: number;
}

function blockSums(p: AttentionProblem, map: SlaBlockMap, fk: Float32Array, v: Float32Array, b: number, kh: number): BlockSums {
  const D = p.headDim;
  const Dv = p.valueDim;
  const nKB = map.numKeyBlocks;
  const kRow0 = (b * p.kvHeads + kh) * p.keyLength;
  const h = new Float64Array(nKB * D * Dv);
  const z = new Float64Array(nKB * D);
  for (let j = 0; j < p.keyLength; j++) {
    const kb = Math.floor(j / map.blockK);
    addToken(h, z, kb * D * Dv, kb * D, fk, v, (kRow0 + j) * D, (kRow0 + j) * Dv, D, Dv);
  }
  const prefixH = new Float64Array((nKB + 1) * D * Dv);
  const prefixZ = new Float64Array((nKB + 1) * D);
  for (let kb = 0; kb < nKB; kb++) {
    for (let x = 0; x < D * Dv; x++) prefixH[(kb + 1) * D * Dv + x] = prefixH[kb * D * Dv + x] + h[kb * D * Dv + x];
    for (let x = 0; x < D; x++) prefixZ[(kb + 1) * D + x] = prefixZ[kb * D + x] + z[kb * D + x];
  }
  return { h, z, prefixH, prefixZ, kRow0 };
}

/** H += φ(k_j)ᵀ v_j and Z += φ(k_j) for one key row. */
function addToken(h: Float64Array, z: Float64Array, ho: number, zo: number, fk: Float32Array, v: Float32Array, ko: number, vo: number, D: number, Dv: number): void {
  for (let d = 0; d < D; d++) {
    const f = fk[ko + d];
    z[zo + d] += f;
    if (f === 0) continue;
    const row = ho + d * Dv;
    for (let e = 0; e < Dv; e++) h[row + e] += f * v[vo + e];
  }
}

function linearQueryBlock(
  p: AttentionProblem, map: SlaBlockMap, sums: BlockSums, sel: Int32Array,
  fq: Float32Array, fk: Float32Array, v: Float32Array, b: number, h: number, qb: number, out: Float32Array,
): void {
  const D = p.headDim;
  const Dv = p.valueDim;
  const { blockQ, blockK, numKeyBlocks: nKB } = map;
  const i0 = qb * blockQ;
  const i1 = Math.min(i0 + blockQ, p.queryLength);
  // Key blocks [0, F) are wholly visible to every query of this block.
  const F = p.causal ? Math.min(nKB, Math.floor((p.queryOffset + i0 + 1) / blockK)) : nKB;
  const H = sums.prefixH.slice(F * D * Dv, (F + 1) * D * Dv);
  const Z = sums.prefixZ.slice(F * D, (F + 1) * D);
  let count = Math.min(F * blockK, p.keyLength);
  const selected = new Uint8Array(nKB);
  for (const kb of sel) {
    selected[kb] = 1;
    if (kb >= F) continue;
    for (let x = 0; x < D * Dv; x++) H[x] -= sums.h[kb * D * Dv + x];
    for (let x = 0; x < D; x++) Z[x] -= sums.z[kb * D + x];
    count -= Math.min((kb + 1) * blockK, p.keyLength) - kb * blockK;
  }
  let next = F * blockK;
  for (let i = i0; i < i1; i++) {
    const jMax = p.causal ? Math.min(p.queryOffset + i + 1, p.keyLength) : p.keyLength;
    for (; next < jMax; next++) {
      if (selected[Math.floor(next / blockK)]) continue;
      addToken(H, Z, 0, 0, fk, v, (sums.kRow0 + next) * D, (sums.kRow0 + next) * Dv, D, Dv);
      count++;
    }
    if (count === 0) continue;
    const qo = ((b * p.heads + h) * p.queryLength + i) * D;
    const oo = ((b * p.heads + h) * p.queryLength + i) * Dv;
    let den = LINEAR_EPS;
    for (let d = 0; d < D; d++) den += fq[qo + d] * Z[d];
    for (let e = 0; e < Dv; e++) {
      let num = 0;
      for (let d = 0; d < D; d++) num += fq[qo + d] * H[d * Dv + e];
      out[oo + e] = num / den;
    }
  }
}
