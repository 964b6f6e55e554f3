/**
 * SageSLA (thu-ml/SLA `SageSLA`, FastVideo's `SageSLAAttentionImpl`): SLA with the sparse part
 * computed on quantized operands, as SpargeAttn / SageAttention kernels do. The block map, the
 * linear part and the projection are SLA's, on the unquantized inputs.
 *
 * Quantization (granularity checked against `get_vanilla_qk_quant` / `qk_quantize`):
 *   Q  [B, H, Lq, D] → int8, one scale per (b, h, BLKQ block): x = q · scale · log2(e) (the softmax
 *      scale and the exp→exp2 change folded in), s = max|x| / 127 + 1e-7, round half away from zero
 *   K  [B, Hkv, Lk, D] → int8, one scale per (b, kv head, BLKK block), after smoothing
 *      (k minus its per-(b, kv head, channel) mean over the sequence; softmax ignores the
 *      per-row constant q · mean this removes), same rule without the folded factor
 *   QKᵀ as an integer dot product (|Σ| ≤ D·127² fits int32), times sQ · sK → log2-domain logits
 *   V  rounded to f16 (values only; P·V and the softmax stay f32/f64 here). The reference uses fp8
 *      e4m3 with a per-channel scale on sm89/sm90 and plain f16 V on sm80; WebGPU has no fp8, so we
 *      take the sm80 choice, which the WGSL kernel can match exactly (f16 storage, no V scales).
 * Head size must be 64 or 128 (the reference kernels are built for these; it asserts the same).
 * Defaults: topkRatio 0.5, BLKQ 128, BLKK 64 (the reference uses 64 / 128 on sm90 and 128 / 64
 * elsewhere; both are settings here).
 */
import type { AttentionProblem } from '../../core/attention-shape.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { roundToF16 } from '../../core/f16.js';
import { HeadTensor } from '../../core/tensor.js';
import { sequenceMean, type SlaBlockMap } from '../sla/sla-block-map.js';
import { type LogitsHook, slaSparsePart } from '../sla/sla-sparse-part.js';
import { SlaMethod } from '../sla/sla.js';

export const SAGE_SLA_HEAD_DIMS: readonly number[] = [64, 128];
const LOG2E = 1.4426950408889634;

export interface SageOperands {
  /** [B, H, Lq, D] int8 and [B, H, nQB] scales (softmax scale · log2 e folded in). */
  qInt8: Int8Array;
  qScale: Float32Array;
  /** [B, Hkv, Lk, D] int8 of the smoothed keys and [B, Hkv, nKB] scales. */
  kInt8: Int8Array;
  kScale: Float32Array;
  /** [B, Hkv, D] the mean subtracted from K before quantizing. */
  kMean: Float32Array;
  /** [B, Hkv, Lk, Dv] V after rounding to f16, held as f32. */
  vF16: Float32Array;
}

/**
 * Symmetric int8 per block of `blk` rows (all D channels of the block share one scale):
 * rows [nRows = heads · length] of x (BHLD f32) times `factor`, minus `mean` per (head, channel).
 */
export function quantizeInt8PerBlock(x: Float32Array, heads: number, length: number, D: number, blk: number, factor: number, mean: Float32Array | null): { int8: Int8Array; scale: Float32Array } {
  const nB = Math.ceil(length / blk);
  const int8 = new Int8Array(heads * length * D);
  const scale = new Float32Array(heads * nB);
  const buf = new Float32Array(blk * D);
  for (let h = 0; h < heads; h++)
    for (let nb = 0; nb < nB; nb++) {
      const l0 = nb * blk;
      const l1 = Math.min(l0 + blk, length);
      let amax = 0;
      for (let l = l0; l < l1; l++)
        for (let d = 0; d < D; d++) {
          const raw = mean ? Math.fround(x[(h * length + l) * D + d] - mean[h * D + d]) : x[(h * length + l) * D + d];
          const y = Math.fround(raw * factor);
          buf[(l - l0) * D + d] = y;
          amax = Math.max(amax, Math.abs(y));
        }
      const s = Math.fround(Math.fround(amax / 127) + 1e-7);
      scale[h * nB + nb] = s;
      for (let l = l0; l < l1; l++)
        for (let d = 0; d < D; d++) {
          const r = Math.fround(buf[(l - l0) * D + d] / s);
          int8[(h * length + l) * D + d] = Math.trunc(r + (r >= 0 ? 0.5 : -0.5));
        }
    }
  return { int8, scale };
}

export function sageQuantize(p: AttentionProblem, q: Float32Array, k: Float32Array, v: Float32Array, kMean: Float32Array, BLKQ: number, BLKK: number): SageOperands {
  const D = p.headDim;
  const qq = quantizeInt8PerBlock(q, p.batch * p.heads, p.queryLength, D, BLKQ, p.scale * LOG2E, null);
  const kq = quantizeInt8PerBlock(k, p.batch * p.kvHeads, p.keyLength, D, BLKK, 1, kMean);
  const vF16 = new Float32Array(v.length);
  for (let x = 0; x < v.length; x++) vF16[x] = roundToF16(v[x]);
  return { qInt8: qq.int8, qScale: qq.scale, kInt8: kq.int8, kScale: kq.scale, kMean, vF16 };
}

/** Logits from integer dot products: (Σ q8 · k8) · sQ · sK is log2-domain; times ln 2 for exp. */
export function int8Logits(p: AttentionProblem, ops: SageOperands, BLKQ: number, BLKK: number): LogitsHook {
  const D = p.headDim;
  const nQB = Math.ceil(p.queryLength / BLKQ);
  const nKB = Math.ceil(p.keyLength / BLKK);
  return (b, h, i, j0, j1, out, at) => {
    const qRow = (b * p.heads + h) * p.queryLength + i;
    const qs = ops.qScale[(b * p.heads + h) * nQB + Math.floor(i / BLKQ)];
    const kh = b * p.kvHeads + Math.floor(h / p.groupSize);
    // [j0, j1) lies inside one key block (the sparse part asks block by block): one K scale.
    const rescale = qs * ops.kScale[kh * nKB + Math.floor(j0 / BLKK)] * Math.LN2;
    const qo = qRow * D;
    const { qInt8, kInt8 } = ops;
    for (let j = j0; j < j1; j++) {
      const ko = (kh * p.keyLength + j) * D;
      let dot = 0;
      for (let d = 0; d < D; d++) dot += qInt8[qo + d] * kInt8[ko + d];
      out[at + j - j0] = dot * rescale;
    }
  };
}

export class SageSlaMethod extends SlaMethod {
  static override readonly description: string = 'SageSLA: SLA with int8 per-block Q/K (integer QKᵀ) and f16 V in the sparse part; head size 64 or 128';

  constructor(settings: Record<string, unknown> = {}) {
    super(settings, { name: 'sage_sla', defaults: { topkRatio: 0.5, BLKQ: 128, BLKK: 64 } });
  }

  protected override checkProblem(p: AttentionProblem): void {
    if (!SAGE_SLA_HEAD_DIMS.includes(p.headDim)) {
      throw new InvalidArgumentError('head size (q.headDim)', p.headDim, '64 or 128 for sage_sla (its int8 kernels are built for these; use sla for other sizes)');
    }
  }

  /** The quantized operands of a call (exposed for tests and for the WebGPU kernel's inputs). */
  quantize(p: AttentionProblem, q: Float32Array, k: Float32Array, v: Float32Array): SageOperands {
    const kMean = sequenceMean(new HeadTensor({ batch: p.batch, heads: p.kvHeads, length: p.keyLength, headDim: p.headDim }, k, 'BHLD'));
    return sageQuantize(p, q, k, v, kMean, this.settings.BLKQ, this.settings.BLKK);
  }

  protected override sparsePart(p: AttentionProblem, map: SlaBlockMap, q: Float32Array, k: Float32Array, v: Float32Array): Float32Array {
    const ops = this.quantize(p, q, k, v);
    return slaSparsePart(p, map, int8Logits(p, ops, this.settings.BLKQ, this.settings.BLKK), ops.vF16);
  }
}
