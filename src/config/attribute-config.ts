/**
 * `SparseAttentionAttributeConfig`: what one `sparse_cfg` entry says about the modules it matches
 * (ModelOpt's class of that name: seed 002's form, and the current one with per-phase `thresholds`
 * lists and the N:M / Triton fields). Every field is optional in an entry; resolution fills
 * the rest from ATTRIBUTE_DEFAULTS. Fields this layer does not know are method-specific (XAttention's
 * stride, tri-shape's window, ...) and pass through to the method's settings untouched; the method
 * validates them when it is constructed.
 *
 * `backend: "pytorch"` is accepted as an alias of "cpu" so that ModelOpt config files, including
 * its published FlashSkipSoftmaxConfig default, load and round-trip unchanged: in ModelOpt
 * "pytorch" names the reference implementation (softmax patching on full scores), which is what our
 * CPU backend is. It is kept as written in the config and becomes "cpu" when resolved.
 */
import { z } from 'zod';
import { BACKEND_ALIASES, BACKEND_NAMES, type BackendName } from '../backends/backend.js';
import type { Phase } from '../core/stats.js';
import { CALIBRATION_FIELDS, type CalibrationConfig, type CalibrationInput, calibrationSchema, resolveCalibration } from './calibration-config.js';

export type PhaseThreshold = { prefill: number; decode: number };
export type Threshold = number | PhaseThreshold;
/** Current ModelOpt's `thresholds`: per phase a list; the first value is applied (ModelOpt also measures the rest; here they are carried). */
export type PhaseThresholdLists = { prefill?: number[]; decode?: number[] };

export { CALIBRATION_DEFAULTS, DEFAULT_THRESHOLD_TRIALS, resolveCalibration, type CalibrationConfig, type CalibrationInput } from './calibration-config.js';

/** One sparse_cfg entry as written (JSON form). */
export interface SparseAttentionAttributeInput {
  method?: string;
  enable?: boolean;
  /** The seed's (older ModelOpt) form: one number, or one per phase. */
  threshold?: Threshold;
  /** Current ModelOpt's form: per-phase lists. An entry gives `threshold` or `thresholds`, not both. */
  thresholds?: PhaseThresholdLists;
  br?: number;
  bc?: number;
  backend?: BackendName | 'pytorch';
  is_causal?: boolean;
  calibration?: CalibrationInput | null;
  /** One value per query head of the method's knob setting, e.g. `{ threshold: [0.8, 0.95] }` (methods/per-head.ts). */
  per_head?: Record<string, number[]>;
  /** Method-specific settings. */
  [extra: string]: unknown;
}

/** Every field present, backend aliases resolved, calibration defaults filled. */
export interface SparseAttentionAttributeConfig {
  method: string;
  enable: boolean;
  /** The threshold applied: from `threshold`, or the first value of each `thresholds` list. */
  threshold: Threshold;
  /** Both phases' lists: as written in `thresholds`, one value from `threshold`, or ModelOpt's default. */
  thresholds: { prefill: number[]; decode: number[] };
  br: number;
  bc: number;
  backend: BackendName;
  is_causal: boolean;
  calibration: CalibrationConfig | null;
  [extra: string]: unknown;
}

/** ModelOpt's defaults (seed 002), with our backend name. */
export const ATTRIBUTE_DEFAULTS: Readonly<Omit<SparseAttentionAttributeConfig, 'calibration' | 'thresholds'> & { calibration: null }> = Object.freeze({
  method: 'flash_skip_softmax',
  enable: true,
  threshold: 1e-3,
  br: 128,
  bc: 128,
  backend: 'cpu',
  is_causal: true,
  calibration: null,
});

/** Current ModelOpt's `thresholds` default (SparseAttentionAttributeConfig in config.py). */
export const DEFAULT_THRESHOLDS: Readonly<{ prefill: readonly number[]; decode: readonly number[] }> = Object.freeze({ prefill: Object.freeze([1e-3]), decode: Object.freeze([1e-4]) });

/**
 * Current ModelOpt attribute fields that configure methods or exporters this library does not run
 * (N:M sparse softmax, the Triton skip-softmax kernel, diffusion step gating), with ModelOpt's
 * defaults: validated as ModelOpt does, carried through load/save and the HF export, never passed to a
 * method.
 */
export const MODELOPT_ONLY_DEFAULTS = Object.freeze({
  sparsity_n: 2, sparsity_m: 4, dense_sink_tokens: 0, dense_recent_tokens: 64, export_sparse_softmax: false, skip_softmax_threshold: 0.1, initial_disabled_steps: 0,
});

// ---- schemas: each field's zod message is the "expected" half of its error message -------------

const isNumberIn = (lo: number, loOpen: boolean, hi: number, hiOpen: boolean) => (v: unknown): v is number =>
  typeof v === 'number' && (loOpen ? v > lo : v >= lo) && (hiOpen ? v < hi : v <= hi);
const isPositiveInteger = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1;

const thresholdValue = z.custom<number>(isNumberIn(0, true, 1, false), { error: 'a number in (0, 1]' });
const phaseThreshold = z.strictObject({ prefill: thresholdValue, decode: thresholdValue });

/** A number, or one per phase; the branch is chosen by the value's shape so errors point inside it. */
const threshold = z.unknown().superRefine((v, ctx) => {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const r = phaseThreshold.safeParse(v);
    if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ ...issue });
  } else if (!isNumberIn(0, true, 1, false)(v)) {
    ctx.addIssue({ code: 'custom', message: 'a number in (0, 1] or an object {prefill, decode} of such numbers' });
  }
});

/** ModelOpt's validate_thresholds: phases prefill/decode, non-empty lists in (0, 1), equal lengths. */
const thresholdList = z.array(z.custom<number>(isNumberIn(0, true, 1, true), { error: 'a number in (0, 1)' }), { error: 'a non-empty list of numbers in (0, 1)' })
  .min(1, { error: 'a non-empty list of numbers in (0, 1)' });
const thresholds = z.strictObject({ prefill: thresholdList.optional(), decode: thresholdList.optional() }, { error: 'an object {prefill, decode} of lists of numbers in (0, 1)' })
  .superRefine((t, ctx) => {
    if (t.prefill && t.decode && t.prefill.length !== t.decode.length) {
      ctx.addIssue({ code: 'custom', path: ['decode'], message: `a list as long as prefill's (${t.prefill.length} values; ModelOpt: "Prefill and decode threshold lists must have the same length")` });
    }
  });
/** `{ <setting>: number[] }`: which setting must be the method's knob is checked when the method is built. */
const perHead = z.record(z.string(), z.array(z.number({ error: 'a finite number' }).finite({ error: 'a finite number' }), { error: 'an array of numbers, one per query head' })
  .min(1, { error: 'a non-empty array of numbers, one per query head' }), { error: 'an object { <knob setting>: [one number per query head] }' })
  .refine((o) => Object.keys(o).length === 1, { error: 'an object with exactly one setting, the method\'s knob ({ <knob setting>: [one number per query head] })' });
const nonNegativeInteger = z.custom<number>((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0, { error: 'an integer >= 0' });

const backendNames: string[] = [...BACKEND_NAMES, ...Object.keys(BACKEND_ALIASES)];
const backend = z.custom<string>((v) => typeof v === 'string' && backendNames.includes(v), {
  error: `one of ${BACKEND_NAMES.map((b) => JSON.stringify(b)).join(', ')} (or "pytorch", ModelOpt's name for the reference implementation, read as "cpu")`,
});

/** One sparse_cfg entry; unknown fields pass through (method-specific). */
export const attributeConfigSchema = z.looseObject({
  method: z.custom<string>((v) => typeof v === 'string' && v.length > 0, { error: 'a method name (a non-empty string)' }).optional(),
  enable: z.boolean({ error: 'true or false' }).optional(),
  threshold: threshold.optional(),
  thresholds: thresholds.optional(),
  br: z.custom<number>(isPositiveInteger, { error: 'an integer >= 1' }).optional(),
  bc: z.custom<number>(isPositiveInteger, { error: 'an integer >= 1' }).optional(),
  backend: backend.optional(),
  is_causal: z.boolean({ error: 'true or false' }).optional(),
  calibration: calibrationSchema.nullable().optional(),
  per_head: perHead.optional(),
  collect_stats: z.boolean({ error: 'true or false' }).optional(),
  sparsity_n: nonNegativeInteger.optional(),
  sparsity_m: z.custom<number>((v) => v === 4 || v === 8, { error: '4 or 8' }).optional(),
  dense_sink_tokens: nonNegativeInteger.optional(),
  dense_recent_tokens: nonNegativeInteger.optional(),
  export_sparse_softmax: z.boolean({ error: 'true or false' }).optional(),
  skip_softmax_threshold: z.number({ error: 'a number' }).optional(),
  initial_disabled_steps: nonNegativeInteger.optional(),
}, { error: 'an object of attributes (method, enable, threshold or thresholds, br, bc, backend, is_causal, calibration, method settings)' }).superRefine((e, ctx) => {
  if (e.threshold !== undefined && e.thresholds !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['thresholds'], message: 'absent when threshold is given (threshold is the older form of thresholds: give one of them)' });
  }
  // ModelOpt's validate_sparsity_n_vs_m.
  const n = e.sparsity_n ?? MODELOPT_ONLY_DEFAULTS.sparsity_n;
  const m = e.sparsity_m ?? MODELOPT_ONLY_DEFAULTS.sparsity_m;
  const maxN = m === 4 ? 3 : m - 1;
  if (n > maxN) ctx.addIssue({ code: 'custom', path: ['sparsity_n'], message: `in 0..${maxN} for sparsity_m ${m}` });
});

/** Allowed fields of the strict objects inside an entry, for "unknown field" messages. */
export function knownAttributeFields(relPath: readonly PropertyKey[]): readonly string[] {
  const last = relPath[relPath.length - 1];
  if (last === 'threshold' || last === 'thresholds' || last === 'target_sparse_ratio') return ['prefill', 'decode'];
  if (last === 'calibration') return CALIBRATION_FIELDS;
  return [];
}

// ---- filling defaults -----------------------------------------------------------------------

/** An entry (already validated) over the defaults: every field present. */
export function fillAttributeDefaults(entry: SparseAttentionAttributeInput): SparseAttentionAttributeConfig {
  const merged = { ...ATTRIBUTE_DEFAULTS, ...dropUndefined(entry) } as Record<string, unknown>;
  const written = merged.backend as string;
  const lists = thresholdLists(entry);
  const threshold: Threshold = entry.thresholds ? { prefill: lists.prefill[0], decode: lists.decode[0] }
    : typeof merged.threshold === 'object' ? { ...(merged.threshold as PhaseThreshold) } : (merged.threshold as number);
  return {
    ...merged,
    threshold,
    thresholds: lists,
    backend: BACKEND_ALIASES[written] ?? (written as BackendName),
    calibration: resolveCalibration(entry.calibration),
  } as SparseAttentionAttributeConfig;
}

/**
 * Both phases' threshold lists of an entry. A phase `thresholds` leaves out runs with the other
 * phase's list (ModelOpt keeps the thresholds it last used); prefill alone missing starts at 1e-3.
 */
export function thresholdLists(entry: Pick<SparseAttentionAttributeInput, 'threshold' | 'thresholds'>): { prefill: number[]; decode: number[] } {
  const t = entry.thresholds;
  if (t) {
    const prefill = [...(t.prefill ?? [1e-3])];
    return { prefill, decode: [...(t.decode ?? prefill)] };
  }
  if (typeof entry.threshold === 'number') return { prefill: [entry.threshold], decode: [entry.threshold] };
  if (entry.threshold) return { prefill: [entry.threshold.prefill], decode: [entry.threshold.decode] };
  return { prefill: [...DEFAULT_THRESHOLDS.prefill], decode: [...DEFAULT_THRESHOLDS.decode] };
}

/** The threshold a call of this phase uses (decode when the query length is 1). */
export function thresholdForPhase(threshold: Threshold, phase: Phase): number {
  return typeof threshold === 'number' ? threshold : threshold[phase];
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
