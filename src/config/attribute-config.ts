/**
 * `SparseAttentionAttributeConfig`: what one `sparse_cfg` entry says about the modules it matches
 * (ModelOpt's class of that name, seed 002). Every field is optional in an entry; resolution fills
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

export type PhaseThreshold = { prefill: number; decode: number };
export type Threshold = number | PhaseThreshold;

export interface CalibrationConfig {
  /** Sparsity the calibrated threshold aims for, per phase, in [0, 1]. */
  target_sparse_ratio: { prefill: number; decode: number };
  /** Number of calibration inputs. */
  samples: number;
  /** Longest calibration input; lengths are spread below it. */
  max_seqlen: number;
  /** Thresholds tried on every input, each in (0, 1). */
  threshold_trials: number[];
}

/** A calibration object as written: every field optional, target phases too. */
export type CalibrationInput = Partial<Omit<CalibrationConfig, 'target_sparse_ratio'>> & {
  target_sparse_ratio?: Partial<CalibrationConfig['target_sparse_ratio']>;
};

/** One sparse_cfg entry as written (JSON form). */
export interface SparseAttentionAttributeInput {
  method?: string;
  enable?: boolean;
  threshold?: Threshold;
  br?: number;
  bc?: number;
  backend?: BackendName | 'pytorch';
  is_causal?: boolean;
  calibration?: CalibrationInput | null;
  /** Method-specific settings. */
  [extra: string]: unknown;
}

/** Every field present, backend aliases resolved, calibration defaults filled. */
export interface SparseAttentionAttributeConfig {
  method: string;
  enable: boolean;
  threshold: Threshold;
  br: number;
  bc: number;
  backend: BackendName;
  is_causal: boolean;
  calibration: CalibrationConfig | null;
  [extra: string]: unknown;
}

export const DEFAULT_THRESHOLD_TRIALS: readonly number[] = Object.freeze([1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1, 2e-1, 3e-1, 5e-1, 7e-1]);

/** ModelOpt's defaults (seed 002), with our backend name. */
export const ATTRIBUTE_DEFAULTS: Readonly<Omit<SparseAttentionAttributeConfig, 'calibration'> & { calibration: null }> = Object.freeze({
  method: 'flash_skip_softmax',
  enable: true,
  threshold: 1e-3,
  br: 128,
  bc: 128,
  backend: 'cpu',
  is_causal: true,
  calibration: null,
});

/** ModelOpt's CalibrationConfig defaults for the fields the spec names. */
export const CALIBRATION_DEFAULTS: Readonly<CalibrationConfig> = Object.freeze({
  target_sparse_ratio: Object.freeze({ prefill: 0.5, decode: 0.5 }),
  samples: 24,
  max_seqlen: 32768,
  threshold_trials: DEFAULT_THRESHOLD_TRIALS as number[],
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

const ratio = z.custom<number>(isNumberIn(0, false, 1, false), { error: 'a number in [0, 1]' });
const trial = z.custom<number>(isNumberIn(0, true, 1, true), { error: 'a number in (0, 1)' });

const calibration = z.strictObject({
  target_sparse_ratio: z.strictObject({ prefill: ratio.optional(), decode: ratio.optional() }, { error: 'an object {prefill, decode} of numbers in [0, 1]' }).optional(),
  samples: z.custom<number>(isPositiveInteger, { error: 'an integer >= 1' }).optional(),
  // ModelOpt asks for >= 1024 (RULER lengths); CPU calibration runs on short inputs, so any length.
  max_seqlen: z.custom<number>(isPositiveInteger, { error: 'an integer >= 1' }).optional(),
  threshold_trials: z.array(trial, { error: 'a non-empty array of numbers in (0, 1)' }).min(1, { error: 'a non-empty array of numbers in (0, 1)' }).optional(),
}, { error: 'null or an object {target_sparse_ratio, samples, max_seqlen, threshold_trials}' });

const backendNames: string[] = [...BACKEND_NAMES, ...Object.keys(BACKEND_ALIASES)];
const backend = z.custom<string>((v) => typeof v === 'string' && backendNames.includes(v), {
  error: `one of ${BACKEND_NAMES.map((b) => JSON.stringify(b)).join(', ')} (or "pytorch", ModelOpt's name for the reference implementation, read as "cpu")`,
});

/** One sparse_cfg entry; unknown fields pass through (method-specific). */
export const attributeConfigSchema = z.looseObject({
  method: z.custom<string>((v) => typeof v === 'string' && v.length > 0, { error: 'a method name (a non-empty string)' }).optional(),
  enable: z.boolean({ error: 'true or false' }).optional(),
  threshold: threshold.optional(),
  br: z.custom<number>(isPositiveInteger, { error: 'an integer >= 1' }).optional(),
  bc: z.custom<number>(isPositiveInteger, { error: 'an integer >= 1' }).optional(),
  backend: backend.optional(),
  is_causal: z.boolean({ error: 'true or false' }).optional(),
  calibration: calibration.nullable().optional(),
}, { error: 'an object of attributes (method, enable, threshold, br, bc, backend, is_causal, calibration, method settings)' });

/** Allowed fields of the strict objects inside an entry, for "unknown field" messages. */
export function knownAttributeFields(relPath: readonly PropertyKey[]): readonly string[] {
  const last = relPath[relPath.length - 1];
  if (last === 'threshold' || last === 'target_sparse_ratio') return ['prefill', 'decode'];
  if (last === 'calibration') return Object.keys(CALIBRATION_DEFAULTS);
  return [];
}

// ---- filling defaults -----------------------------------------------------------------------

export function resolveCalibration(c: CalibrationInput | null | undefined): CalibrationConfig | null {
  if (c == null) return null;
  return {
    target_sparse_ratio: { ...CALIBRATION_DEFAULTS.target_sparse_ratio, ...c.target_sparse_ratio },
    samples: c.samples ?? CALIBRATION_DEFAULTS.samples,
    max_seqlen: c.max_seqlen ?? CALIBRATION_DEFAULTS.max_seqlen,
    threshold_trials: [...(c.threshold_trials ?? CALIBRATION_DEFAULTS.threshold_trials)],
  };
}

/** An entry (already validated) over the defaults: every field present. */
export function fillAttributeDefaults(entry: SparseAttentionAttributeInput): SparseAttentionAttributeConfig {
  const merged = { ...ATTRIBUTE_DEFAULTS, ...dropUndefined(entry) } as Record<string, unknown>;
  const written = merged.backend as string;
  return {
    ...merged,
    threshold: typeof merged.threshold === 'object' ? { ...(merged.threshold as PhaseThreshold) } : (merged.threshold as number),
    backend: BACKEND_ALIASES[written] ?? (written as BackendName),
    calibration: resolveCalibration(entry.calibration),
  } as SparseAttentionAttributeConfig;
}

/** The threshold a call of this phase uses (decode when the query length is 1). */
export function thresholdForPhase(threshold: Threshold, phase: Phase): number {
  return typeof threshold === 'number' ? threshold : threshold[phase];
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
