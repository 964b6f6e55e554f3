/**
 * The one-call API: plan a method's block mask from Q and K, then run it on a backend.
 *
 *   const { output, plan } = await sparseAttention(q, k, v, { method: 'xattention', causal: true });
 */
import type { AttentionBackend } from './backends/backend.js';
import { type BackendChoice, resolveBackend } from './backends/index.js';
import type { AttentionOptions } from './core/attention-shape.js';
import type { Phase } from './core/stats.js';
import type { HeadTensor } from './core/tensor.js';
import { createSparseMethod } from './methods/index.js';
import type { BlockPlan, SparseAttentionMethod } from './methods/method.js';

export interface SparseAttentionOptions extends AttentionOptions {
  /** A registered method name (default 'dense') or a constructed method. */
  method?: string | SparseAttentionMethod;
  /** Settings for a method given by name. */
  settings?: Record<string, unknown>;
  /** A backend object, or 'cpu' | 'webgpu' | 'auto' (see backends/index.ts). Default: the CPU reference backend. */
  backend?: AttentionBackend | BackendChoice;
  phase?: Phase;
}

export interface SparseAttentionResult {
  output: HeadTensor;
  plan: BlockPlan;
}

export async function sparseAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: SparseAttentionOptions = {}): Promise<SparseAttentionResult> {
  const method = typeof opts.method === 'object' ? opts.method : createSparseMethod(opts.method ?? 'dense', opts.settings ?? {});
  const planOpts = { causal: opts.causal, scale: opts.scale, phase: opts.phase };
  const backend = await resolveBackend(opts.backend);
  const hooks = backend.methodHooks?.(method);
  if (hooks?.run) return hooks.run(q, k, v, planOpts);
  if (method.attention) return method.attention(q, k, v, planOpts);
  const plan = method.planBlockMask(q, k, planOpts);
  const output = await backend.blockSparseAttention(q, k, v, plan.mask, { causal: opts.causal, scale: opts.scale });
  return { output, plan };
}
