/**
 * ModelOpt's `CalibrationConfig` (modelopt/torch/sparsity/attention_sparsity/config.py): what the
 * exponential-fit calibration of flash_skip_softmax needs. Current ModelOpt reads it from the
 * `sparse_cfg["calibration"]` key (one per config); the seed's (older) form puts it in an attribute
 * entry's `calibration` field. Both are read here.
 *
 * Defaults are ModelOpt's source (a2fbac7b, 2026-08-21): target 0.5 per phase, 24 samples, max
 * sequence length 32768 in 4 length bins, chunked prefill of 2048, 10 decode tokens, linear-space fit;
 * `threshold_trials` left unset means DynamicThresholdCalibrator's 20-value list (its docstring in
 * config.py lists 16; the calibrator's code is what runs).
 */
import { z } from 'zod';

export type PhaseRatio = { prefill: number; decode: number };

export interface CalibrationConfig {
  /**
   * Sparsity the calibrated threshold aims for, per phase, in [0, 1], as written (ModelOpt replaces
   * the default dict whole): a phase left out, or 0, is not calibrated.
   */
  target_sparse_ratio: Partial<PhaseRatio>;
  /** Number of calibration inputs. */
  samples: number;
  /** Longest calibration input; lengths are spread below it in num_length_bins powers of 2. */
  max_seqlen: number;
  num_length_bins: number;
  /** Prefill chunk of the calibration forward loop; -1: whole prompts. */
  chunk_size: number;
  /** Decode steps per input when the decode phase is calibrated. */
  num_decode_tokens: number;
  /** Thresholds tried on every input, each in (0, 1). */
  threshold_trials: number[];
  /** Fit log(scale factor) instead of the scale factor (relative instead of absolute error). */
  fit_logspace: boolean;
  /** ModelOpt's RULER sample cache and data folders: carried, unused here (no RULER generator). */
  cache_dir: string | null;
  data_dir: string | null;
}

/** A calibration object as written: every field optional, target phases too. */
export type CalibrationInput = Partial<Omit<CalibrationConfig, 'target_sparse_ratio' | 'threshold_trials'>> & {
  target_sparse_ratio?: Partial<PhaseRatio>;
  threshold_trials?: number[] | null;
};

/** DynamicThresholdCalibrator's default trials (calibration/calibrator.py). */
export const DEFAULT_THRESHOLD_TRIALS: readonly number[] = Object.freeze([
  1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1, 2e-1, 3e-1, 5e-1, 7e-1, 8e-1, 9e-1, 9.5e-1, 9.9e-1,
]);

export const CALIBRATION_DEFAULTS: Readonly<CalibrationConfig> = Object.freeze({
  target_sparse_ratio: Object.freeze({ prefill: 0.5, decode: 0.5 }),
  samples: 24,
  max_seqlen: 32768,
  num_length_bins: 4,
  chunk_size: 2048,
  num_decode_tokens: 10,
  threshold_trials: DEFAULT_THRESHOLD_TRIALS as number[],
  fit_logspace: false,
  cache_dir: null,
  data_dir: null,
});

export const CALIBRATION_FIELDS: readonly string[] = Object.keys(CALIBRATION_DEFAULTS);

const isIn = (lo: number, loOpen: boolean, hi: number, hiOpen: boolean) => (v: unknown): v is number =>
  typeof v === 'number' && (loOpen ? v > lo : v >= lo) && (hiOpen ? v < hi : v <= hi);
const positiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1;

const ratio = z.custom<number>(isIn(0, false, 1, false), { error: 'a number in [0, 1]' });
const trial = z.custom<number>(isIn(0, true, 1, true), { error: 'a number in (0, 1)' });
const optionalString = z.union([z.string(), z.null()], { error: 'a string or null' });

export const calibrationSchema = z.strictObject({
  target_sparse_ratio: z.strictObject({ prefill: ratio.optional(), decode: ratio.optional() }, { error: 'an object {prefill, decode} of numbers in [0, 1]' }).optional(),
  samples: z.custom<number>(positiveInt, { error: 'an integer >= 1' }).optional(),
  // ModelOpt asks for >= 1024 (RULER lengths); CPU calibration runs on short inputs, so any length.
  max_seqlen: z.custom<number>(positiveInt, { error: 'an integer >= 1' }).optional(),
  num_length_bins: z.custom<number>(positiveInt, { error: 'an integer >= 1' }).optional(),
  chunk_size: z.custom<number>((v) => v === -1 || positiveInt(v), { error: 'an integer >= 1, or -1 (no chunking)' }).optional(),
  num_decode_tokens: z.custom<number>(positiveInt, { error: 'an integer >= 1' }).optional(),
  threshold_trials: z.array(trial, { error: 'null or a non-empty array of numbers in (0, 1)' }).min(1, { error: 'null or a non-empty array of numbers in (0, 1)' }).nullable().optional(),
  fit_logspace: z.boolean({ error: 'true or false' }).optional(),
  cache_dir: optionalString.optional(),
  data_dir: optionalString.optional(),
}, { error: `null or an object {${CALIBRATION_FIELDS.join(', ')}}` });

/** Every field filled from ModelOpt's defaults; null stays null (no calibration). */
export function resolveCalibration(c: CalibrationInput | null | undefined): CalibrationConfig | null {
  if (c == null) return null;
  return {
    ...CALIBRATION_DEFAULTS,
    ...Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)),
    target_sparse_ratio: { ...(c.target_sparse_ratio ?? CALIBRATION_DEFAULTS.target_sparse_ratio) },
    threshold_trials: [...(c.threshold_trials ?? CALIBRATION_DEFAULTS.threshold_trials)],
  } as CalibrationConfig;
}
