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

/** Q/K of one prefill attention call, as captured through LlamaModel.onAttention. */
export interface CapturedAttention {
  module: string;
  q: HeadTensor;
  k: HeadTensor;
  /** The values too, for calibrations that fit outputs (per-head, SLA's projection). */
  v?: HeadTensor;
}

/** Block sparsity a method plans over the captured calls (block-weighted, causal blocks only). */
export function plannedSparsity(method: string, settings: Record<string, unknown>, calls: readonly CapturedAttention[]): number {
  const m = createSparseMethod(method, settings);
  let total = 0;
  let kept = 0;
  for (const c of calls) {
    const { stats } = m.planBlockMask(c.q, c.k, { causal: true, phase: 'prefill' });
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
