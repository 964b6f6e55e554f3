/**
 * One calibration API for every method: find the setting that makes a method reach a target block
 * sparsity on calibration inputs, and return it as settings the method is constructed with.
 *
 *   const cal = calibrate({ method: 'flash_skip_softmax', inputs: [{ q, k }, ...], target: 0.5 });
 *   const method = createCalibratedMethod(cal);   // getThresholdInfo() reports the calibration
 *
 * flash_skip_softmax: ModelOpt's exponential fit per phase (the setting becomes a dynamic
 * threshold a·exp(b·target)/Lk); other methods: bisection of their knob (knobs.ts) on the mean
 * sparsity over the inputs (prefill inputs; one value serves every length).
 */
import { InvalidArgumentError, SparseAttentionError } from '../core/errors.js';
import { type Phase, phaseOf } from '../core/stats.js';
import type { HeadTensor } from '../core/tensor.js';
import { FlashSkipSoftmax, type PhaseValues } from '../methods/flash-skip-softmax/flash-skip-softmax.js';
import { createSparseMethod, sparseMethods } from '../methods/index.js';
import type { SparseAttentionMethod } from '../methods/method.js';
import { DEFAULT_THRESHOLD_TRIALS, type ExponentialFitResult, fitExponential, flashSkipTileMargins, sparsityAt, type TileMargins } from '../methods/flash-skip-softmax/flash-skip-fit.js';
import type { MethodKnob } from '../methods/descriptor.js';
import { bisectKnob, knobMax, knobSettings, methodKnob } from './knobs.js';

export interface CalibrationData {
  q: HeadTensor;
  k: HeadTensor;
  v?: HeadTensor;
}

export interface CalibrateOptions {
  method: string;
  version?: string;
  inputs: CalibrationData[];
  /** Target block sparsity in [0, 1): one number for both phases, or per phase. */
  target: number | { prefill?: number; decode?: number };
  /** Base settings of the method (block sizes...); the calibrated setting is added to them. */
  settings?: Record<string, unknown>;
  /** Default true. */
  causal?: boolean;
  /** Softmax scale; default 1/√D. */
  scale?: number;
  /** flash_skip_softmax: thresholds tried on every input (default ModelOpt's list). */
  thresholdTrials?: number[];
  /** Search knobs: bisection steps (default 20). */
  iterations?: number;
}

export interface CalibrationSample {
  phase: Phase;
  queryLength: number;
  keyLength: number;
  /** The value of the knob this input ran with (flash-skip: the dynamic threshold at its length). */
  value: number;
  sparsity: number;
}

export interface CalibrationResult {
  method: string;
  version: string;
  /** The setting calibration chose ('threshold', 'localWindow', ...). */
  knob: string;
  target: PhaseValues;
  /** Complete settings to construct the calibrated method with. */
  settings: Record<string, unknown>;
  /** flash_skip_softmax: the exponential fit per phase. */
  fit?: Partial<Record<Phase, ExponentialFitResult>>;
  /** Search knobs: the chosen value and how many masks were measured. */
  search?: { value: number; measured: number; evaluations: number };
  /** Sparsity each calibration input reaches with the chosen setting. */
  samples: CalibrationSample[];
}

function parseTarget(target: CalibrateOptions['target']): Partial<PhaseValues> {
  const check = (field: string, v: unknown) => {
    if (typeof v !== 'number' || !(v >= 0 && v < 1)) throw new InvalidArgumentError(field, v, 'a sparsity in [0, 1)');
    return v;
  };
  if (typeof target === 'number') return { prefill: check('target', target), decode: check('target', target) };
  if (typeof target !== 'object' || target === null) throw new InvalidArgumentError('target', target, 'a number or { prefill?, decode? }');
  const out: Partial<PhaseValues> = {};
  if (target.prefill !== undefined) out.prefill = check('target.prefill', target.prefill);
  if (target.decode !== undefined) out.decode = check('target.decode', target.decode);
  return out;
}

export function calibrate(opts: CalibrateOptions): CalibrationResult {
  if (!sparseMethods.has(opts.method, opts.version)) {
    throw new SparseAttentionError(`cannot calibrate "${opts.method}"${opts.version ? ` ${opts.version}` : ''}: not registered (registered: ${sparseMethods.list().map((m) => m.name).join(', ')})`);
  }
  const knob = methodKnob(opts.method, opts.version);
  if (!Array.isArray(opts.inputs) || opts.inputs.length === 0) throw new InvalidArgumentError('inputs', opts.inputs, 'a non-empty array of { q, k }');
  const version = opts.version ?? sparseMethods.latest(opts.method);
  const target = parseTarget(opts.target);
  if (knob.fit === 'exponential') return calibrateFlashSkip(opts, version, target);
  return calibrateSearch(opts, version, knob, target);
}

/** Builds the method a calibration chose. */
export function createCalibratedMethod(result: CalibrationResult): SparseAttentionMethod {
  return createSparseMethod(result.method, result.settings, result.version);
}

function calibrateFlashSkip(opts: CalibrateOptions, version: string, target: Partial<PhaseValues>): CalibrationResult {
  const base = new FlashSkipSoftmax(opts.settings ?? {});
  const trials = opts.thresholdTrials ?? base.settings.calibration?.threshold_trials ?? DEFAULT_THRESHOLD_TRIALS;
  trials.forEach((t, i) => {
    if (!(t > 0 && t <= 1)) throw new InvalidArgumentError(`thresholdTrials[${i}]`, t, 'in (0, 1]');
  });
  const causal = opts.causal ?? base.settings.isCausal;
  const margins: TileMargins[] = opts.inputs.map(({ q, k }) => flashSkipTileMargins(q, k, { br: base.br, bc: base.bc, causal, scale: opts.scale }));
  const fit: Partial<Record<Phase, ExponentialFitResult>> = {};
  const full: PhaseValues = { prefill: target.prefill ?? 0.5, decode: target.decode ?? 0.5 };
  for (const phase of ['prefill', 'decode'] as const) {
    const mine = margins.filter((m) => m.phase === phase);
    // A phase without inputs, or with target 0 (ModelOpt: "set to 0.0 to skip that phase"), keeps its static threshold.
    if (mine.length === 0 || target[phase] === undefined || target[phase] === 0) continue;
    const observations = mine.flatMap((m) => trials.map((threshold) => ({ length: m.keyLength, threshold, sparsity: sparsityAt(m, threshold) })));
    fit[phase] = fitExponential(observations, phase);
  }
  if (!fit.prefill && !fit.decode) {
    throw new SparseAttentionError('flash_skip_softmax calibration: no phase to calibrate (inputs with Lq > 1 need target.prefill > 0; inputs with Lq = 1 need target.decode > 0)');
  }
  const params = Object.fromEntries(Object.entries(fit).map(([phase, f]) => [phase, { a: f.a, b: f.b }]));
  const settings = { ...(opts.settings ?? {}), calibration_params: params, target_sparse_ratio: full };
  const method = new FlashSkipSoftmax(settings);
  const samples = margins.map((m, i) => {
    const value = method.thresholdFor(m.phase, m.keyLength);
    return { phase: m.phase, queryLength: opts.inputs[i].q.length, keyLength: m.keyLength, value, sparsity: sparsityAt(m, value) };
  });
  return { method: 'flash_skip_softmax', version, knob: 'threshold', target: full, settings, fit, samples };
}

function calibrateSearch(opts: CalibrateOptions, version: string, knob: MethodKnob, target: Partial<PhaseValues>): CalibrationResult {
  const goal = target.prefill;
  if (goal === undefined) throw new InvalidArgumentError('target.prefill', goal, `a sparsity in [0, 1) (${opts.method} calibrates prefill only)`);
  const inputs = opts.inputs.filter(({ q }) => phaseOf(q.length) === 'prefill');
  if (inputs.length === 0) throw new InvalidArgumentError('inputs', opts.inputs.length, `at least one prefill input (Lq > 1) to calibrate ${opts.method}`);
  const causal = opts.causal ?? true;
  const max = knobMax(knob, Math.max(...inputs.map(({ k }) => k.length)));
  const measureAll = (value: number) => {
    const method = createSparseMethod(opts.method, { ...(opts.settings ?? {}), ...knobSettings(knob, value) }, version);
    return inputs.map(({ q, k }) => method.planBlockMask(q, k, { causal, scale: opts.scale }).stats.sparsity);
  };
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const search = bisectKnob((x) => mean(measureAll(x)), knob, max, goal, opts.iterations ?? 20);
  const settings = { ...(opts.settings ?? {}), ...knobSettings(knob, search.value) };
  const samples = measureAll(search.value).map((sparsity, i) => ({
    phase: 'prefill' as const, queryLength: inputs[i].q.length, keyLength: inputs[i].k.length, value: search.value, sparsity,
  }));
  return { method: opts.method, version, knob: knob.setting, target: { prefill: goal, decode: target.decode ?? goal }, settings, search, samples };
}
