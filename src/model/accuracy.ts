/**
 * Accuracy of sparse attention inside a real model (bytes-llama-dev): for every method, at its
 * defaults and at settings found to give target block sparsities (about 50% and 80%), on needle
 * prompts of the given lengths, compared with dense attention on the same prompts:
 *   lossDelta       mean next-byte loss (nats/byte) over the prompt, sparse − dense
 *   agreement       fraction of prompts whose greedy 6-byte answer equals dense's
 *   logProbDelta    mean log p(dense answer) under sparse − under dense (0 = as confident)
 *   needleAccuracy  fraction of answers equal to the needle's value
 *   sparsity        measured prefill block sparsity over the sparsified modules
 */
import { availableParallelism, cpus } from 'node:os';
import { requireInteger } from '../core/errors.js';
import { formatTable } from '../core/stats.js';
import { Rng } from '../core/rng.js';
import { sparseMethods } from '../methods/index.js';
import type { BlockPlan } from '../methods/method.js';
import type { AttentionModule, LlamaModel } from './llama.js';
import { buildNeedlePrompt, type NeedlePrompt } from './needle.js';
import { type PromptScore, scorePrompt } from './prompt-score.js';
import type { SparseAttentionConfigJson } from '../config/sparse-config.js';
import { desparsify, sparsify } from './sparsify.js';
import { type CapturedAttention, searchSetting } from './sparsity-search.js';

export interface AccuracyOptions {
  lengths: number[];
  prompts: number;
  methods?: string[];
  /** Target sparsities for the searched settings. Default [0.5, 0.8]. */
  targets?: number[];
  /** First N layers stay dense (per-layer exception). Default 0. */
  denseLayers?: number;
  needles?: number;
  seed?: number;
  prefillChunk?: number;
  onProgress?: (done: number, total: number, label: string) => void;
  /** Called with the rows so far after each (length, method, setting) finishes, e.g. to save partial results. */
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
  settings: Record<string, unknown>;
  plannedSparsity?: number;
  sparsity: number;
  lossDelta: number;
  agreement: number;
  logProbDelta: number;
  needleAccuracy: number;
  prompts: number;
  seconds: number;
}

export interface AccuracyReport {
  date: string;
  machine: string;
  model: string;
  options: Omit<AccuracyOptions, 'onProgress' | 'onRow' | 'onPlan'>;
  /** True while the run is still going (a file saved after each row). */
  partial?: boolean;
  rows: AccuracyRow[];
}

const ANSWER = 6;

interface Variant {
  method: string;
  label: string;
  settings: Record<string, unknown>;
  plannedSparsity?: number;
}

export function sparseConfigFor(v: Variant, denseLayers: number): SparseAttentionConfigJson {
  const cfg: SparseAttentionConfigJson = { sparse_cfg: { '*self_attn*': { method: v.method, ...v.settings } }, export_format: null };
  for (let l = 0; l < denseLayers; l++) cfg.sparse_cfg[`model.layers.${l}.self_attn`] = { enable: false };
  cfg.sparse_cfg.default = { enable: false };
  return cfg;
}

export async function runAccuracyEval(model: LlamaModel, corpus: Uint8Array, opts: AccuracyOptions): Promise<AccuracyReport> {
  const methods = (opts.methods ?? sparseMethods.list().map((m) => m.name)).filter((m) => m !== 'dense');
  for (const m of methods) sparseMethods.get(m); // unknown names fail before any work
  const targets = opts.targets ?? [0.5, 0.8];
  const denseLayers = requireInteger('denseLayers', opts.denseLayers ?? 0, 0, model.config.numLayers);
  const rng = new Rng(opts.seed ?? 1);
  const perLength = 1 + methods.reduce((a, m) => a + 1 + (sparseMethods.descriptor(m).knob ? targets.length : 0), 0);
  const total = opts.lengths.length * opts.prompts * perLength;
  let done = 0;
  const tick = (label: string) => opts.onProgress?.(done, total, label);
  const rows: AccuracyRow[] = [];
  for (const length of opts.lengths) {
    const prompts = Array.from({ length: opts.prompts }, () => buildNeedlePrompt(corpus, length, rng, opts.needles));
    tick(`L=${length} dense`);
    const captured: CapturedAttention[] = [];
    const dense: PromptScore[] = [];
    const t0 = Date.now();
    for (const [i, p] of prompts.entries()) {
      desparsify(model);
      // Capture the first prompt's prefill Q/K for the setting search.
      model.onAttention = i === 0 ? (m, q, k) => { if (q.length > 1 && m.layer >= denseLayers) captured.push({ module: m.name, q, k }); } : undefined;
      dense.push(await scorePrompt(model, p.tokens, { answerLength: ANSWER, prefillChunk: opts.prefillChunk }));
      model.onAttention = undefined;
      done++;
      tick(`L=${length} dense`);
    }
    rows.push(summarize(length, { method: 'dense', label: 'dense', settings: {} }, prompts, dense, dense, 0, (Date.now() - t0) / 1000));
    opts.onRow?.(rows);
    for (const method of methods) {
      for (const v of variantsOf(method, targets, captured, length)) {
        tick(`L=${length} ${method} ${v.label}`);
        const t1 = Date.now();
        const { stats } = sparsify(model, sparseConfigFor(v, denseLayers));
        const scores: PromptScore[] = [];
        for (const [i, p] of prompts.entries()) {
          model.onPlan = i === 0 && opts.onPlan ? firstPrefillPlans((m, plan) => opts.onPlan!({ length, method, label: v.label }, m, plan), denseLayers) : undefined;
          scores.push(await scorePrompt(model, p.tokens, { answerLength: ANSWER, reference: dense[i].greedy, prefillChunk: opts.prefillChunk }));
          model.onPlan = undefined;
          done++;
          tick(`L=${length} ${method} ${v.label}`);
        }
        const sparse = stats.summary('prefill').filter((r) => r.module.startsWith('model.layers.') && Number(r.module.split('.')[2]) >= denseLayers);
        const kept = sparse.reduce((a, r) => a + r.keptBlocks, 0);
        const all = sparse.reduce((a, r) => a + r.totalBlocks, 0);
        rows.push(summarize(length, v, prompts, dense, scores, all === 0 ? 0 : 1 - kept / all, (Date.now() - t1) / 1000));
        opts.onRow?.(rows);
      }
    }
  }
  desparsify(model);
  return newReport(opts, rows);
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
  const { onProgress: _p, onRow: _r, onPlan: _m, ...options } = opts;
  return { date: new Date().toISOString(), machine: machineName(), model: '', options, rows };
}

function variantsOf(method: string, targets: number[], captured: CapturedAttention[], length: number): Variant[] {
  const out: Variant[] = [{ method, label: 'default', settings: {} }];
  const knob = sparseMethods.descriptor(method).knob;
  if (!knob) return out;
  for (const target of targets) {
    const r = searchSetting(method, knob, target, captured, length);
    out.push({ method, label: `~${Math.round(target * 100)}%`, settings: r.settings, plannedSparsity: r.plannedSparsity });
  }
  return out;
}

function summarize(length: number, v: Variant, prompts: NeedlePrompt[], dense: PromptScore[], s: PromptScore[], sparsity: number, seconds: number): AccuracyRow {
  const n = prompts.length;
  const mean = (f: (i: number) => number) => prompts.reduce((a, _, i) => a + f(i), 0) / n;
  const same = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.prototype.every.call(a, (x: number, i: number) => x === b[i]);
  return {
    length, method: v.method, label: v.label, settings: v.settings,
    ...(v.plannedSparsity !== undefined ? { plannedSparsity: v.plannedSparsity } : {}),
    sparsity,
    lossDelta: mean((i) => s[i].loss - dense[i].loss),
    agreement: mean((i) => (same(s[i].greedy, dense[i].greedy) ? 1 : 0)),
    logProbDelta: mean((i) => (s[i].referenceLogProb ?? s[i].greedyLogProb) - dense[i].greedyLogProb),
    needleAccuracy: mean((i) => (same(s[i].greedy, prompts[i].answer) ? 1 : 0)),
    prompts: n,
    seconds,
  };
}

export function machineName(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'unknown CPU'} (${availableParallelism()} threads visible), node ${process.version}, ${process.platform}`;
}

/** The printed table: one row per (length, method, setting). */
export function formatAccuracyTable(report: AccuracyReport): string {
  const f = (x: number, d = 3) => (x >= 0 ? ' ' : '') + x.toFixed(d);
  const rows = report.rows.map((r) => [
    String(r.length), r.method, r.label, settingsText(r.settings), r.sparsity.toFixed(3), f(r.lossDelta, 4),
    r.agreement.toFixed(2), f(r.logProbDelta, 3), r.needleAccuracy.toFixed(2), String(r.prompts), r.seconds.toFixed(0),
  ]);
  return formatTable(['L', 'method', 'setting', 'settings', 'sparsity', 'Δloss', 'agree', 'ΔlogP(ans)', 'needle', 'n', 's'], rows);
}

function settingsText(s: Record<string, unknown>): string {
  const text = JSON.stringify(s, (_k, v) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(3)) : v));
  return text === '{}' ? '(defaults)' : text.replace(/"/g, '');
}
