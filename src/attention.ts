/**
 * The one-call API: plan a method's block mask from Q and K, then run it on a backend.
 *
 *   const { output, plan } = await sparseAttention(q, k, v, { method: 'xattention', causal: true });
 *
 * Every input is checked and every default decided here, once, before a backend is chosen
 * (resolveAttentionCall), so the CPU and WebGPU run the same attention on the same inputs. The
 * output rule (docs/api.md): [B, H, Lq, Dv] in q's layout and q's dtype, on every backend.
 */
import type { AttentionBackend } from './backends/backend.js';
import { type BackendChoice, parseBackendChoice, resolveBackend } from './backends/index.js';
import { type AttentionOptions, describeAttention } from './core/attention-shape.js';
import { InvalidArgumentError, requireInteger } from './core/errors.js';
import type { Phase } from './core/stats.js';
import { HeadTensor } from './core/tensor.js';
import { optionalBoolean, rejectUnknownKeys, requireEnum, requireRecord, tensorStorage } from './core/validate.js';
import { createSparseMethod } from './methods/index.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from './methods/method.js';

export interface SparseAttentionOptions extends AttentionOptions {
  /** A registered method name (default 'dense') or a constructed method. */
  method?: string | SparseAttentionMethod;
  /** Settings for a method given by name. */
  settings?: Record<string, unknown>;
  /** A backend object, or 'cpu' | 'webgpu' | 'auto' (see backends/index.ts). Default: the CPU reference backend. */
  backend?: AttentionBackend | BackendChoice;
  phase?: Phase;
  /** A chunk of a longer prompt: the prompt's tokens after it (PlanOptions.promptRowsAfter). */
  promptRowsAfter?: number;
}

export interface SparseAttentionResult {
  output: HeadTensor;
  plan: BlockPlan;
}

const OPTION_NAMES = ['method', 'settings', 'backend', 'phase', 'causal', 'scale', 'promptRowsAfter'];
const PHASES: readonly Phase[] = ['prefill', 'decode'];

/** A call with every default decided: what each backend is handed. */
export interface ResolvedAttentionCall {
  method: SparseAttentionMethod;
  /** causal and scale always set; phase only when the caller gave it (methods derive it from Lq otherwise). */
  plan: PlanOptions & { causal: boolean; scale: number };
}

/**
 * Validates a sparseAttention call and decides its defaults: causal = the call's flag, else the
 * method's `defaultCausal`, else false; scale = 1/sqrt(headDim); block sizes and thresholds are the
 * method's settings (fixed when it was constructed). Throws before any backend is loaded.
 */
export function resolveAttentionCall(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: SparseAttentionOptions = {}): ResolvedAttentionCall {
  requireRecord('sparseAttention options', opts);
  rejectUnknownKeys('sparseAttention option', opts as Record<string, unknown>, OPTION_NAMES);
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    if (!(t instanceof HeadTensor)) throw new InvalidArgumentError(name, t, 'a HeadTensor');
    tensorStorage(`${name}.data`, t.data);
  }
  let method: SparseAttentionMethod;
  if (typeof opts.method === 'object' && opts.method !== null) {
    if (opts.settings !== undefined) throw new InvalidArgumentError('settings', opts.settings, 'absent when method is a constructed method (its settings were given to its constructor)');
    if (typeof opts.method.planBlockMask !== 'function') throw new InvalidArgumentError('method', opts.method, 'a method name or a SparseAttentionMethod');
    method = opts.method;
  } else {
    if (opts.method !== undefined && typeof opts.method !== 'string') throw new InvalidArgumentError('method', opts.method, 'a method name or a SparseAttentionMethod');
    const settings = opts.settings === undefined ? {} : requireRecord('settings', opts.settings);
    method = createSparseMethod(opts.method ?? 'dense', settings);
  }
  if (opts.backend !== undefined && typeof opts.backend !== 'object') parseBackendChoice('backend', opts.backend);
  const causal = optionalBoolean('causal', opts.causal) ?? method.defaultCausal ?? false;
  const p = describeAttention(q, k, v, { causal, scale: opts.scale });
  const plan: ResolvedAttentionCall['plan'] = { causal, scale: p.scale };
  if (opts.phase !== undefined) plan.phase = requireEnum('phase', opts.phase, PHASES);
  if (opts.promptRowsAfter !== undefined) plan.promptRowsAfter = requireInteger('promptRowsAfter', opts.promptRowsAfter, 0);
  return { method, plan };
}

export async function sparseAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: SparseAttentionOptions = {}): Promise<SparseAttentionResult> {
  const { method, plan: planOpts } = resolveAttentionCall(q, k, v, opts);
  const backend = await resolveBackend(opts.backend);
  const hooks = backend.methodHooks?.(method);
  let result: SparseAttentionResult;
  if (hooks?.run) result = await hooks.run(q, k, v, planOpts);
  else if (method.attention) result = method.attention(q, k, v, planOpts);
  else {
    const plan = method.planBlockMask(q, k, planOpts);
    const output = await backend.blockSparseAttention(q, k, v, plan.mask, { causal: planOpts.causal, scale: planOpts.scale });
    result = { output, plan };
  }
  // The output rule, whatever the backend or method computed in: q's dtype and q's layout.
  return { output: result.output.toDType(q.dtype).toLayout(q.layout), plan: result.plan };
}
