/**
 * What the GPU model runner allocates, computed from the config before anything is allocated, so
 * a prompt that cannot fit is refused up front with the buffer and limit named:
 *   weights   one copy, f16 or f32 (Q|K|V and gate|up fused, the residual's norms f32)
 *   cache     per layer K and V [capacity, Hkv, D], plus the RoPE table [2, capacity, D/2] f32
 *   scratch   one chunk's activations: residual f32 [n, hidden], normed [n, hidden], qkv, attention
 *             output, gate|up [n, 2I], SwiGLU [n, I], logits f32 [n, vocab] when all rows are asked for
 * WebGPU exposes no total device memory; a caller that knows it (a flag, the machine's spec) passes
 * `budgetBytes`.
 */
import { UnsupportedError } from '../core/errors.js';
import type { LlamaConfig } from './llama-config.js';

export interface GpuMemoryPlan {
  weightsBytes: number;
  cacheBytes: number;
  scratchBytes: number;
  totalBytes: number;
  /** Every buffer larger than a few KiB: name → bytes (a single buffer must fit the binding limit). */
  buffers: Record<string, number>;
}

export function gpuMemoryPlan(c: LlamaConfig, dtype: 'f16' | 'f32', capacity: number, chunk: number, logitRows = chunk): GpuMemoryPlan {
  const e = dtype === 'f16' ? 2 : 4;
  const D = c.headDim;
  const qkvWidth = (c.numHeads + 2 * c.numKvHeads) * D;
  const buffers: Record<string, number> = {
    'embed weights': c.vocabSize * c.hiddenSize * e,
    'lm-head weights': c.vocabSize * c.hiddenSize * e,
    'qkv weights (one layer)': qkvWidth * c.hiddenSize * e,
    'gate|up weights (one layer)': 2 * c.intermediateSize * c.hiddenSize * e,
    'down weights (one layer)': c.intermediateSize * c.hiddenSize * e,
    'K or V cache (one layer)': capacity * c.numKvHeads * D * e,
    'RoPE table': 2 * capacity * (D / 2) * 4,
    'residual (chunk)': chunk * c.hiddenSize * 4,
    'qkv (chunk)': chunk * qkvWidth * e,
    'gate|up (chunk)': chunk * 2 * c.intermediateSize * e,
    'logits': logitRows * c.vocabSize * 4,
  };
  const perLayer = buffers['qkv weights (one layer)'] + c.numHeads * D * c.hiddenSize * e + buffers['gate|up weights (one layer)'] + buffers['down weights (one layer)'];
  const weightsBytes = buffers['embed weights'] + buffers['lm-head weights'] + c.numLayers * perLayer;
  const cacheBytes = 2 * c.numLayers * buffers['K or V cache (one layer)'] + buffers['RoPE table'];
  const scratchBytes = buffers['residual (chunk)'] + chunk * c.hiddenSize * e + buffers['qkv (chunk)'] + chunk * c.numHeads * D * e
    + buffers['gate|up (chunk)'] + chunk * c.intermediateSize * e + buffers.logits;
  return { weightsBytes, cacheBytes, scratchBytes, totalBytes: weightsBytes + cacheBytes + scratchBytes, buffers };
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/** Throws, naming the buffer, when one exceeds the device's limits or the total exceeds the budget. */
export function checkFits(plan: GpuMemoryPlan, limits: Pick<GPUSupportedLimits, 'maxStorageBufferBindingSize' | 'maxBufferSize'>, budgetBytes?: number): void {
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  for (const [name, bytes] of Object.entries(plan.buffers)) {
    if (bytes > limit) throw new UnsupportedError(`does not fit: the ${name} buffer needs ${gib(bytes)}, above the device's largest storage binding (${gib(limit)}); use a shorter prompt, a smaller chunk or f16`);
  }
  if (budgetBytes !== undefined && plan.totalBytes > budgetBytes) {
    throw new UnsupportedError(`does not fit: weights ${gib(plan.weightsBytes)} + KV cache ${gib(plan.cacheBytes)} + activations ${gib(plan.scratchBytes)} = ${gib(plan.totalBytes)}, above the budget of ${gib(budgetBytes)}`);
  }
}
