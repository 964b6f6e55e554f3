/**
 * The configurations `sparse-attn eval` compares with dense, per method. A variant is a whole
 * sparse-attention config (so anything a config can say, per-layer or per-head, can be a row):
 *   uniform   the method's defaults, and one setting of its knob for all heads per target sparsity,
 *             bisected on Q/K captured from the first prompt's dense pass (sparsity-search.ts)
 *   per-head  one knob value per query head per target (calibratePerHead's target mode on the
 *             same capture, `calibrationQueries` query rows spread over it; one grid for all targets)
 *   sla-proj  SLA/SageSLA at the uniform setting per target, with the linear branch's projection
 *             fitted in closed form on the capture (fitSlaProjection)
 * A family not in VARIANT_FAMILIES is refused by name before any work.
 */
import { UnsupportedError } from '../core/errors.js';
import type { SparseAttentionConfigJson } from '../config/sparse-config.js';
import type { SparseAttentionAttributeInput } from '../config/attribute-config.js';
import { sparseMethods } from '../methods/index.js';
import { type CallPlanner, type CapturedAttention, cpuCallPlanner, searchSettingWith } from './sparsity-search.js';
import { type CapturedHeads, knobGrid, perHeadConfig } from '../calibration/per-head.js';
import { type GridMeasurer, type HeadGridJob, type HeadGridPoint, headGridJobs, serialGridMeasurer } from '../calibration/per-head-grid.js';
import type { MethodKnob } from '../methods/descriptor.js';
import type { LinearWeights } from './checkpoint.js';
import { chooseForTarget, type GridPoint } from '../calibration/per-head-target.js';
import { fitSlaProjection } from '../calibration/sla-projection-fit.js';
import { slaProjectionConfig } from './sla-projection-capture.js';

export interface Variant {
  method: string;
  /** 'default', '~50%', 'per-head ~50%', ... */
  label: string;
  family: VariantFamily;
  /** The uniform settings shown in the table ({} for per-head: its values are in `config`). */
  settings: Record<string, unknown>;
  config: SparseAttentionConfigJson;
  /** Sparsity the setting planned on the captured calls, where it was searched for. */
  plannedSparsity?: number;
}

export type VariantFamily = 'uniform' | 'per-head' | 'per-head-out' | 'sla-proj' | 'config';

export interface VariantContext {
  method: string;
  length: number;
  targets: readonly number[];
  /** Prefill attention operands of the first prompt's dense pass, sparsified layers only. */
  captured: readonly CapturedAttention[];
  denseLayers: number;
  /**
   * Per-head calibration measures each head's output error against dense on the CPU, which at 8K
   * costs far more than planning: it runs on this many query rows of each captured call (calibrationCalls)
   * (all keys). Default 1024; 0 = every row.
   */
  calibrationQueries?: number;
  /** How the knob searches plan the captured calls (default the CPU's planBlockMask). */
  planner?: CallPlanner;
  /** How per-head calibration measures its heads (default one after the other on this thread). */
  measureGrid?: GridMeasurer;
  /** Settings every variant of the method shares (e.g. SLA's BLKQ); the knob is searched on top of them. */
  base?: Record<string, unknown>;
}

/** A family's builder: the variants of one method, or [] where the family does not apply to it. */
export type VariantBuilder = (ctx: VariantContext) => Variant[] | Promise<Variant[]>;

/** Builders of the families this build has. */
export const VARIANT_FAMILIES: Partial<Record<VariantFamily, VariantBuilder>> = {
  uniform: uniformVariants,
  'per-head': perHeadVariants,
  'per-head-out': perHeadOutVariants,
  'sla-proj': slaProjectionVariants,
};

/** Families a caller may ask for by name. */
export const FAMILY_NAMES: readonly VariantFamily[] = ['uniform', 'per-head', 'per-head-out', 'sla-proj'];

export function checkFamilies(families: readonly string[]): VariantFamily[] {
  for (const f of families) {
    if (!(FAMILY_NAMES as readonly string[]).includes(f)) throw new UnsupportedError(`variant family "${f}": known are ${FAMILY_NAMES.join(', ')}`);
    if (!VARIANT_FAMILIES[f as VariantFamily]) {
      throw new UnsupportedError(`variant family "${f}" needs a library that is not in this build (${f.startsWith('per-head') ? 'calibratePerHead, src/calibration' : 'fitSlaProjection'}); available: ${Object.keys(VARIANT_FAMILIES).join(', ')}`);
    }
  }
  return families as VariantFamily[];
}

/** A config with `entry` on every attention module, the first `denseLayers` layers left dense. */
export function configFor(entry: SparseAttentionAttributeInput, denseLayers: number): SparseAttentionConfigJson {
  return withDenseLayers({ sparse_cfg: { '*self_attn*': entry }, export_format: null }, denseLayers);
}

/**
 * `config` with the first `denseLayers` layers disabled and everything else off by default: the
 * exceptions come after its own entries (a later matching entry wins, resolve.ts).
 */
export function withDenseLayers(config: SparseAttentionConfigJson, denseLayers: number): SparseAttentionConfigJson {
  const { default: dflt, ...rest } = config.sparse_cfg;
  const cfg: SparseAttentionConfigJson = { ...config, sparse_cfg: { ...rest } };
  for (let l = 0; l < denseLayers; l++) cfg.sparse_cfg[`model.layers.${l}.self_attn`] = { enable: false };
  cfg.sparse_cfg.default = dflt ?? { enable: false };
  return cfg;
}

export async function uniformVariants(ctx: VariantContext): Promise<Variant[]> {
  const { method, denseLayers } = ctx;
  const base = ctx.base ?? {};
  const out: Variant[] = [{ method, label: 'default', family: 'uniform', settings: base, config: configFor({ method, ...base }, denseLayers) }];
  const knob = sparseMethods.descriptor(method).knob;
  if (!knob) return out;
  for (const target of ctx.targets) {
    const r = await searchSettingWith(ctx.planner ?? cpuCallPlanner, method, knob, target, ctx.captured, ctx.length, undefined, base);
    out.push({
      method, label: `~${Math.round(target * 100)}%`, family: 'uniform', settings: r.settings,
      config: configFor({ method, ...r.settings }, denseLayers), plannedSparsity: r.plannedSparsity,
    });
  }
  return out;
}

/**
 * Per target, one knob value per query head: calibratePerHead's target mode (calibration/per-head.ts)
 * on the capture, with each head's grid of knob values measured once for all targets (the
 * measurement, sparse vs dense attention per head on the CPU, is the cost; the choice per target is
 * cheap).
 */
export function perHeadVariants(ctx: VariantContext): Promise<Variant[]> {
  return perHeadFamily(ctx, 'per-head');
}

/**
 * As per-head, with each head's error weighted by how much of it reaches the residual stream: its
 * absolute output error (relative error × the norm of its dense output) times the norm of its
 * columns of the output projection, over the mean of that weight. Relative errors count a head
 * whose output barely moves the model as much as one that carries it.
 */
export function perHeadOutVariants(ctx: VariantContext): Promise<Variant[]> {
  return perHeadFamily(ctx, 'per-head-out');
}

// Both per-head families of one context share one measurement of the heads' grids (the cost).
const measuredGrids = new WeakMap<VariantContext, Promise<{ jobs: HeadGridJob[]; points: HeadGridPoint[][] }>>();

function measureGrids(ctx: VariantContext, knob: MethodKnob) {
  let m = measuredGrids.get(ctx);
  if (!m) {
    const captured = trimmed(ctx);
    const keyLength = Math.max(...captured.map((c) => c.k.length));
    const jobs = headGridJobs(captured);
    const grid = knobGrid(knob, keyLength, 12);
    const measure = ctx.measureGrid ?? serialGridMeasurer;
    m = measure({ method: ctx.method, base: ctx.base ?? {}, run: { causal: true }, grid }, jobs).then((points) => ({ jobs, points }));
    measuredGrids.set(ctx, m);
  }
  return m;
}

/** Per query head, the Frobenius norm of its columns of the output projection ([out, heads·D] row-major). */
export function headOutputNorms(o: Pick<LinearWeights, 'weight' | 'outFeatures' | 'inFeatures'>, heads: number): number[] {
  const D = o.inFeatures / heads;
  const sums = new Array<number>(heads).fill(0);
  for (let r = 0; r < o.outFeatures; r++) {
    for (let c = 0; c < o.inFeatures; c++) sums[Math.floor(c / D)] += o.weight[r * o.inFeatures + c] ** 2;
  }
  return sums.map(Math.sqrt);
}

/** Each job's points with errors scaled by the head's weight in the residual stream (mean weight 1). */
export function outputWeightedPoints(jobs: readonly HeadGridJob[], points: readonly HeadGridPoint[][], captured: readonly CapturedAttention[]): GridPoint[][] {
  const norms = new Map(captured.map((c) => [c.module, c.headOutNorms]));
  const raw = jobs.map((job, i) => {
    const out = norms.get(job.module)?.[job.head];
    const dense = points[i][0]?.denseNorm;
    if (out === undefined || dense === undefined) throw new UnsupportedError(`per-head-out needs the output projection's norms and the dense output norm of ${job.module} head ${job.head}`);
    return out * dense;
  });
  const mean = raw.reduce((a, b) => a + b, 0) / Math.max(raw.length, 1);
  return points.map((pts, i) => pts.map((p) => ({ ...p, error: mean > 0 ? (p.error * raw[i]) / mean : p.error })));
}

async function perHeadFamily(ctx: VariantContext, family: 'per-head' | 'per-head-out'): Promise<Variant[]> {
  const { method, denseLayers } = ctx;
  const knob = sparseMethods.descriptor(method).knob;
  if (!knob || ctx.targets.length === 0) return [];
  const { jobs, points: measured } = await measureGrids(ctx, knob);
  const points: GridPoint[][] = family === 'per-head-out' ? outputWeightedPoints(jobs, measured, ctx.captured) : measured;
  return ctx.targets.map((target) => {
    const choice = chooseForTarget(points, target);
    // The config and the planned sparsity take the measured points (errors as measured).
    const heads = jobs.map((job, i) => ({ module: job.module, head: job.head, ...measured[i][choice.indices[i]] }));
    const total = heads.reduce((a, h) => a + h.validBlocks, 0);
    const planned = total === 0 ? 0 : heads.reduce((a, h) => a + h.sparsity * h.validBlocks, 0) / total;
    return {
      method, label: `${family} ~${Math.round(target * 100)}%`, family, settings: ctx.base ?? {},
      config: withDenseLayers(perHeadConfig(method, ctx.base ?? {}, knob.setting, heads), denseLayers), plannedSparsity: planned,
    };
  });
}

/**
 * SLA and SageSLA only: per target, the uniform topkRatio found for it with the linear branch's
 * projection fitted in closed form (fitSlaProjection, ridge chosen by cross-validation) on the
 * capture's `calibrationQueries` query rows (calibrationCalls), one projection per module.
 */
export async function slaProjectionVariants(ctx: VariantContext): Promise<Variant[]> {
  const { method, denseLayers } = ctx;
  if (method !== 'sla' && method !== 'sage_sla') return [];
  const knob = sparseMethods.descriptor(method).knob!;
  const captured = trimmed(ctx);
  const out: Variant[] = [];
  for (const target of ctx.targets) {
    const r = await searchSettingWith(ctx.planner ?? cpuCallPlanner, method, knob, target, ctx.captured, ctx.length, undefined, ctx.base ?? {});
    const { projections } = fitSlaProjection(captured, r.settings, { method });
    const cfg = slaProjectionConfig(r.settings, projections, { method });
    out.push({
      method, label: `proj ~${Math.round(target * 100)}%`, family: 'sla-proj', settings: r.settings,
      config: withDenseLayers({ sparse_cfg: cfg.sparse_cfg, export_format: null }, denseLayers), plannedSparsity: r.plannedSparsity,
    });
  }
  return out;
}

/** The capture cut to `calibrationQueries` query rows per call (calibrationCalls), v required. */
function trimmed(ctx: VariantContext): CapturedHeads[] {
  return ctx.captured.flatMap((c) => {
    if (!c.v) throw new UnsupportedError('calibration needs the captured values (v) of the dense pass');
    return calibrationCalls({ module: c.module, q: c.q, k: c.k, v: c.v, promptRowsAfter: c.promptRowsAfter }, ctx.calibrationQueries ?? 1024);
  });
}

/**
 * About `rows` query rows of a causal call, as PIECES windows: window j is centred in the j-th
 * PIECES-th of the call's rows (a midpoint rule over the prompt) and attends to the keys up to its
 * end, as a prefill chunk would. Windows ending at the call's end over-weighted its last rows, which
 * see the most keys (and tri-shape's dense last queries): per-head settings chosen on them measured
 * denser than planned when the whole prompt ran (XAttention per-head ~80% 0.71 at 2K with the last
 * rows alone; per-head tri-shape planned every head at its smallest window). `rows` 0, or a call of
 * at most `rows` queries: the call as it is.
 */
export function calibrationCalls(c: CapturedHeads, rows: number, pieces = 4): CapturedHeads[] {
  const Lq = c.q.length;
  if (rows <= 0 || Lq <= rows) return [c];
  const offset = c.k.length - Lq;
  const per = Math.ceil(rows / pieces);
  const out: CapturedHeads[] = [];
  for (let j = 1; j <= pieces; j++) {
    const centre = ((j - 0.5) * Lq) / pieces;
    const start = Math.max(0, Math.min(Lq - per, Math.round(centre - per / 2)));
    const end = start + per;
    out.push({
      module: c.module, q: c.q.sliceLength(start, end), k: c.k.sliceLength(0, offset + end), v: c.v.sliceLength(0, offset + end), rowsAfter: (c.rowsAfter ?? 0) + Lq - end,
      promptRowsAfter: c.promptRowsAfter,
    });
  }
  return out;
}

/** Variants of `method` from each family asked for, in order. */
export async function variantsFor(ctx: VariantContext, families: readonly VariantFamily[]): Promise<Variant[]> {
  const out: Variant[] = [];
  for (const f of families) out.push(...(await VARIANT_FAMILIES[f]!(ctx)));
  return out;
}
