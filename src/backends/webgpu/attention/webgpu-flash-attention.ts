/// <reference types="@webgpu/types" />
/**
 * Dense flash attention on WebGPU: the attention skeleton with the 'all' block list (every key up
 * to the causal limit), so it needs no block mask on the GPU. Reference twin:
 * backends/cpu/flash-attention.ts (and naiveAttention).
 *
 *   q [B, H, Lq, D], k/v [B, Hkv, Lk, D|Dv] (BHLD or BLHD, f32 or f16) → out [B, H, Lq, Dv] in q's
 *   layout and q's dtype; GQA (H a multiple of Hkv), queries right-aligned to keys, causal or not.
 */
import { type AttentionOptions, describeAttention } from '../../../core/attention-shape.js';
import type { HeadTensor } from '../../../core/tensor.js';
import { runAttentionOnHost } from './block-sparse-attention.js';
import type { WebGpuContext } from '../runtime/webgpu-device.js';

export async function flashAttentionWebGpu(ctx: WebGpuContext, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: AttentionOptions = {}): Promise<HeadTensor> {
  const p = describeAttention(q, k, v, opts);
  return runAttentionOnHost(ctx, q, k, v, { causal: p.causal, scale: p.scale, label: 'flash-attention' });
}
