/**
 * SLA's projection fitted in closed form instead of trained: the reference learns proj_l (a zero-
 * initialised nn.Linear(D, D)) by fine-tuning, so an untrained SLA is its sparse part alone. Given
 * the attention inputs a model's layers see, the projection that best mends the sparse part is a
 * least-squares problem per layer (or per head):
 *
 *   W, b = argmin Σ_rows ‖Ol·Wᵀ + b − (O_dense − Os)‖² + λ‖W‖²,   λ = α·tr(OlᵀOl)/Dv
 *
 * with Os, Ol from the method's own parts() (same block map and causal setting as inference) and
 * O_dense from the CPU flash reference. The normal equations are (Dv+1)×(Dv+1) (the bias is an
 * appended column of ones, not penalised), accumulated in f64 and solved by Cholesky. Scaling λ by
 * the trace makes α independent of the activations' magnitude. α 'auto' picks from a grid by
 * cross-validation, then refits on all rows: with several calls per module each fold is whole calls
 * (on the fixture model a fit that predicts other rows of its own prompt well can still be far off
 * on another prompt), with one call folds are chunks of 64 consecutive rows.
 */
import { flashAttention } from '../backends/cpu/flash-attention.js';
import { InvalidArgumentError } from '../core/errors.js';
import { HeadTensor } from '../core/tensor.js';
import { createSparseMethod } from '../methods/index.js';
import { SlaMethod } from '../methods/sla/sla.js';

/** One attention call's operands, as LlamaModel.onAttention passes them (copies, not cache views). */
export interface CapturedSlaAttention {
  module: string;
  q: HeadTensor;
  k: HeadTensor;
  v: HeadTensor;
  /** Query rows of the call after these (a window of it, as in CapturedHeads); default 0. */
  rowsAfter?: number;
}

export interface SlaProjectionFitOptions {
  /** α of λ = α·tr(OlᵀOl)/Dv, or 'auto' (default): chosen on held-out rows from RIDGE_GRID. */
  ridge?: number | 'auto';
  /** One W per query head ([H, Dv, Dv]) instead of one per module (the reference's shape). */
  perHead?: boolean;
  /** 'sla' (default) or 'sage_sla': whose parts are fitted. */
  method?: string;
  /** Default true (the Llama runner's prefill). */
  causal?: boolean;
  /** Softmax scale; default 1/√D. */
  scale?: number;
}

/** Weights as `proj: { weight, bias, heads }` takes them (sla-projection.ts). */
export interface SlaProjectionWeights {
  /** [heads, Dv_out, Dv_in] row-major (nn.Linear.weight per head). */
  weight: Float32Array;
  /** [heads, Dv]. */
  bias: Float32Array;
  /** 1: shared by every head. */
  heads: number;
}

export interface SlaProjectionFitRow {
  module: string;
  rowsFit: number;
  /** Relative L2 error ‖O − O_dense‖/‖O_dense‖ over the fit rows with proj zero (O = Os). */
  residualBefore: number;
  /** The same with the fitted projection (on the rows it was fitted on). */
  residualAfter: number;
  /**
   * Cross-validated: each fold's rows predicted by the fit (at the chosen α) on the other folds
   * (null when a fold's complement is singular). With proj zero the error is residualBefore.
   */
  heldOutAfter: number | null;
  /** Folds: 'call' (several calls per module: calls round-robin into up to 5 folds) or 'rows' (chunks of 64 rows of one call). */
  heldOutBy: 'call' | 'rows';
  /** The α used (per head when perHead: the mean). */
  ridge: number;
}

export const RIDGE_GRID = [0, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100];
/** α when 'auto' finds every fold singular. */
export const DEFAULT_RIDGE = 1;
const CHUNK = 64;
const FOLDS = 5;

/** Σ xxᵀ, Σ xyᵀ, Σ|y|², Σ|dense|² over rows x = [Ol, 1], y = O_dense − Os. */
class Normal {
  readonly a: Float64Array;
  readonly b: Float64Array;
  yy = 0;
  dd = 0;
  rows = 0;
  constructor(readonly n: number, readonly m: number) {
    this.a = new Float64Array(n * n);
    this.b = new Float64Array(n * m);
  }

  add(ol: Float32Array, y: Float64Array, dense: Float32Array, o: number): void {
    const { n, m, a, b } = this;
    const D = n - 1;
    for (let i = 0; i < n; i++) {
      const xi = i < D ? ol[o + i] : 1;
      if (xi === 0) continue;
      // Upper triangle only; mirrored in solve.
      for (let j = i; j < n; j++) a[i * n + j] += xi * (j < D ? ol[o + j] : 1);
      for (let e = 0; e < m; e++) b[i * m + e] += xi * y[e];
    }
    for (let e = 0; e < m; e++) {
      this.yy += y[e] * y[e];
      this.dd += dense[o + e] * dense[o + e];
    }
    this.rows++;
  }

  plus(other: Normal, sign = 1): Normal {
    const s = new Normal(this.n, this.m);
    for (let x = 0; x < s.a.length; x++) s.a[x] = this.a[x] + sign * other.a[x];
    for (let x = 0; x < s.b.length; x++) s.b[x] = this.b[x] + sign * other.b[x];
    s.yy = this.yy + sign * other.yy;
    s.dd = this.dd + sign * other.dd;
    s.rows = this.rows + sign * other.rows;
    return s;
  }

  minus(other: Normal): Normal {
    return this.plus(other, -1);
  }

  /** Ridge solution X [n, m] for α, or null when the system is singular (α = 0 on rank-deficient rows). */
  solve(alpha: number): Float64Array | null {
    const { n, m } = this;
    const D = n - 1;
    let trace = 0;
    for (let i = 0; i < D; i++) trace += this.a[i * n + i];
    const lambda = alpha * trace / D;
    const l = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j <= i; j++) l[i * n + j] = this.a[j * n + i] + (i === j && i < D ? lambda : 0);
    if (!cholesky(l, n)) return null;
    const x = new Float64Array(this.b);
    choleskySolve(l, n, x, m);
    return x;
  }

  /** Σ‖y − xᵀX‖² over this set's rows: yy − 2 tr(XᵀB) + tr(XᵀAX). */
  sse(x: Float64Array): number {
    const { n, m, a, b } = this;
    let s = this.yy;
    const ax = new Float64Array(m);
    for (let i = 0; i < n; i++) {
      ax.fill(0);
      for (let j = 0; j < n; j++) {
        const aij = j >= i ? a[i * n + j] : a[j * n + i];
        if (aij === 0) continue;
        for (let e = 0; e < m; e++) ax[e] += aij * x[j * m + e];
      }
      for (let e = 0; e < m; e++) s += x[i * m + e] * (ax[e] - 2 * b[i * m + e]);
    }
    return Math.max(0, s);
  }
}

/** In place: lower triangle of l becomes L with LLᵀ = l. False when not positive definite. */
function cholesky(l: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    let d = l[j * n + j];
    for (let k = 0; k < j; k++) d -= l[j * n + k] * l[j * n + k];
    if (!(d > 1e-12 * Math.max(1, Math.abs(l[j * n + j])))) return false;
    const s = Math.sqrt(d);
    l[j * n + j] = s;
    for (let i = j + 1; i < n; i++) {
      let v = l[i * n + j];
      for (let k = 0; k < j; k++) v -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = v / s;
    }
  }
  return true;
}

/** Solves LLᵀX = B in place for B [n, m]. */
function choleskySolve(l: Float64Array, n: number, x: Float64Array, m: number): void {
  for (let i = 0; i < n; i++)
    for (let e = 0; e < m; e++) {
      let v = x[i * m + e];
      for (let k = 0; k < i; k++) v -= l[i * n + k] * x[k * m + e];
      x[i * m + e] = v / l[i * n + i];
    }
  for (let i = n - 1; i >= 0; i--)
    for (let e = 0; e < m; e++) {
      let v = x[i * m + e];
      for (let k = i + 1; k < n; k++) v -= l[k * n + i] * x[k * m + e];
      x[i * m + e] = v / l[i * n + i];
    }
}

/** A module's sums per [group][fold]; group = head when per head, else 0. */
interface ModuleSums { folds: Normal[][]; heads: number; Dv: number; calls: number; seen: number; /** Rows seen, over calls and heads. */ rows: number }

/** One call's parts and target, [B, H, Lq, Dv] f32 BHLD each (what fitSlaProjection computes per call). */
export interface SlaProjectionRows {
  module: string;
  sparse: Float32Array;
  linear: Float32Array;
  /** What Os + proj(Ol) should equal: dense attention. */
  target: Float32Array;
  heads: number;
  queryLength: number;
  valueDim: number;
}

/**
 * Fits one projection per module (or per module and head) over the captured calls.
 * `settings`: the SLA settings the projection will be used with (proj / projFile are ignored).
 */
export function fitSlaProjection(
  captured: readonly CapturedSlaAttention[], settings: Record<string, unknown>, opts: SlaProjectionFitOptions = {},
): { projections: Map<string, SlaProjectionWeights>; report: SlaProjectionFitRow[] } {
  if (!Array.isArray(captured) || captured.length === 0) throw new InvalidArgumentError('captured', captured, 'a non-empty array of { module, q, k, v }');
  const { proj: _p, projFile: _f, ...base } = settings;
  const methodName = opts.method ?? 'sla';
  const method = createSparseMethod(methodName, base);
  if (!(method instanceof SlaMethod)) throw new InvalidArgumentError('method', methodName, 'an SLA method ("sla" or "sage_sla")');
  const call = { causal: opts.causal ?? true, scale: opts.scale };
  checkRidge(opts.ridge);
  const rows = captured.map((c, i) => {
    if (typeof c?.module !== 'string' || c.module.length === 0) throw new InvalidArgumentError(`captured[${i}].module`, c?.module, 'a module name');
    for (const t of ['q', 'k', 'v'] as const) {
      if (!(c[t] instanceof HeadTensor)) throw new InvalidArgumentError(`captured[${i}].${t}`, c[t], 'a HeadTensor');
    }
    const { problem: p, sparse, linear } = method.parts(c.q, c.k, c.v, { ...call, rowsAfter: c.rowsAfter ?? 0 });
    const target = flashAttention(c.q, c.k, c.v, call).toLayout('BHLD').toFloat32Array();
    return { module: c.module, sparse, linear, target, heads: p.heads, queryLength: p.queryLength, valueDim: p.valueDim };
  });
  return solveSlaProjection(rows, opts);
}

function checkRidge(ridge: unknown): void {
  if (ridge === undefined || ridge === 'auto') return;
  if (!(typeof ridge === 'number' && Number.isFinite(ridge) && ridge >= 0)) throw new InvalidArgumentError('ridge', ridge, 'a number >= 0 or "auto"');
}

/** The least-squares step alone, on parts and targets already computed. */
export function solveSlaProjection(
  calls: readonly SlaProjectionRows[], opts: Pick<SlaProjectionFitOptions, 'ridge' | 'perHead'> = {},
): { projections: Map<string, SlaProjectionWeights>; report: SlaProjectionFitRow[] } {
  if (!Array.isArray(calls) || calls.length === 0) throw new InvalidArgumentError('calls', calls, 'a non-empty array of { module, sparse, linear, target, heads, queryLength, valueDim }');
  checkRidge(opts.ridge);
  const perModule = new Map<string, number>();
  for (const c of calls) perModule.set(c?.module, (perModule.get(c?.module) ?? 0) + 1);
  const sums = new Map<string, ModuleSums>();
  calls.forEach((c, i) => accumulate(sums, c, opts.perHead ?? false, perModule.get(c?.module) ?? 0, i));
  const projections = new Map<string, SlaProjectionWeights>();
  const report: SlaProjectionFitRow[] = [];
  for (const [module, s] of sums) {
    const { weights, row } = solveModule(s, opts.ridge ?? 'auto');
    projections.set(module, weights);
    report.push({ module, ...row });
  }
  return { projections, report };
}

function accumulate(sums: Map<string, ModuleSums>, c: SlaProjectionRows, perHead: boolean, calls: number, index: number): void {
  if (typeof c?.module !== 'string' || c.module.length === 0) throw new InvalidArgumentError(`calls[${index}].module`, c?.module, 'a module name');
  const { heads: H, queryLength: Lq, valueDim: Dv } = c;
  const n = c.target?.length;
  if (!(n > 0) || n % (H * Lq * Dv) !== 0 || c.sparse?.length !== n || c.linear?.length !== n) {
    throw new InvalidArgumentError(`calls[${index}] lengths`, `sparse ${c.sparse?.length}, linear ${c.linear?.length}, target ${n}`, `equal multiples of heads·queryLength·valueDim = ${H * Lq * Dv}`);
  }
  let s = sums.get(c.module);
  if (!s) {
    // Several calls: folds are calls (a projection must carry over to other prompts); one: chunks of rows.
    const F = calls >= 2 ? Math.min(FOLDS, calls) : FOLDS;
    s = { folds: Array.from({ length: perHead ? H : 1 }, () => Array.from({ length: F }, () => new Normal(Dv + 1, Dv))), heads: H, Dv, calls, seen: 0, rows: 0 };
    sums.set(c.module, s);
  }
  if (s.Dv !== Dv || (perHead && s.heads !== H)) {
    throw new InvalidArgumentError(`calls[${index}] (${c.module}) shape`, `${H} heads, Dv ${Dv}`, `${s.heads} heads, Dv ${s.Dv} as the module's earlier calls`);
  }
  const F = s.folds[0].length;
  const call = s.seen++;
  const y = new Float64Array(Dv);
  for (let o = 0, row = 0; o < n; o += Dv, row++, s.rows++) {
    const h = Math.floor(row / Lq) % H;
    for (let e = 0; e < Dv; e++) y[e] = c.target[o + e] - c.sparse[o + e];
    const fold = s.calls >= 2 ? call % F : Math.floor(s.rows / CHUNK) % F;
    s.folds[perHead ? h : 0][fold].add(c.linear, y, c.target, o);
  }
}

/** Σ over folds of the held-out SSE, each fold predicted by the fit on the others (Infinity if one is singular). */
function crossValidated(all: Normal, folds: Normal[], alpha: number): number {
  let sse = 0;
  for (const f of folds) {
    if (f.rows === 0) continue;
    const x = all.minus(f).solve(alpha);
    if (!x) return Infinity;
    sse += f.sse(x);
  }
  return sse;
}

function solveModule(s: ModuleSums, ridge: number | 'auto'): { weights: SlaProjectionWeights; row: Omit<SlaProjectionFitRow, 'module'> } {
  const { Dv } = s;
  const groups = s.folds.length;
  const weight = new Float32Array(groups * Dv * Dv);
  const bias = new Float32Array(groups * Dv);
  let yy = 0, dd = 0, sseAll = 0, rows = 0, cvSse = 0, alphaSum = 0;
  let cvOk = true;
  for (let g = 0; g < groups; g++) {
    const folds = s.folds[g];
    const all = folds.reduce((a, f) => a.plus(f));
    let alpha = ridge === 'auto' ? DEFAULT_RIDGE : ridge;
    let best = Infinity;
    for (const a of ridge === 'auto' ? RIDGE_GRID : [ridge]) {
      const e = crossValidated(all, folds, a);
      if (e < best) [best, alpha] = [e, a];
    }
    if (best === Infinity) cvOk = false;
    let x = all.solve(alpha);
    // Singular at α (too few rows, or α = 0): the smallest larger grid α that solves.
    for (const a of RIDGE_GRID) {
      if (x) break;
      if (a > alpha) [x, alpha] = [all.solve(a), a];
    }
    if (!x) throw new InvalidArgumentError('captured rows', all.rows, 'rows whose linear parts are not all zero (nothing to fit)');
    for (let r = 0; r < Dv; r++) {
      for (let c = 0; c < Dv; c++) weight[(g * Dv + r) * Dv + c] = x[c * Dv + r];
      bias[g * Dv + r] = x[Dv * Dv + r];
    }
    yy += all.yy; dd += all.dd; sseAll += all.sse(x); rows += all.rows; alphaSum += alpha; cvSse += best;
  }
  const rel = (e: number, d: number) => (d > 0 ? Math.sqrt(e / d) : 0);
  return {
    weights: { weight, bias, heads: groups },
    row: {
      rowsFit: rows, residualBefore: rel(yy, dd), residualAfter: rel(sseAll, dd),
      heldOutAfter: cvOk ? rel(cvSse, dd) : null, heldOutBy: s.calls >= 2 ? 'call' : 'rows',
      ridge: alphaSum / groups,
    },
  };
}

/** The JSON form a projFile (or inline `proj`) holds: plain arrays, `heads` only when per head. */
export function slaProjectionJson(w: SlaProjectionWeights): { weight: number[]; bias: number[]; heads?: number } {
  return { weight: Array.from(w.weight), bias: Array.from(w.bias), ...(w.heads > 1 ? { heads: w.heads } : {}) };
}
