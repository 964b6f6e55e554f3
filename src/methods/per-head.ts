/**
 * One method with a different knob value per query head (a `per_head` config entry).
 *
 * Heads differ (attention sinks, local heads, retrieval heads), so one knob per module is tuned for
 * its worst head. A PerHeadMethod holds one instance of the inner method per query head, each built
 * from the shared settings with that head's value of the knob, and runs each on its head alone:
 * query head h reads KV head floor(h·Hkv/H) (the GQA rule of computeScores). Results are assembled
 * into one BlockMask / token mask / output over all heads, so backends and callers see an ordinary
 * method. The number of query heads is known only at call time, so the values' length is checked
 * there.
 *
 * Heads whose inner method plans different token rules (tri-shape with different windows) give a
 * BlockMask with one rule per head; every kernel applies head h's rule to head h.
 */
import { BlockMask } from '../core/block-mask.js';
import { InvalidArgumentError, UnsupportedError } from '../core/errors.js';
import type { Scores } from '../core/scores.js';
import type { SparsityStats } from '../core/stats.js';
import { HeadTensor } from '../core/tensor.js';
import type { MethodDescriptor } from './descriptor.js';
import { sparseMethods } from './index.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod, SparsityResult, ThresholdInfo } from './method.js';
import { maskScores } from './method.js';
import type { MethodRegistry } from './registry.js';

export interface PerHeadOptions {
  /** Where the method is registered; default: the built-in registry. */
  registry?: MethodRegistry;
  /** Names the config entry in errors, e.g. 'sparse_cfg["model.layers.2.self_attn"].per_head'. */
  label?: string;
}

/**
 * The settings one head runs with: the shared ones with the knob turned to `value`. A knob whose
 * mapping gives a per-phase object (flash_skip_softmax: `threshold: {prefill: value, decode: 1e-4}`)
 * turns the prefill value only: the decode value stays the one the shared settings give, in either
 * of ModelOpt's forms (`threshold` as a number or {prefill, decode}, or `thresholds` lists, which
 * the turned `threshold` then replaces, as an entry may give only one of the two).
 */
export function headSettings(descriptor: MethodDescriptor, shared: Record<string, unknown>, setting: string, value: number): Record<string, unknown> {
  const knob = descriptor.knob;
  // The knob's own mapping applies only to its own setting.
  const turned = knob?.settings && knob.setting === setting ? knob.settings(value) : { [setting]: value };
  const out = { ...shared, ...turned };
  for (const [key, v] of Object.entries(turned)) {
    if (!isPhasePair(v)) continue;
    const decode = sharedDecode(shared, key);
    if (decode !== undefined) out[key] = { ...v, decode };
    delete out[`${key}s`];
  }
  return out;
}

function isPhasePair(v: unknown): v is { prefill: number; decode: number } {
  return typeof v === 'object' && v !== null && 'prefill' in v && 'decode' in v;
}

/** The decode value shared settings give `key`: `key` itself (number or pair), else the first of `keys`' decode (or prefill) list. */
function sharedDecode(shared: Record<string, unknown>, key: string): number | undefined {
  const own = shared[key];
  if (typeof own === 'number') return own;
  if (isPhasePair(own) && typeof own.decode === 'number') return own.decode;
  const lists = shared[`${key}s`] as { prefill?: unknown[]; decode?: unknown[] } | undefined;
  const first = lists?.decode?.[0] ?? lists?.prefill?.[0];
  return typeof first === 'number' ? first : undefined;
}

export class PerHeadMethod implements SparseAttentionMethod {
  readonly name: string;
  readonly version: string;
  /** The knob setting that differs per head. */
  readonly setting: string;
  /** One value per query head. */
  readonly values: readonly number[];
  /** The inner method, one instance per query head. */
  readonly heads: readonly SparseAttentionMethod[];
  readonly defaultCausal?: boolean;
  readonly attention?: (q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions) => { output: HeadTensor; plan: BlockPlan };
  private readonly label: string;

  /**
   * @param method a registered method name (newest version) or its descriptor
   * @param shared the settings every head shares (without the per-head setting's own mapping)
   * @param perHead `{ setting: values }`: exactly one setting, the method's knob
   */
  constructor(method: string | MethodDescriptor, shared: Record<string, unknown>, perHead: Record<string, readonly number[]>, opts: PerHeadOptions = {}) {
    const descriptor = typeof method === 'string' ? (opts.registry ?? sparseMethods).descriptor(method) : method;
    this.label = opts.label ?? `${descriptor.name}.per_head`;
    const keys = perHead !== null && typeof perHead === 'object' && !Array.isArray(perHead) ? Object.keys(perHead) : [];
    const knob = descriptor.knob?.setting;
    if (keys.length !== 1) {
      throw new InvalidArgumentError(this.label, perHead, `an object with one setting of per-head values${knob ? ` ({ "${knob}": [...] })` : ''}`);
    }
    const setting = keys[0];
    if (!knob) throw new UnsupportedError(`${this.label}: method "${descriptor.name}" has no knob setting, so nothing can differ per head`);
    if (setting !== knob) throw new InvalidArgumentError(`${this.label} setting "${setting}"`, setting, `the knob of method "${descriptor.name}" ("${knob}")`);
    const values = perHead[setting];
    if (!Array.isArray(values) || values.length === 0) throw new InvalidArgumentError(`${this.label}.${setting}`, values, 'a non-empty array of numbers, one per query head');
    values.forEach((v, i) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidArgumentError(`${this.label}.${setting}[${i}]`, v, 'a finite number');
    });
    if (shared.group_consensus === true) {
      throw new UnsupportedError(`${this.label}: group_consensus joins the heads of a GQA group into one mask; per-head values would be overwritten (set group_consensus false)`);
    }
    // Each head's settings go through the method's own schema (its constructor).
    this.heads = values.map((v, i) => {
      try {
        return new descriptor.cls(headSettings(descriptor, shared, setting, v));
      } catch (err) {
        if (err instanceof Error) err.message = `${this.label}.${setting}[${i}] = ${v}: ${err.message}`;
        throw err;
      }
    });
    this.setting = setting;
    this.values = Object.freeze([...values]);
    this.name = this.heads[0].name;
    this.version = this.heads[0].version;
    this.defaultCausal = this.heads[0].defaultCausal;
    if (typeof this.heads[0].attention === 'function') this.attention = (q, k, v, o) => this.perHeadAttention(q, k, v, o);
  }

  getThresholdInfo(): ThresholdInfo {
    return { ...this.heads[0].getThresholdInfo(), per_head: { [this.setting]: [...this.values] } };
  }

  planBlockMask(q: HeadTensor, k: HeadTensor, opts: PlanOptions): BlockPlan {
    this.checkHeads(q.heads);
    return this.assemblePlans(this.heads.map((m, h) => m.planBlockMask(headSlice(q, h), headSlice(k, kvHead(h, q.heads, k.heads)), opts)), q.batch);
  }

  calculateSparsity(scores: Scores): SparsityResult {
    this.checkHeads(scores.heads);
    const results = this.heads.map((m, h) => m.calculateSparsity(scoresSlice(scores, h)));
    return { mask: assembleHeads(results.map((r) => r.mask), scores.batch, scores.queryLength * scores.keyLength), stats: mergeStats(this.name, results.map((r) => r.stats)) };
  }

  applySparsity(scores: Scores, mask?: Uint8Array): Scores {
    return maskScores(scores, mask ?? this.calculateSparsity(scores).mask);
  }

  private perHeadAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions): { output: HeadTensor; plan: BlockPlan } {
    this.checkHeads(q.heads);
    const runs = this.heads.map((m, h) => {
      const kh = kvHead(h, q.heads, k.heads);
      return m.attention!(headSlice(q, h), headSlice(k, kh), headSlice(v, kh), opts);
    });
    const first = runs[0].output;
    const rows = first.length * first.headDim;
    const data = assembleHeads(runs.map((r) => r.output.toDType('f32').toLayout('BHLD').data as Float32Array), q.batch, rows);
    const output = new HeadTensor({ batch: q.batch, heads: q.heads, length: first.length, headDim: first.headDim }, data, 'BHLD').toLayout(q.layout);
    return { output, plan: this.assemblePlans(runs.map((r) => r.plan), q.batch) };
  }

  private checkHeads(heads: number): void {
    if (heads !== this.values.length) {
      throw new InvalidArgumentError(`${this.label}.${this.setting}.length`, this.values.length, `the module's number of query heads (${heads})`);
    }
  }

  private assemblePlans(plans: BlockPlan[], batch: number): BlockPlan {
    const masks = plans.map((p) => p.mask);
    const d = masks[0].dims;
    masks.forEach((m, h) => {
      const md = m.dims;
      if (md.blockRows !== d.blockRows || md.blockCols !== d.blockCols || md.causal !== d.causal || md.queryLength !== d.queryLength || md.keyLength !== d.keyLength) {
        throw new UnsupportedError(`${this.label}: head ${h} planned blocks ${md.blockRows}×${md.blockCols} (causal ${md.causal}), head 0 ${d.blockRows}×${d.blockCols} (causal ${d.causal}): one block mask needs one tiling`);
      }
    });
    const heads = masks.length;
    const nQB = masks[0].numQueryBlocks;
    const rowPtr = new Int32Array(batch * heads * nQB + 1);
    const cols: number[] = [];
    let r = 0;
    for (let b = 0; b < batch; b++)
      for (let h = 0; h < heads; h++)
        for (let qb = 0; qb < nQB; qb++) {
          for (const kb of masks[h].keptBlocks(b, 0, qb)) cols.push(kb);
          rowPtr[++r] = cols.length;
        }
    // Each head keeps its own token rule (tri-shape windows per head); the mask collapses equal ones.
    const mask = new BlockMask({ ...d, batch, heads }, rowPtr, Int32Array.from(cols), masks.map((m) => m.tokenRuleFor(0)));
    const plan: BlockPlan = { mask, stats: mergeStats(this.name, plans.map((p) => p.stats)) };
    // Block scores are [B, 1, nQB, nKB] per head when the method gives them on the mask's own blocks.
    const per = nQB * masks[0].numKeyBlocks;
    if (plans.every((p) => p.blockScores?.length === batch * per)) plan.blockScores = assembleHeads(plans.map((p) => p.blockScores!), batch, per);
    return plan;
  }
}

/** The values of `setting` per query head when `method` runs per-head values of it; undefined otherwise. */
export function perHeadValues(method: SparseAttentionMethod, setting: string): number[] | undefined {
  return method instanceof PerHeadMethod && method.setting === setting ? [...method.values] : undefined;
}

/** The KV head query head h of H reads when there are Hkv KV heads (GQA). */
export function kvHead(h: number, heads: number, kvHeads: number): number {
  return Math.floor((h * kvHeads) / heads);
}

/** Head h of t as a one-head tensor, same dtype and layout (a copy). */
export function headSlice(t: HeadTensor, h: number): HeadTensor {
  const out = HeadTensor.zeros({ ...t.shape, heads: 1 }, t.layout, t.dtype);
  const D = t.headDim;
  for (let b = 0; b < t.batch; b++)
    for (let l = 0; l < t.length; l++) {
      const src = t.offset(b, h, l);
      out.data.set(t.data.subarray(src, src + D), out.offset(b, 0, l));
    }
  return out;
}

function scoresSlice(s: Scores, h: number): Scores {
  const n = s.queryLength * s.keyLength;
  const data = new Float32Array(s.batch * n);
  for (let b = 0; b < s.batch; b++) data.set(s.data.subarray((b * s.heads + h) * n, (b * s.heads + h + 1) * n), b * n);
  return { ...s, heads: 1, data };
}

/** [B, 1, per] arrays of each head into one [B, H, per] array. */
function assembleHeads<T extends Float32Array | Uint8Array>(parts: T[], batch: number, per: number): T {
  const heads = parts.length;
  const out = new (parts[0].constructor as new (n: number) => T)(batch * heads * per);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++) out.set(parts[h].subarray(b * per, (b + 1) * per), (b * heads + h) * per);
  return out;
}

/** Block counts summed over heads; each method-specific figure is its mean over heads weighted by valid blocks. */
export function mergeStats(method: string, stats: SparsityStats[]): SparsityStats {
  const totalBlocks = stats.reduce((a, s) => a + s.totalBlocks, 0);
  const keptBlocks = stats.reduce((a, s) => a + s.keptBlocks, 0);
  const out: SparsityStats = { method, phase: stats[0].phase, totalBlocks, keptBlocks, sparsity: totalBlocks === 0 ? 0 : 1 - keptBlocks / totalBlocks };
  const keys = new Set(stats.flatMap((s) => Object.keys(s.extra ?? {})));
  if (keys.size) {
    const extra: Record<string, number> = {};
    for (const key of keys) {
      let sum = 0;
      let weight = 0;
      for (const s of stats) {
        const x = s.extra?.[key];
        if (typeof x !== 'number') continue;
        const w = stats.length > 1 && totalBlocks > 0 ? s.totalBlocks : 1;
        sum += x * w;
        weight += w;
      }
      if (weight > 0) extra[key] = sum / weight;
    }
    out.extra = extra;
  }
  return out;
}
