/**
 * flash-skip-softmax (NVIDIA ModelOpt): inside FlashAttention's loop over key tiles, skip a tile
 * whose scores are all far below the running row maximum, i.e. exp(s - m) < threshold for every
 * entry, because it adds almost nothing after the softmax.
 *
 * Tiles are br queries × bc keys (decode: br = 1). Per query tile and per row r we need only the
 * row's maximum inside each key tile, tileMax[r]; the decision is
 *   kept ⇔ ∃ r: tileMax[r] − max(m[r], tileMax[r]) > log(threshold)   (first visited tile always kept)
 * where m is the running maximum before the tile. Two variants, two registered versions:
 *   v1 'cummax'     (ModelOpt's original, on the full score matrix): m = cummax over ALL earlier tiles
 *   v2 'sequential' (what a kernel does): m only over tiles that were kept.
 * In exact arithmetic they agree for threshold < 1: a skipped tile has tileMax ≤ m + log t < m, so
 * it could not have raised the maximum anyway; the tests check the two paths against each other.
 *
 * planBlockMask works tile by tile from Q and K (O(br + bc) state per query tile, never L×L).
 */
import { BlockMask, type BlockMaskDims, blockCausallyValid } from '../../core/block-mask.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { checkScores, type Scores } from '../../core/scores.js';
import { type Phase, phaseOf, type SparsityStats } from '../../core/stats.js';
import type { HeadTensor } from '../../core/tensor.js';
import { maskScores, type BlockPlan, type PlanOptions, type SparseAttentionMethod, type SparsityResult, type ThresholdInfo } from '../method.js';
import { blockSizeSettings } from '../settings.js';
import { type FlashSkipVariant, scoreTile, type TileOperands, TileSkipDecider, tileOperands } from './flash-skip-tiles.js';

export type { FlashSkipVariant };

export interface PhaseValues { prefill: number; decode: number }
/** scaleFactor = a · exp(b · sparsity), fitted per phase by calibration. */
export interface ExponentialFit { a: number; b: number }
export interface FlashSkipCalibration { prefill?: ExponentialFit; decode?: ExponentialFit }

/** ModelOpt's calibration request (the config's `calibration` field); calibrate() reads its trials and targets. */
export interface FlashSkipCalibrationRequest {
  target_sparse_ratio?: Partial<PhaseValues>;
  samples?: number;
  max_seqlen?: number;
  threshold_trials?: number[];
}

export interface FlashSkipSettings {
  threshold: PhaseValues;
  br: number;
  bc: number;
  isCausal: boolean;
  variant: FlashSkipVariant;
  /** Plan the GQA-group consensus mask (a KV tile kept for every head of a group if any head keeps it). */
  groupConsensus: boolean;
  /** The request, as the config passes it (null when absent). */
  calibration: FlashSkipCalibrationRequest | null;
  /** Calibration results, ModelOpt's `calibration_params`: the fit per phase. */
  calibrationParams?: FlashSkipCalibration;
  /** Run-time target of a calibrated phase (ModelOpt's `target_sparse_ratio`). */
  target: PhaseValues;
}

export const DEFAULT_THRESHOLD: PhaseValues = { prefill: 1e-3, decode: 1e-4 };
const EXAMPLE_LENGTHS = [1024, 4096, 16384, 65536, 131072];

function unitInterval(field: string, v: unknown, openLow: boolean): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || (openLow ? v <= 0 : v < 0) || v > 1) {
    throw new InvalidArgumentError(field, v, openLow ? 'in (0, 1]' : 'in [0, 1]');
  }
  return v;
}

function phaseValues(field: string, v: unknown, fallback: PhaseValues, openLow: boolean): PhaseValues {
  if (v === undefined) return { ...fallback };
  if (typeof v === 'number') return { prefill: unitInterval(field, v, openLow), decode: unitInterval(field, v, openLow) };
  if (typeof v !== 'object' || v === null) throw new InvalidArgumentError(field, v, 'a number or { prefill, decode }');
  const o = v as Record<string, unknown>;
  for (const key of Object.keys(o)) if (key !== 'prefill' && key !== 'decode') throw new InvalidArgumentError(`${field}.${key}`, o[key], 'absent (only prefill and decode are phases)');
  return {
    prefill: o.prefill === undefined ? fallback.prefill : unitInterval(`${field}.prefill`, o.prefill, openLow),
    decode: o.decode === undefined ? fallback.decode : unitInterval(`${field}.decode`, o.decode, openLow),
  };
}

function parseCalibrationParams(v: unknown): FlashSkipCalibration | undefined {
  const field = 'flash_skip_softmax.calibration_params';
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object') throw new InvalidArgumentError(field, v, 'null or { prefill?: {a, b}, decode?: {a, b} }');
  const out: FlashSkipCalibration = {};
  for (const [phase, fit] of Object.entries(v as Record<string, unknown>)) {
    if (phase !== 'prefill' && phase !== 'decode') throw new InvalidArgumentError(`${field}.${phase}`, fit, 'absent (only prefill and decode)');
    const { a, b } = (fit ?? {}) as { a?: unknown; b?: unknown };
    if (typeof a !== 'number' || !Number.isFinite(a) || a <= 0) throw new InvalidArgumentError(`${field}.${phase}.a`, a, 'a finite number > 0');
    if (typeof b !== 'number' || !Number.isFinite(b)) throw new InvalidArgumentError(`${field}.${phase}.b`, b, 'a finite number');
    out[phase] = { a, b };
  }
  return out;
}

/** The config layer validates the request's fields; here only its shape and its trials matter. */
function parseCalibrationRequest(v: unknown): FlashSkipCalibrationRequest | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') throw new InvalidArgumentError('flash_skip_softmax.calibration', v, 'null or { target_sparse_ratio?, samples?, max_seqlen?, threshold_trials? }');
  const req = v as FlashSkipCalibrationRequest;
  req.threshold_trials?.forEach((t, i) => {
    if (!(t > 0 && t <= 1)) throw new InvalidArgumentError(`flash_skip_softmax.calibration.threshold_trials[${i}]`, t, 'in (0, 1]');
  });
  return req;
}

/**
 * Current ModelOpt's `thresholds` ({prefill: [...], decode: [...]}, validated by the config layer):
 * the first value of each list is the one applied (ModelOpt measures the others too).
 */
function firstThresholds(lists: unknown, threshold: unknown): PhaseValues {
  if (threshold !== undefined) throw new InvalidArgumentError('flash_skip_softmax.thresholds', lists, 'absent when threshold is given (give one of them)');
  const l = (lists ?? {}) as { prefill?: unknown[]; decode?: unknown[] };
  if (typeof lists !== 'object' || lists === null || (l.prefill !== undefined && !Array.isArray(l.prefill)) || (l.decode !== undefined && !Array.isArray(l.decode))) {
    throw new InvalidArgumentError('flash_skip_softmax.thresholds', lists, 'an object {prefill, decode} of lists of numbers in (0, 1)');
  }
  const prefill = unitInterval('flash_skip_softmax.thresholds.prefill[0]', l.prefill?.[0] ?? 1e-3, true);
  return { prefill, decode: unitInterval('flash_skip_softmax.thresholds.decode[0]', l.decode?.[0] ?? prefill, true) };
}

export function parseFlashSkipSettings(settings: Record<string, unknown>, defaultVariant: FlashSkipVariant): FlashSkipSettings {
  // collect_stats is accepted for ModelOpt configs and ignored: statistics are always computed.
  const known = new Set(['threshold', 'thresholds', 'br', 'bc', 'is_causal', 'variant', 'group_consensus', 'calibration', 'calibration_params', 'target_sparse_ratio', 'collect_stats']);
  for (const key of Object.keys(settings)) {
    if (!known.has(key)) throw new InvalidArgumentError(`flash_skip_softmax setting "${key}"`, settings[key], `one of ${[...known].join(', ')}`);
  }
  const { br, bc } = blockSizeSettings('flash_skip_softmax', settings, { br: 128, bc: 128 });
  const variant = settings.variant ?? defaultVariant;
  if (variant !== 'cummax' && variant !== 'sequential') throw new InvalidArgumentError('flash_skip_softmax.variant', variant, '"cummax" or "sequential"');
  for (const field of ['is_causal', 'group_consensus'] as const) {
    if (settings[field] !== undefined && typeof settings[field] !== 'boolean') throw new InvalidArgumentError(`flash_skip_softmax.${field}`, settings[field], 'a boolean');
  }
  const calibration = parseCalibrationRequest(settings.calibration);
  const requested = phaseValues('flash_skip_softmax.calibration.target_sparse_ratio', calibration?.target_sparse_ratio, { prefill: 0.5, decode: 0.5 }, false);
  return {
    threshold: settings.thresholds === undefined
      ? phaseValues('flash_skip_softmax.threshold', settings.threshold, DEFAULT_THRESHOLD, true)
      : firstThresholds(settings.thresholds, settings.threshold),
    br, bc, variant,
    isCausal: (settings.is_causal as boolean | undefined) ?? true,
    groupConsensus: (settings.group_consensus as boolean | undefined) ?? false,
    calibration,
    calibrationParams: parseCalibrationParams(settings.calibration_params),
    target: phaseValues('flash_skip_softmax.target_sparse_ratio', settings.target_sparse_ratio, requested, false),
  };
}

/** Kept tiles as a dense [B, H, nQB, nKB] view plus the raised-maximum count, from Q and K tile by tile. */
function decideFromQK(t: TileOperands, dims: BlockMaskDims, threshold: number, variant: FlashSkipVariant): { kept: Uint8Array; raised: number } {
  const { blockRows: br, blockCols: bc } = dims;
  const nQB = Math.ceil(dims.queryLength / br);
  const nKB = Math.ceil(dims.keyLength / bc);
  const kept = new Uint8Array(dims.batch * dims.heads * nQB * nKB);
  const decider = new TileSkipDecider(br, variant);
  const s = new Float64Array(br * bc);
  const tileMax = new Float64Array(br);
  let raised = 0;
  for (let b = 0; b < dims.batch; b++)
    for (let h = 0; h < dims.heads; h++)
      for (let qb = 0; qb < nQB; qb++) {
        const rows = Math.min(br, dims.queryLength - qb * br);
        decider.start(rows, threshold);
        const base = ((b * dims.heads + h) * nQB + qb) * nKB;
        for (let kb = 0; kb < nKB; kb++) {
          if (!blockCausallyValid(dims, qb, kb)) continue;
          scoreTile(t, b, h, qb * br, rows, kb * bc, Math.min(bc, dims.keyLength - kb * bc), bc, s, tileMax);
          if (decider.step(tileMax)) kept[base + kb] = 1;
          raised += decider.raised;
        }
      }
  return { kept, raised };
}

/** Kept tiles from a materialised score matrix (the ModelOpt path), same decision rule. */
function decideFromScores(scores: Scores, dims: BlockMaskDims, threshold: number, variant: FlashSkipVariant): { kept: Uint8Array; raised: number } {
  const { blockRows: br, blockCols: bc, queryLength: Lq, keyLength: Lk } = dims;
  const nQB = Math.ceil(Lq / br);
  const nKB = Math.ceil(Lk / bc);
  const kept = new Uint8Array(dims.batch * dims.heads * nQB * nKB);
  const decider = new TileSkipDecider(br, variant);
  const tileMax = new Float64Array(br);
  let raised = 0;
  for (let bh = 0; bh < dims.batch * dims.heads; bh++)
    for (let qb = 0; qb < nQB; qb++) {
      const rows = Math.min(br, Lq - qb * br);
      decider.start(rows, threshold);
      for (let kb = 0; kb < nKB; kb++) {
        const j1 = Math.min((kb + 1) * bc, Lk);
        for (let r = 0; r < rows; r++) {
          const o = (bh * Lq + qb * br + r) * Lk;
          let mx = -Infinity;
          for (let j = kb * bc; j < j1; j++) if (scores.data[o + j] > mx) mx = scores.data[o + j];
          tileMax[r] = mx;
        }
        if (decider.step(tileMax)) kept[(bh * nQB + qb) * nKB + kb] = 1;
        raised += decider.raised;
      }
    }
  return { kept, raised };
}

/** Sparsity of a dense kept view over the valid tiles, per head, and for GQA-group consensus. */
export function flashSkipStatistics(dims: BlockMaskDims, kept: Uint8Array, groupSize: number): Record<string, number> {
  const nQB = Math.ceil(dims.queryLength / dims.blockRows);
  const nKB = Math.ceil(dims.keyLength / dims.blockCols);
  let valid = 0;
  for (let qb = 0; qb < nQB; qb++) for (let kb = 0; kb < nKB; kb++) if (blockCausallyValid(dims, qb, kb)) valid++;
  valid *= dims.batch; // valid tiles of one head over the batch
  const keptPerHead = new Float64Array(dims.heads);
  const consensusPerHead = new Float64Array(dims.heads);
  const consensus = groupConsensusView(dims, kept, groupSize);
  for (let i = 0; i < kept.length; i++) {
    const h = Math.floor(i / (nQB * nKB)) % dims.heads;
    keptPerHead[h] += kept[i];
    consensusPerHead[h] += consensus[i];
  }
  const out: Record<string, number> = {};
  for (let h = 0; h < dims.heads; h++) out[`head_${h}_sparsity`] = 1 - keptPerHead[h] / valid;
  // Every head of a group carries the group's consensus, so the mean over heads is the per-group figure.
  out.group_consensus_sparsity = 1 - consensusPerHead.reduce((x, y) => x + y, 0) / (valid * dims.heads);
  out.group_size = groupSize;
  return out;
}

export class FlashSkipSoftmax implements SparseAttentionMethod {
  static readonly description: string = "ModelOpt's flash-skip-softmax, v1: skip key tiles far below the row's cumulative max";
  protected static readonly defaultVariant: FlashSkipVariant = 'cummax';
  readonly name = 'flash_skip_softmax';
  readonly version: string = 'v1';
  readonly settings: FlashSkipSettings;

  constructor(settings: Record<string, unknown> = {}) {
    this.settings = parseFlashSkipSettings(settings, (this.constructor as typeof FlashSkipSoftmax).defaultVariant);
  }

  get br(): number { return this.settings.br; }
  get defaultCausal(): boolean { return this.settings.isCausal; }
  get bc(): number { return this.settings.bc; }

  /** The phase's threshold: static, or a·exp(b·target)/Lk when calibrated for the phase. */
  thresholdFor(phase: Phase, keyLength: number): number {
    const fit = this.settings.calibrationParams?.[phase];
    if (!fit) return this.settings.threshold[phase];
    return (fit.a * Math.exp(fit.b * this.settings.target[phase])) / keyLength;
  }

  calculateSparsity(scores: Scores, opts: { groupSize?: number } = {}): SparsityResult {
    checkScores(scores);
    const { queryLength: Lq, keyLength: Lk } = scores;
    const phase = phaseOf(Lq);
    const dims: BlockMaskDims = {
      batch: scores.batch, heads: scores.heads, queryLength: Lq, keyLength: Lk,
      blockRows: phase === 'decode' ? 1 : this.br, blockCols: this.bc, causal: this.settings.isCausal,
    };
    const threshold = this.thresholdFor(phase, Lk);
    const { kept, raised } = decideFromScores(scores, dims, threshold, this.settings.variant);
    const nKB = Math.ceil(Lk / this.bc);
    const nQB = Math.ceil(Lq / dims.blockRows);
    const mask = new Uint8Array(scores.data.length);
    for (let bh = 0; bh < scores.batch * scores.heads; bh++)
      for (let i = 0; i < Lq; i++)
        for (let j = 0; j < Lk; j++) {
          const o = (bh * Lq + i) * Lk + j;
          mask[o] = kept[(bh * nQB + Math.floor(i / dims.blockRows)) * nKB + Math.floor(j / this.bc)] && scores.data[o] !== -Infinity ? 1 : 0;
        }
    const stats = this.stats(dims, kept, raised, threshold, opts.groupSize ?? 1);
    return { mask, stats };
  }

  applySparsity(scores: Scores, mask?: Uint8Array): Scores {
    return maskScores(scores, mask ?? this.calculateSparsity(scores).mask);
  }

  getThresholdInfo(): ThresholdInfo {
    const cal = this.settings.calibrationParams;
    if (!cal || (!cal.prefill && !cal.decode)) return { type: 'static', value: { ...this.settings.threshold } };
    const phases: Record<string, unknown> = {};
    for (const phase of ['prefill', 'decode'] as const) {
      const fit = cal[phase];
      if (!fit) continue;
      const scaleFactor = fit.a * Math.exp(fit.b * this.settings.target[phase]);
      phases[phase] = {
        a: fit.a, b: fit.b, target_sparsity: this.settings.target[phase], scale_factor: scaleFactor,
        example_thresholds: Object.fromEntries(EXAMPLE_LENGTHS.map((L) => [L, scaleFactor / L])),
      };
    }
    const first = (cal.prefill ?? cal.decode)!;
    return {
      type: 'dynamic_calibrated',
      formula: 'threshold = a * exp(b * target_sparsity) / seqlen',
      calibration_params: cal,
      target_sparse_ratio: { ...this.settings.target },
      scaleFactor: first.a * Math.exp(first.b * this.settings.target[cal.prefill ? 'prefill' : 'decode']),
      phases,
    };
  }

  planBlockMask(q: HeadTensor, k: HeadTensor, opts: PlanOptions): BlockPlan {
    // NaN would make every tile look kept (density 1): refuse it as sparseAttention does.
    q.assertFinite('q');
    k.assertFinite('k');
    const t = tileOperands(q, k, { ...opts, causal: opts.causal ?? this.settings.isCausal });
    const phase = opts.phase ?? phaseOf(t.p.queryLength);
    const dims: BlockMaskDims = {
      batch: t.p.batch, heads: t.p.heads, queryLength: t.p.queryLength, keyLength: t.p.keyLength,
      blockRows: phase === 'decode' ? 1 : this.br, blockCols: this.bc, causal: t.p.causal,
    };
    const threshold = this.thresholdFor(phase, t.p.keyLength);
    const { kept, raised } = decideFromQK(t, dims, threshold, this.settings.variant);
    const stats = this.stats(dims, kept, raised, threshold, t.p.groupSize);
    let planned = kept;
    if (this.settings.groupConsensus && t.p.groupSize > 1) planned = groupConsensusView(dims, kept, t.p.groupSize);
    return { mask: BlockMask.fromDense(dims, planned), stats: { ...stats, phase } };
  }

  /** ModelOpt statistics of a kept view (public: the WebGPU runner reports the same fields). */
  stats(dims: BlockMaskDims, kept: Uint8Array, raised: number, threshold: number, groupSize: number): SparsityStats {
    const mask = BlockMask.fromDense(dims, kept);
    const total = mask.validBlocks;
    const keptValid = mask.keptValidBlocks;
    const nKB = Math.ceil(dims.keyLength / dims.blockCols);
    const sparsity = total === 0 ? 0 : 1 - keptValid / total;
    const perHead = total / (dims.batch * dims.heads);
    return {
      method: this.name,
      phase: phaseOf(dims.queryLength),
      totalBlocks: total,
      keptBlocks: keptValid,
      sparsity,
      extra: {
        // ModelOpt's figures: total_blocks is per (batch, head), sparse_blocks = int(sparsity · total_blocks);
        // the counts over batch and heads are totalBlocks / keptBlocks above.
        sparsity,
        total_blocks: perHead,
        sparse_blocks: Math.trunc(sparsity * perHead),
        sample_length: dims.keyLength,
        threshold,
        // Fraction of (row, key tile) steps in which the running maximum rose.
        correction_factor: raised / (dims.batch * dims.heads * dims.queryLength * nKB),
        ...flashSkipStatistics(dims, kept, groupSize),
      },
    };
  }
}

/** Every head of a GQA group keeps a tile when any head of the group does. */
export function groupConsensusView(dims: BlockMaskDims, kept: Uint8Array, groupSize: number): Uint8Array {
  const per = Math.ceil(dims.queryLength / dims.blockRows) * Math.ceil(dims.keyLength / dims.blockCols);
  const out = new Uint8Array(kept.length);
  for (let b = 0; b < dims.batch; b++)
    for (let g = 0; g < dims.heads / groupSize; g++)
      for (let t = 0; t < per; t++) {
        let any = 0;
        for (let h = g * groupSize; h < (g + 1) * groupSize; h++) any |= kept[(b * dims.heads + h) * per + t];
        for (let h = g * groupSize; h < (g + 1) * groupSize; h++) out[(b * dims.heads + h) * per + t] = any;
      }
  return out;
}

/** v2: the sequential in-loop decision, as a kernel makes it (a skipped tile never raises the max). */
export class FlashSkipSoftmaxSequential extends FlashSkipSoftmax {
  static override readonly description: string = 'flash-skip-softmax v2: sequential in-kernel decision (skipped tiles never raise the running max)';
  protected static override readonly defaultVariant: FlashSkipVariant = 'sequential';
  override readonly version: string = 'v2';
}
