/**
 * Finding a method's setting that gives a target block sparsity on real attention: each method's
 * one "sparsity knob" (the setting that trades accuracy for sparsity) is bisected, measuring the
 * sparsity the method plans on Q/K captured from a dense forward pass of a calibration prompt.
 * Planning on the captured operands costs only the method's estimation, not a forward pass; the
 * Q/K of a sparse run differ slightly from the dense ones, so the sparsity reached in the real
 * run is near, not exactly at, the target (the eval reports the measured value).
 */
import type { HeadTensor } from '../core/tensor.js';
import { createSparseMethod } from '../methods/index.js';

export interface SparsityKnob {
  setting: string;
  /** Search range for a prompt of `length` tokens. */
  range(length: number): [number, number];
  /** Bisect in log space (thresholds spanning decades). */
  log?: boolean;
  integer?: boolean;
  /** Whether a larger value makes the method sparser. */
  sparserWhenHigher: boolean;
  /** Settings object for a value (default: { [setting]: value }). */
  settings?(value: number): Record<string, unknown>;
}

/** The knob of each method we know; methods not listed are evaluated at their defaults only. */
export const SPARSITY_KNOBS: Record<string, SparsityKnob> = {
  tri_shape: { setting: 'localWindow', range: (L) => [1, L], integer: true, sparserWhenHigher: false },
  xattention: { setting: 'threshold', range: () => [0.005, 1], sparserWhenHigher: false },
  flash_skip_softmax: {
    setting: 'threshold', range: () => [1e-9, 0.5], log: true, sparserWhenHigher: true,
    // ModelOpt's default decode threshold; only the prefill one is searched (prefill is what we measure).
    settings: (v) => ({ threshold: { prefill: v, decode: 1e-4 } }),
  },
  sla: { setting: 'topkRatio', range: () => [0.01, 1], sparserWhenHigher: false },
  sage_sla: { setting: 'topkRatio', range: () => [0.01, 1], sparserWhenHigher: false },
};

export function knobSettings(knob: SparsityKnob, value: number): Record<string, unknown> {
  return knob.settings ? knob.settings(value) : { [knob.setting]: value };
}

/** Q/K of one prefill attention call, as captured through LlamaModel.onAttention. */
export interface CapturedAttention {
  module: string;
  q: HeadTensor;
  k: HeadTensor;
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

/** Bisects the knob for `steps` rounds and returns the probed value whose sparsity came closest to `target`. */
export function searchSetting(method: string, knob: SparsityKnob, target: number, calls: readonly CapturedAttention[], length: number, steps = 7): SearchResult {
  let [lo, hi] = knob.range(length);
  const fwd = (x: number) => (knob.log ? Math.log(x) : x);
  const inv = (y: number) => (knob.log ? Math.exp(y) : y);
  let best: SearchResult | undefined;
  for (let i = 0; i < steps; i++) {
    let value = inv((fwd(lo) + fwd(hi)) / 2);
    if (knob.integer) value = Math.round(value);
    const settings = knobSettings(knob, value);
    const s = plannedSparsity(method, settings, calls);
    if (!best || Math.abs(s - target) < Math.abs(best.plannedSparsity - target)) best = { value, settings, plannedSparsity: s };
    // Too sparse: move towards the dense end of the range; too dense: towards the sparse end.
    const moveUp = (s > target) !== knob.sparserWhenHigher;
    if (moveUp) lo = value;
    else hi = value;
    if (knob.integer && hi - lo <= 1) break;
  }
  return best!;
}
