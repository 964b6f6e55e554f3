/**
 * Finding a method's setting that gives a target block sparsity on real attention: each method's
 * one "sparsity knob" (the setting that trades accuracy for sparsity) is bisected, measuring the
 * sparsity the method plans on Q/K captured from a dense forward pass of a calibration prompt.
 * Planning on the captured operands costs only the method's estimation, not a forward pass; the
 * Q/K of a sparse run differ slightly from the dense ones, so the sparsity reached in the real
 * run is near, not exactly at, the target (the eval reports the measured value).
 */
import type { HeadTensor } from '../core/tensor.js';
import { bisectKnob, knobMax, knobSettings } from '../calibration/knobs.js';
import type { MethodKnob } from '../methods/descriptor.js';
import { createSparseMethod } from '../methods/index.js';
import type { PlanOptions, SparseAttentionMethod } from '../methods/method.js';

/** Q/K of one prefill attention call, as captured through LlamaModel.onAttention. */
export interface CapturedAttention {
  module: string;
  q: HeadTensor;
  k: HeadTensor;
  /** The values too, for calibrations that fit outputs (per-head, SLA's projection). */
  v?: HeadTensor;
  /** Per query head, the Frobenius norm of its columns of the output projection (per-head-out). */
  headOutNorms?: readonly number[];
  /** A chunk of a prompt prefilled in pieces: the prompt's tokens after it (PlanOptions.promptRowsAfter). */
  promptRowsAfter?: number;
}

/** How a captured call is planned: causal prefill, at its place in its prompt. */
export const capturedPlanOptions = (c: Pick<CapturedAttention, 'promptRowsAfter'>): PlanOptions =>
  ({ causal: true, phase: 'prefill', promptRowsAfter: c.promptRowsAfter });

/** Block sparsity a method plans over the captured calls (block-weighted, causal blocks only). */
export function plannedSparsity(method: string, settings: Record<string, unknown>, calls: readonly CapturedAttention[]): number {
  const m = createSparseMethod(method, settings);
  let total = 0;
  let kept = 0;
  for (const c of calls) {
    const { stats } = m.planBlockMask(c.q, c.k, capturedPlanOptions(c));
    total += stats.totalBlocks;
    kept += stats.keptBlocks;
  }
  return total === 0 ? 0 : 1 - kept / total;
}

export interface SearchResult {
  value: number;
  settings: Record<string, unknown>;
  /** Sparsity planned on the captured calls at `value`. */
  plannedSparsity: number;
}

/** Bisects the knob (`steps` rounds after its two ends) and returns the probed value whose sparsity came closest to `target`. */
export function searchSetting(method: string, knob: MethodKnob, target: number, calls: readonly CapturedAttention[], length: number, steps = 7): SearchResult {
  const r = bisectKnob((x) => plannedSparsity(method, knobSettings(knob, x), calls), knob, knobMax(knob, length), target, steps);
  return { value: r.value, settings: knobSettings(knob, r.value), plannedSparsity: r.measured };
}

/** Kept and total blocks a method instance plans on one captured call, however it is computed. */
export type CallPlanner = (method: SparseAttentionMethod, call: CapturedAttention) => Promise<{ keptBlocks: number; totalBlocks: number }>;

/** The CPU planner of plannedSparsity, as a CallPlanner. */
export const cpuCallPlanner: CallPlanner = async (m, c) => m.planBlockMask(c.q, c.k, capturedPlanOptions(c)).stats;

/**
 * searchSetting with the planning done by `planner` (e.g. on the GPU through a backend's method
 * hooks, where planning 8K-token calls on the CPU would dominate an eval): the same bisection as
 * calibration/knobs.ts's bisectKnob, awaiting each measurement.
 */
export async function searchSettingWith(
  planner: CallPlanner, method: string, knob: MethodKnob, target: number, calls: readonly CapturedAttention[], length: number, steps = 7,
  base: Record<string, unknown> = {},
): Promise<SearchResult> {
  const sparsityAt = async (x: number) => {
    const m = createSparseMethod(method, { ...base, ...knobSettings(knob, x) });
    let total = 0;
    let kept = 0;
    for (const c of calls) {
      const s = await planner(m, c);
      total += s.totalBlocks;
      kept += s.keptBlocks;
    }
    return total === 0 ? 0 : 1 - kept / total;
  };
  const round = (x: number) => (knob.integer ? Math.round(x) : x);
  let best = { value: knobMax(knob, length), measured: Infinity };
  const measure = async (x: number) => {
    const m = await sparsityAt(x);
    if (Math.abs(m - target) < Math.abs(best.measured - target)) best = { value: x, measured: m };
    return m;
  };
  let [sparse, dense] = knob.sparserWhenHigher ? [knobMax(knob, length), knob.min] : [knob.min, knobMax(knob, length)];
  if ((await measure(dense)) < target && (await measure(sparse)) > target) {
    for (let i = 0; i < steps; i++) {
      const mid = round(knob.logScale ? Math.sqrt(sparse * dense) : (sparse + dense) / 2);
      if (mid <= Math.min(sparse, dense) || mid >= Math.max(sparse, dense)) break;
      if ((await measure(mid)) > target) sparse = mid;
      else dense = mid;
    }
  }
  return { value: best.value, settings: { ...base, ...knobSettings(knob, best.value) }, plannedSparsity: best.measured };
}
