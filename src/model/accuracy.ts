/**
 * Accuracy of sparse attention inside a real model (bytes-llama-dev by default): for every method,
 * at its defaults and at configurations found to give target block sparsities (about 50/80/90%;
 * uniform settings, and per-head ones where that family is built, see eval-variants.ts), on needle
 * prompts of the given lengths, compared with dense attention on the same prompts (dense is scored
 * once per prompt):
 *   lossDelta       mean next-byte loss (nats/byte) over the prompt, sparse − dense (also in % of dense)
 *   agreement       fraction of prompts whose greedy 6-byte answer equals dense's
 *   logProbDelta    mean log p(dense answer) under sparse − under dense (0 = as confident)
 *   needleAccuracy  fraction of answers equal to the needle's value
 *   sparsity        measured prefill block sparsity over the sparsified modules
 * with 95% confidence intervals over prompts (eval-stats.ts). The forward passes run on the CPU
 * model or the GPU runner (`scoring`); configs, statistics and captures go through the LlamaModel
 * either way (the GPU runner reads its modules' methods on every pass).
 */
import type { GridMeasurer } from '../calibration/per-head-grid.js';
import { availableParallelism, cpus } from 'node:os';
import { requireInteger, SparseAttentionError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { sparseMethods } from '../methods/index.js';
import type { BlockPlan } from '../methods/method.js';
import type { AttentionModule, LlamaModel } from './llama.js';
import { buildNeedlePrompt, type NeedlePrompt } from './needle.js';
import { cpuScoring, type PromptScore, type ScoringModel, scoreWith } from './prompt-score.js';
import type { SparseAttentionConfigJson } from '../config/sparse-config.js';
import { desparsify, sparsify } from './sparsify.js';
import type { CallPlanner, CapturedAttention } from './sparsity-search.js';
import { type Interval, meanInterval, wilsonInterval } from './eval-stats.js';
import { configFor, headOutputNorms, type Variant, type VariantFamily, variantsFor } from './eval-variants.js';

export { formatAccuracyTable, formatParetoTable, paretoRows } from './eval-report.js';

export interface AccuracyOptions {
  lengths: number[];
  prompts: number;
  methods?: string[];
  /** Target sparsities for the searched settings. Default [0.5, 0.8, 0.9]. */
  targets?: number[];
  /** Variant families per method (eval-variants.ts). Default ['uniform']. */
  families?: VariantFamily[];
  /** Whole configs evaluated as extra rows at every length (e.g. a calibrated or hand-written one). */
  extraVariants?: Variant[];
  /** How the knob searches plan the captured calls (default the CPU; the CLI passes the GPU's for --backend webgpu). */
  searchPlanner?: CallPlanner;
  /** Per-head calibration and the projection fit on N query rows of each captured call, in 4 windows spread over it (default 1024; 0 = all). */
  calibrationQueries?: number;
  /** How per-head calibration measures heads (default serially; the CLI passes a worker pool). */
  measureGrid?: GridMeasurer;
  /** Per method, settings all its variants share (e.g. { sla: { BLKQ: 16 } }); the searched knob goes on top. */
  methodSettings?: Readonly<Record<string, Record<string, unknown>>>;
  /** First N layers stay dense (per-layer exception). Default 0. */
  denseLayers?: number;
  needles?: number;
  seed?: number;
  prefillChunk?: number;
  /** Where forward passes run: default the CPU model itself; gpuScoring(new GpuLlamaModel(model, ctx)) for the GPU. */
  scoring?: ScoringModel;
  /** The device the passes run on, for the report (default: this machine's CPU). */
  device?: { name: string; backend: string; [key: string]: unknown };
  onProgress?: (done: number, total: number, label: string) => void;
  /** Called with the rows so far after each (length, variant) finishes, e.g. to save partial results. */
  onRow?: (rows: readonly AccuracyRow[]) => void;
  /**
   * Called with the plan of each sparsified layer's first prefill call on the first prompt of each
   * (length, method, setting): the block masks `sparse-attn eval --save-masks` draws.
   */
  onPlan?: (run: { length: number; method: string; label: string }, module: AttentionModule, plan: BlockPlan) => void;
}

export interface AccuracyRow {
  length: number;
  method: string;
  label: string;
  family: VariantFamily | 'dense';
  settings: Record<string, unknown>;
  plannedSparsity?: number;
  sparsity: number;
  /** Mean dense loss over the prompts (nats/byte), the base of lossDeltaPct. */
  denseLoss: number;
  lossDelta: number;
  /** lossDelta in % of denseLoss. */
  lossDeltaPct: number;
  agreement: number;
  logProbDelta: number;
  needleAccuracy: number;
  /** 95% intervals: t over prompts for the deltas, Wilson for the proportions. */
  ci: { lossDelta: Interval; lossDeltaPct: Interval; agreement: Interval; logProbDelta: Interval; needleAccuracy: Interval };
  /** Per prompt: loss delta and 1/0 agreement (to recompute any statistic). */
  perPrompt: { lossDelta: number[]; agree: number[] };
  /** The config the row ran (absent for dense). */
  config?: SparseAttentionConfigJson;
  prompts: number;
  seconds: number;
}

export interface AccuracyReport {
  date: string;
  machine: string;
  device: { name: string; backend: string; [key: string]: unknown };
  model: string;
  ciMethod: string;
  options: Omit<AccuracyOptions, 'onProgress' | 'onRow' | 'onPlan' | 'scoring' | 'searchPlanner' | 'measureGrid' | 'extraVariants'> & { extraVariants?: string[] };
  /** True while the run is still going (a file saved after each row). */
  partial?: boolean;
  rows: AccuracyRow[];
  /** Variants the runner refused, with the reason. */
  skipped?: SkippedVariant[];
}

export interface SkippedVariant {
  length: number;
  method: string;
  label: string;
  reason: string;
}

const ANSWER = 6;
export const CI_METHOD = '95%: Student-t over prompts for Δloss, Δloss % and ΔlogP (paired with dense); Wilson score for agreement and needle accuracy';

/** The config of a uniform setting (kept for callers of the earlier API). */
export function sparseConfigFor(v: { method: string; label?: string; settings: Record<string, unknown> }, denseLayers: number): SparseAttentionConfigJson {
  return configFor({ method: v.method, ...v.settings }, denseLayers);
}

export async function runAccuracyEval(model: LlamaModel, corpus: Uint8Array, opts: AccuracyOptions): Promise<AccuracyReport> {
  const methods = (opts.methods ?? sparseMethods.list().map((m) => m.name)).filter((m) => m !== 'dense');
  for (const m of methods) sparseMethods.get(m); // unknown names fail before any work
  const targets = opts.targets ?? [0.5, 0.8, 0.9];
  const families = opts.families ?? ['uniform'];
  const denseLayers = requireInteger('denseLayers', opts.denseLayers ?? 0, 0, model.config.numLayers);
  const scoring = opts.scoring ?? cpuScoring(model);
  const rng = new Rng(opts.seed ?? 1);
  const extra = opts.extraVariants ?? [];
  // Expected runs per prompt; corrected as each method's variants are known.
  const knobbed = methods.filter((m) => sparseMethods.descriptor(m).knob).length;
  const perLength = 1 + methods.length + extra.length + knobbed * targets.length * families.filter((f) => f !== 'sla-proj').length;
  let total = opts.lengths.length * opts.prompts * perLength;
  let done = 0;
  const tick = (label: string) => opts.onProgress?.(done, total, label);
  const rows: AccuracyRow[] = [];
  const skipped: SkippedVariant[] = [];
  try {
    for (const length of opts.lengths) {
      const prompts = Array.from({ length: opts.prompts }, () => buildNeedlePrompt(corpus, length, rng, opts.needles));
      tick(`L=${length} dense`);
      const captured: CapturedAttention[] = [];
      const outNorms = new Map<number, number[]>(); // per layer: one pass over o_proj, not one per captured call
      const dense: PromptScore[] = [];
      const t0 = Date.now();
      for (const [i, p] of prompts.entries()) {
        desparsify(model);
        // Capture the first prompt's prefill operands for the searches and calibrations.
        model.onAttention = i === 0 ? (m, q, k, v, place) => {
          if (q.length > 1 && m.layer >= denseLayers) captured.push({ module: m.name, q, k, v, headOutNorms: outNorms.get(m.layer) ?? outNorms.set(m.layer, headOutputNorms(model.weights.layers[m.layer].o, q.heads)).get(m.layer), ...place });
        } : undefined;
        dense.push(await scoreWith(scoring, p.tokens, { answerLength: ANSWER, prefillChunk: opts.prefillChunk }));
        model.onAttention = undefined;
        done++;
        tick(`L=${length} dense`);
      }
      rows.push(summarize(length, { method: 'dense', label: 'dense', family: 'uniform', settings: {}, config: undefined as never }, prompts, dense, dense, 0, (Date.now() - t0) / 1000));
      opts.onRow?.(rows);
      // Each method's variants are searched, then scored, before the next method's search: a long
      // run (per-head calibration runs on the CPU) saves every finished row as it goes.
      const evaluate = async (v: Variant) => {
        const name = `L=${length} ${v.method} ${v.label}`;
        tick(name);
        const t1 = Date.now();
        const scores: PromptScore[] = [];
        let stats;
        try {
          stats = sparsify(model, v.config).stats;
          for (const [i, p] of prompts.entries()) {
            model.onPlan = i === 0 && opts.onPlan ? firstPrefillPlans((m, plan) => opts.onPlan!({ length, method: v.method, label: v.label }, m, plan), denseLayers) : undefined;
            scores.push(await scoreWith(scoring, p.tokens, { answerLength: ANSWER, reference: dense[i].greedy, prefillChunk: opts.prefillChunk }));
            model.onPlan = undefined;
            done++;
            tick(name);
          }
        } catch (err) {
          // A configuration the runner refuses (e.g. an unsupported combination) costs its row, not the run.
          if (!(err instanceof SparseAttentionError)) throw err;
          model.onPlan = undefined;
          done += prompts.length - scores.length;
          skipped.push({ length, method: v.method, label: v.label, reason: err.message });
          opts.onRow?.(rows);
          return;
        }
        const sparse = stats.summary('prefill').filter((r) => r.module.startsWith('model.layers.') && Number(r.module.split('.')[2]) >= denseLayers);
        const kept = sparse.reduce((a, r) => a + r.keptBlocks, 0);
        const all = sparse.reduce((a, r) => a + r.totalBlocks, 0);
        rows.push(summarize(length, v, prompts, dense, scores, all === 0 ? 0 : 1 - kept / all, (Date.now() - t1) / 1000));
        opts.onRow?.(rows);
      };
      const expect = (method: string) => 1 + (sparseMethods.descriptor(method).knob ? targets.length * families.filter((f) => f !== 'sla-proj').length : 0);
      for (const method of methods) {
        tick(`L=${length} ${method}: searching settings (${families.join(', ')})`);
        const variants = await variantsFor({
          method, length, targets, captured, denseLayers, calibrationQueries: opts.calibrationQueries, planner: opts.searchPlanner, measureGrid: opts.measureGrid,
          base: opts.methodSettings?.[method],
        }, families);
        total += opts.prompts * (variants.length - expect(method));
        for (const v of variants) await evaluate(v);
      }
      captured.length = 0;
      for (const v of extra) await evaluate(v);
    }
  } finally {
    desparsify(model);
    model.onAttention = undefined;
    model.onPlan = undefined;
  }
  return { ...newReport(opts, rows), ...(skipped.length ? { skipped } : {}) };
}

/** A plan hook passing on each sparsified module's first prefill plan (decode steps have Lq = 1). */
function firstPrefillPlans(onPlan: (m: AttentionModule, plan: BlockPlan) => void, denseLayers: number): (m: AttentionModule, plan: BlockPlan) => void {
  const seen = new Set<string>();
  return (m, plan) => {
    if (plan.mask.queryLength === 1 || m.layer < denseLayers || seen.has(m.name)) return;
    seen.add(m.name);
    onPlan(m, plan);
  };
}

export function newReport(opts: AccuracyOptions, rows: AccuracyRow[]): AccuracyReport {
  const { onProgress: _p, onRow: _r, onPlan: _m, scoring: _s, searchPlanner: _sp, measureGrid: _mg, extraVariants, device, ...options } = opts;
  return {
    date: new Date().toISOString(), machine: machineName(), device: device ?? { name: cpus()[0]?.model ?? 'unknown CPU', backend: 'cpu' }, model: '',
    ciMethod: CI_METHOD, options: { ...options, ...(extraVariants ? { extraVariants: extraVariants.map((v) => v.label) } : {}) }, rows,
  };
}

function summarize(length: number, v: Variant, prompts: NeedlePrompt[], dense: PromptScore[], s: PromptScore[], sparsity: number, seconds: number): AccuracyRow {
  const n = prompts.length;
  const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.prototype.every.call(a, (x: number, i: number) => x === b[i]);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const lossDelta = prompts.map((_, i) => s[i].loss - dense[i].loss);
  const denseLoss = mean(dense.map((d) => d.loss));
  const lossPct = lossDelta.map((d) => (100 * d) / denseLoss);
  const agree = prompts.map((_, i) => (same(s[i].greedy, dense[i].greedy) ? 1 : 0));
  const logP = prompts.map((_, i) => (s[i].referenceLogProb ?? s[i].greedyLogProb) - dense[i].greedyLogProb);
  const needle = prompts.map((p, i) => (same(s[i].greedy, p.answer) ? 1 : 0));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const isDense = v.method === 'dense';
  return {
    length, method: v.method, label: v.label, family: isDense ? 'dense' : v.family, settings: v.settings,
    ...(v.plannedSparsity !== undefined ? { plannedSparsity: v.plannedSparsity } : {}),
    sparsity,
    denseLoss,
    lossDelta: mean(lossDelta),
    lossDeltaPct: (100 * mean(lossDelta)) / denseLoss,
    agreement: mean(agree),
    logProbDelta: mean(logP),
    needleAccuracy: mean(needle),
    ci: {
      lossDelta: meanInterval(lossDelta), lossDeltaPct: meanInterval(lossPct), agreement: wilsonInterval(sum(agree), n),
      logProbDelta: meanInterval(logP), needleAccuracy: wilsonInterval(sum(needle), n),
    },
    perPrompt: { lossDelta, agree },
    ...(isDense ? {} : { config: v.config }),
    prompts: n,
    seconds,
  };
}

export function machineName(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'unknown CPU'} (${availableParallelism()} threads visible), node ${process.version}, ${process.platform}`;
}
