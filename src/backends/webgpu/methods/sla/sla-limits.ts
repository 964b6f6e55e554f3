/**
 * SLA's and SageSLA's device buffers checked against the device's limits before anything is
 * uploaded or encoded: an operand over maxStorageBufferBindingSize would otherwise reach Dawn,
 * which prints its validation errors before the call fails. The sizes mirror sla-attention.ts.
 */
import type { AttentionProblem } from '../../../../core/attention-shape.js';
import { UnsupportedError } from '../../../../core/errors.js';

export interface SlaBufferPlan {
  BLKQ: number;
  BLKK: number;
  /** The linear part runs (a projection that is not zero). */
  linear: boolean;
}

/** Every buffer SLA binds, by label, in bytes. */
export function slaBufferBytes(p: AttentionProblem, plan: SlaBufferPlan): Record<string, number> {
  const { batch: B, heads: H, kvHeads: Hkv, queryLength: Lq, keyLength: Lk, headDim: D, valueDim: Dv } = p;
  const nQB = Math.ceil(Lq / plan.BLKQ);
  const nKB = Math.ceil(Lk / plan.BLKK);
  const rows = B * H * nQB;
  const bytes: Record<string, number> = {
    'sla.q': B * H * Lq * D * 4, 'sla.k': B * Hkv * Lk * D * 4, 'sla.v': B * Hkv * Lk * Dv * 4, 'sla.o': B * H * Lq * Dv * 4,
    'sla.pooledK': B * Hkv * nKB * D * 4, 'sla.scores': rows * nKB * 4, 'sla.sparseMap': rows * nKB * 4,
  };
  if (plan.linear) {
    const W = Dv + 1;
    Object.assign(bytes, {
      'sla.phiK': B * Hkv * Lk * D * 4, 'sla.blockSums': B * Hkv * nKB * D * W * 4,
      'sla.prefixSums': B * Hkv * (nKB + 1) * D * W * 4, 'sla.queryBlockSums': rows * D * W * 4,
    });
  }
  return bytes;
}

/** Throws an UnsupportedError naming the largest buffer over a binding or buffer limit. */
export function checkSlaLimits(limits: Pick<GPUSupportedLimits, 'maxStorageBufferBindingSize' | 'maxBufferSize'>, p: AttentionProblem, plan: SlaBufferPlan): void {
  const bytes = slaBufferBytes(p, plan);
  const [label, largest] = Object.entries(bytes).reduce((a, b) => (b[1] > a[1] ? b : a));
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  if (largest > limit) {
    const which = limits.maxStorageBufferBindingSize <= limits.maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize';
    throw new UnsupportedError(`SLA on WebGPU: buffer ${label} needs ${largest} bytes, over this device's ${which} (${limit}); shorten the sequence or split the batch`);
  }
}
