/**
 * Per-head calibration: one knob value per (module, query head), chosen on captured attention inputs
 * by the error each head's output makes against dense attention.
 *
 *   const { config, heads } = calibratePerHead(captured, 'xattention', { budget: 0.05 });
 *   sparsify(model, config)   // entries carry per_head: { threshold: [...] } (methods/per-head.ts)
 *
 * A head's error is the relative L2 distance ‖O_sparse − O_dense‖ / ‖O_dense‖ over all captured rows
 * of that head, O_sparse from the method's own CPU path (its `attention` when it has one, so SLA's
 * linear part counts; else the CPU block-sparse kernel on its planned mask). Its sparsity is
 * 1 − kept / valid blocks over the same calls.
 *
 * Budget mode: per head, the sparsest knob value whose error stays ≤ budget (bisection between the
 * knob's dense and sparse ends; of the values measured, the sparsest within budget wins, so a knob
 * whose error is not quite monotone still never exceeds the budget).
 * Target mode: every head measured on a grid of knob values; per head the value minimising
 * err − λ·(w_h/w̄)·sparsity (w_h: the head's valid blocks), λ bisected until the block-weighted mean
 * sparsity meets the target; then heads step back to denser grid values, best error saved per
 * sparsity given up first, while the mean stays at or above the target.
 */
import { flashAttention } from '../backends/cpu/flash-attention.js';
import { InvalidArgumentError, SparseAttentionError } from '../core/errors.js';
import type { HeadTensor } from '../core/tensor.js';
import { sparseAttentionConfig, type SparseAttentionConfigJson } from '../config/sparse-config.js';
import type { MethodDescriptor, MethodKnob } from '../methods/descriptor.js';
import { sparseMethods } from '../methods/index.js';
import { headSettings, headSlice, kvHead } from '../methods/per-head.js';
import { knobMax } from './knobs.js';
import { chooseForTarget, type GridPoint } from './per-head-target.js';

/** One captured attention call of a module (q [B, H, Lq, D], k/v [B, Hkv, Lk, D]; any layout). */
export interface CapturedHeads {
  module: string;
  q: HeadTensor;
  k: HeadTensor;
  v: HeadTensor;
  /** Query rows of the captured call after these (a window of it: PlanOptions.rowsAfter); default 0. */
  rowsAfter?: number;
  /** The captured call was a chunk of a prompt with this many tokens after it (PlanOptions.promptRowsAfter). */
  promptRowsAfter?: number;
}

export interface PerHeadCalibrationOptions {
  /** Budget mode: largest relative L2 error of any head's output. Give budget or target. */
  budget?: number;
  /** Target mode: block sparsity in [0, 1) of all heads together (weighted by valid blocks). */
  target?: number;
  /** Settings every head shares (block sizes, stride...); the knob is set per head. */
  baseSettings?: Record<string, unknown>;
  /** Target mode: knob values on the grid (default 12, at least 2), spread as the knob says (log or linear). */
  grid?: number;
  /** Default true (the captured calls of a decoder). */
  causal?: boolean;
  /** Softmax scale; default 1/√D. */
  scale?: number;
  /** Budget mode: bisection steps after the two ends (default 12). */
  iterations?: number;
  /** Method version (default the newest). */
  version?: string;
  progress?: (message: string) => void;
}

export interface HeadCalibration {
  module: string;
  head: number;
  value: number;
  sparsity: number;
  error: number;
}

export interface PerHeadCalibrationResult {
  /** Per-module entries with per_head, plus "default": disabled; accepted by sparsify() and createModuleMethod. */
  config: SparseAttentionConfigJson;
  heads: HeadCalibration[];
  method: string;
  version: string;
  /** The knob setting calibrated per head. */
  setting: string;
  mode: 'budget' | 'target';
  /** Block sparsity of all heads together at the chosen values. */
  sparsity: number;
  /** Target mode: the knob values measured, and the λ the choice settled at. */
  grid?: number[];
  lambda?: number;
}

/** A head's measurement at one knob value. */
export interface HeadPoint {
  sparsity: number;
  error: number;
  /** Valid blocks over the head's calls (the weight of its sparsity in a mean). */
  validBlocks: number;
  /** L2 norm of the head's dense output over its calls (error × this = the absolute error). */
  denseNorm: number;
}

interface HeadCall {
  q: HeadTensor;
  k: HeadTensor;
  v: HeadTensor;
  rowsAfter: number;
  promptRowsAfter?: number;
  dense: Float32Array;
}

/** One (module, head) with its captured calls; measures (and remembers) the knob values asked for. */
export class HeadProblem {
  private readonly cache = new Map<number, HeadPoint>();
  private readonly calls: HeadCall[];
  private readonly denseNorm2: number;

  constructor(
    readonly module: string,
    readonly head: number,
    captured: readonly CapturedHeads[],
    private readonly descriptor: MethodDescriptor,
    private readonly base: Record<string, unknown>,
    private readonly opts: { causal: boolean; scale?: number },
  ) {
    this.calls = captured.map(({ q, k, v, rowsAfter, promptRowsAfter }) => {
      const kh = kvHead(head, q.heads, k.heads);
      const call = { q: headSlice(q, head), k: headSlice(k, kh), v: headSlice(v, kh), rowsAfter: rowsAfter ?? 0, promptRowsAfter };
      return { ...call, dense: f32(flashAttention(call.q, call.k, call.v, opts)) };
    });
    this.denseNorm2 = this.calls.reduce((a, c) => a + sumSquares(c.dense), 0);
  }

  at(value: number): HeadPoint {
    const known = this.cache.get(value);
    if (known) return known;
    const knob = this.descriptor.knob!;
    const method = new this.descriptor.cls(headSettings(this.descriptor, this.base, knob.setting, value));
    let diff2 = 0;
    let total = 0;
    let kept = 0;
    for (const c of this.calls) {
      const run = method.attention
        ? method.attention(c.q, c.k, c.v, { ...this.opts, rowsAfter: c.rowsAfter, promptRowsAfter: c.promptRowsAfter })
        : (() => {
          const plan = method.planBlockMask(c.q, c.k, { ...this.opts, rowsAfter: c.rowsAfter, promptRowsAfter: c.promptRowsAfter });
          return { plan, output: flashAttention(c.q, c.k, c.v, { ...this.opts, mask: plan.mask }) };
        })();
      const o = f32(run.output);
      for (let i = 0; i < o.length; i++) diff2 += (o[i] - c.dense[i]) ** 2;
      total += run.plan.stats.totalBlocks;
      kept += run.plan.stats.keptBlocks;
    }
    // A head whose dense output is zero has no relative error to make; any difference counts in full.
    const error = this.denseNorm2 > 0 ? Math.sqrt(diff2 / this.denseNorm2) : Math.sqrt(diff2);
    const point = { sparsity: total === 0 ? 0 : 1 - kept / total, error, validBlocks: total, denseNorm: Math.sqrt(this.denseNorm2) };
    this.cache.set(value, point);
    return point;
  }
}

/** The knob's two ends for inputs whose longest key length is `keyLength`: [dense end, sparse end]. */
export function knobEnds(knob: MethodKnob, keyLength: number): [number, number] {
  const max = knobMax(knob, keyLength);
  return knob.sparserWhenHigher ? [knob.min, max] : [max, knob.min];
}

/**
 * The sparsest value within `budget` found by bisection between the knob's dense and sparse ends.
 * When even the dense end exceeds the budget, the dense end (its error says by how much).
 */
export function searchBudget(at: (x: number) => { sparsity: number; error: number }, knob: MethodKnob, keyLength: number, budget: number, iterations: number): number {
  const round = (x: number) => (knob.integer ? Math.round(x) : x);
  let [ok, bad] = knobEnds(knob, keyLength);
  let best = ok;
  const consider = (x: number) => {
    const p = at(x);
    if (p.error <= budget && (p.sparsity > at(best).sparsity || (p.sparsity === at(best).sparsity && at(best).error > budget))) best = x;
    return p.error <= budget;
  };
  if (!consider(ok)) return ok;
  if (consider(bad)) return bad;
  for (let i = 0; i < iterations; i++) {
    const mid = round(knob.logScale ? Math.sqrt(ok * bad) : (ok + bad) / 2);
    if (mid === ok || mid === bad) break;
    if (consider(mid)) ok = mid;
    else bad = mid;
  }
  return best;
}

/** Knob values from the dense end to the sparse end, `n` of them (fewer when an integer knob repeats). */
export function knobGrid(knob: MethodKnob, keyLength: number, n: number): number[] {
  const [dense, sparse] = knobEnds(knob, keyLength);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = i / (n - 1);
    let x = knob.logScale ? dense * Math.pow(sparse / dense, t) : dense + t * (sparse - dense);
    if (i === n - 1) x = sparse;
    if (knob.integer) x = Math.round(x);
    if (!out.includes(x)) out.push(x);
  }
  return out;
}

export function calibratePerHead(captured: readonly CapturedHeads[], method: string, opts: PerHeadCalibrationOptions = {}): PerHeadCalibrationResult {
  const { descriptor, knob, mode } = checkRequest(captured, method, opts);
  const base = { ...(opts.baseSettings ?? {}) };
  const run = { causal: opts.causal ?? true, ...(opts.scale !== undefined ? { scale: opts.scale } : {}) };
  const byModule = new Map<string, CapturedHeads[]>();
  for (const c of captured) byModule.set(c.module, [...(byModule.get(c.module) ?? []), c]);
  const keyLength = Math.max(...captured.map((c) => c.k.length));
  const problems: HeadProblem[] = [];
  for (const [module, calls] of byModule) {
    for (let h = 0; h < calls[0].q.heads; h++) problems.push(new HeadProblem(module, h, calls, descriptor, base, run));
  }
  const say = opts.progress ?? (() => {});
  let values: number[];
  let grid: number[] | undefined;
  let lambda: number | undefined;
  if (mode === 'budget') {
    values = problems.map((p, i) => {
      say(`head ${i + 1}/${problems.length} (${p.module} head ${p.head})...`);
      return searchBudget((x) => p.at(x), knob, keyLength, opts.budget!, opts.iterations ?? 12);
    });
  } else {
    grid = knobGrid(knob, keyLength, opts.grid ?? 12);
    const points: GridPoint[][] = problems.map((p, i) => {
      say(`head ${i + 1}/${problems.length} (${p.module} head ${p.head}) on ${grid!.length} values...`);
      return grid!.map((value) => ({ value, ...p.at(value) }));
    });
    const choice = chooseForTarget(points, opts.target!);
    values = choice.indices.map((j) => grid![j]);
    lambda = choice.lambda;
  }
  const heads = problems.map((p, i) => ({ module: p.module, head: p.head, value: values[i], sparsity: p.at(values[i]).sparsity, error: p.at(values[i]).error }));
  const weights = problems.map((p, i) => p.at(values[i]).validBlocks);
  const W = weights.reduce((a, b) => a + b, 0);
  const sparsity = W === 0 ? 0 : heads.reduce((a, h, i) => a + h.sparsity * weights[i], 0) / W;
  const config = perHeadConfig(method, base, knob.setting, heads);
  const version = opts.version ?? sparseMethods.latest(method);
  return { config, heads, method, version, setting: knob.setting, mode, sparsity, ...(grid ? { grid, lambda } : {}) };
}

/** A config with one entry per module (its heads' values in order) and "default" disabled; validated. */
export function perHeadConfig(method: string, base: Record<string, unknown>, setting: string, heads: readonly HeadCalibration[]): SparseAttentionConfigJson {
  const sparse_cfg: SparseAttentionConfigJson['sparse_cfg'] = {};
  for (const module of new Set(heads.map((h) => h.module))) {
    const mine = heads.filter((h) => h.module === module).sort((a, b) => a.head - b.head);
    sparse_cfg[module] = { method, ...base, per_head: { [setting]: mine.map((h) => h.value) } };
  }
  sparse_cfg.default = { enable: false };
  const config = { sparse_cfg, export_format: null };
  sparseAttentionConfig(config);
  return config;
}

function checkRequest(captured: readonly CapturedHeads[], method: string, opts: PerHeadCalibrationOptions): { descriptor: MethodDescriptor; knob: MethodKnob; mode: 'budget' | 'target' } {
  if (!sparseMethods.has(method, opts.version)) {
    throw new SparseAttentionError(`cannot calibrate "${method}" per head: not registered (registered: ${sparseMethods.list().map((m) => m.name).join(', ')})`);
  }
  const descriptor = sparseMethods.descriptor(method, opts.version);
  const knob = descriptor.knob;
  if (!knob) {
    const withKnob = sparseMethods.descriptors().filter((d) => d.knob).map((d) => d.name);
    throw new SparseAttentionError(`method "${method}" has no calibration knob; calibratable: ${withKnob.join(', ')}`);
  }
  if ((opts.budget === undefined) === (opts.target === undefined)) {
    throw new InvalidArgumentError('budget / target', { budget: opts.budget, target: opts.target }, 'exactly one of them (budget: an error bound per head; target: a sparsity over all heads)');
  }
  if (opts.budget !== undefined && !(typeof opts.budget === 'number' && opts.budget > 0 && Number.isFinite(opts.budget))) {
    throw new InvalidArgumentError('budget', opts.budget, 'a relative L2 error > 0 (e.g. 0.05)');
  }
  if (opts.target !== undefined && !(typeof opts.target === 'number' && opts.target >= 0 && opts.target < 1)) {
    throw new InvalidArgumentError('target', opts.target, 'a sparsity in [0, 1)');
  }
  if (opts.grid !== undefined && !(Number.isInteger(opts.grid) && opts.grid >= 2)) throw new InvalidArgumentError('grid', opts.grid, 'an integer >= 2');
  if (opts.iterations !== undefined && !(Number.isInteger(opts.iterations) && opts.iterations >= 0)) throw new InvalidArgumentError('iterations', opts.iterations, 'an integer >= 0');
  if (!Array.isArray(captured) || captured.length === 0) throw new InvalidArgumentError('captured', captured, 'a non-empty array of { module, q, k, v }');
  const heads = new Map<string, number>();
  captured.forEach((c, i) => {
    if (typeof c?.module !== 'string' || c.module.length === 0) throw new InvalidArgumentError(`captured[${i}].module`, c?.module, 'a module name');
    for (const t of ['q', 'k', 'v'] as const) if (!c[t] || typeof c[t].row !== 'function') throw new InvalidArgumentError(`captured[${i}].${t}`, c[t], 'a HeadTensor');
    const h = heads.get(c.module) ?? c.q.heads;
    if (c.q.heads !== h) throw new InvalidArgumentError(`captured[${i}].q.heads`, c.q.heads, `${h}, as in the earlier calls of ${c.module}`);
    heads.set(c.module, h);
  });
  return { descriptor, knob, mode: opts.budget !== undefined ? 'budget' : 'target' };
}

function f32(t: HeadTensor): Float32Array {
  return t.toDType('f32').toLayout('BHLD').data as Float32Array;
}

function sumSquares(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return s;
}
