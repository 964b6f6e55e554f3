/**
 * Calibration inside `sparsify(model, config, { forwardLoop })`, after ModelOpt's
 * calibrate_sparse_attention: the user's loop runs calibration prompts through the model once while
 * every enabled module's attention inputs are captured (the modules run dense meanwhile, so later
 * layers see dense activations); each method among the enabled modules is then calibrated on what its
 * modules saw (calibration/calibrate.ts: flash_skip_softmax fits threshold = a·exp(b·target)/length
 * per phase, all modules pooled into one fit as in ModelOpt; other methods bisect their knob), and the
 * calibrated settings are applied to all its modules.
 *
 * Phases come from the calls the loop makes: prefill from calls with more than one query, decode from
 * one-query calls (ModelOpt runs its own decode loop on RULER data). A phase whose target is 0 is not
 * calibrated, as in ModelOpt.
 */
import { calibrate, type CalibrationData, type CalibrationResult } from '../calibration/calibrate.js';
import type { CalibrationConfig } from '../config/calibration-config.js';
import type { ResolvedModuleConfig } from '../config/resolve.js';
import { SparseAttentionError } from '../core/errors.js';
import { DenseMethod } from '../methods/dense/dense.js';
import { createSparseMethod } from '../methods/index.js';
import type { SparseAttentionMethod } from '../methods/method.js';
import type { AttentionModule, LlamaModel } from './llama.js';

/** Runs calibration prompts through the model (forward passes; the result is ignored). */
export type ForwardLoop = (model: LlamaModel) => unknown | Promise<unknown>;

export interface SparsifyCalibration {
  request: CalibrationConfig;
  /** One calibration per method among the enabled modules. */
  results: CalibrationResult[];
  /** Attention calls captured per phase, over all enabled modules. */
  calls: { prefill: number; decode: number };
}

export interface CalibratedModule {
  module: AttentionModule;
  resolved: ResolvedModuleConfig;
}

export async function calibrateSparsified(
  model: LlamaModel, modules: readonly CalibratedModule[], request: CalibrationConfig, loop: ForwardLoop,
  apply: (module: AttentionModule, method: SparseAttentionMethod, settings: Record<string, unknown>) => void,
): Promise<SparsifyCalibration> {
  const target = request.target_sparse_ratio;
  const out: SparsifyCalibration = { request, results: [], calls: { prefill: 0, decode: 0 } };
  const goal = { prefill: target.prefill ?? 0, decode: target.decode ?? 0 };
  if (modules.length === 0 || (goal.prefill <= 0 && goal.decode <= 0)) return out;
  const byModule = new Map(modules.map((m) => [m.module, m]));
  const inputs = new Map<string, CalibrationData[]>();
  const saved = modules.map((m) => [m.module, m.module.method] as const);
  const previous = model.onAttention;
  model.onAttention = (module, q, k) => {
    const m = byModule.get(module);
    if (!m) return;
    const name = m.resolved.attributes!.method;
    if (!inputs.has(name)) inputs.set(name, []);
    inputs.get(name)!.push({ q, k });
    out.calls[q.length > 1 ? 'prefill' : 'decode']++;
  };
  try {
    for (const [module] of saved) module.method = new DenseMethod();
    await loop(model);
  } finally {
    model.onAttention = previous;
    for (const [module, method] of saved) module.method = method;
  }
  for (const [name, data] of inputs) {
    const mine = modules.filter((m) => m.resolved.attributes!.method === name);
    const base = withoutCalibration(mine[0].resolved.settings);
    const phases = { prefill: data.some((d) => d.q.length > 1), decode: data.some((d) => d.q.length === 1) };
    const wanted = {
      ...(phases.prefill && goal.prefill > 0 ? { prefill: goal.prefill } : {}),
      ...(phases.decode && goal.decode > 0 ? { decode: goal.decode } : {}),
    };
    if (Object.keys(wanted).length === 0) {
      throw new SparseAttentionError(`calibration of ${name}: the forward loop made no attention call of a phase with a target > 0 (prefill calls: ${phases.prefill}, decode calls: ${phases.decode})`);
    }
    const result = calibrate({ method: name, inputs: data, target: wanted, settings: base, thresholdTrials: request.threshold_trials });
    out.results.push(result);
    // What calibration added to the base settings (calibration_params and target, or the knob) goes to every module.
    const added = Object.fromEntries(Object.entries(result.settings).filter(([k, v]) => !(k in base) || base[k] !== v));
    for (const m of mine) {
      const settings = { ...withoutCalibration(m.resolved.settings), ...added };
      apply(m.module, createSparseMethod(name, settings, result.version), settings);
    }
  }
  return out;
}

/** The calibration request is the config's, not a method setting to keep after calibrating. */
function withoutCalibration(settings: Record<string, unknown>): Record<string, unknown> {
  const { calibration: _, ...rest } = settings;
  return rest;
}
