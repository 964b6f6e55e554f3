/**
 * `sparsify(model, config)`: applies a ModelOpt-shaped SparseAttentionConfig to a model's
 * attention modules by name (`model.layers.N.self_attn`), after ModelOpt's `mtsa.sparsify`:
 *
 *   { sparse_cfg: { "*self_attn*": { method: "xattention", threshold: 0.9 },
 *                   "model.layers.0.self_attn": { enable: false },      // exception: first layer dense
 *                   default: { enable: false } } }
 *
 * Which entry decides a module is the config layer's rule (src/config/resolve.ts: "default" first,
 * then the last matching pattern wins, wholesale). Enabled modules get the entry's method built
 * with its settings; disabled ones run dense. Every attention call's statistics go to a
 * StatsAggregator keyed by module name, printable with `stats.table()`.
 *
 * When the config asks for calibration (`sparse_cfg.calibration`, or an entry's `calibration`),
 * `sparsify(model, config, { forwardLoop })` runs the loop once with the attention inputs captured
 * and calibrates the enabled modules (sparsify-calibrate.ts), as ModelOpt's sparsify does; it then
 * returns a Promise. Afterwards `enableSparseAttention` / `disableSparseAttention` switch modules by
 * wildcard and `sparseAttentionSummary` reports them, as ModelOpt's functions of those names.
 */
import type { AttentionBackend } from '../backends/backend.js';
import { cpuBackend } from '../backends/cpu/index.js';
import type { BackendName } from '../backends/backend.js';
import { compileGlob } from '../config/glob.js';
import { createModuleMethod, type ResolvedModuleConfig, resolveModuleConfig } from '../config/resolve.js';
import { calibrationRequest, type SparseAttentionConfig, type SparseAttentionConfigInput, sparseAttentionConfig } from '../config/sparse-config.js';
import { InvalidArgumentError, UnsupportedError } from '../core/errors.js';
import { StatsAggregator } from '../core/stats.js';
import { DenseMethod } from '../methods/dense/dense.js';
import { sparseMethods } from '../methods/index.js';
import type { SparseAttentionMethod } from '../methods/method.js';
import type { AttentionModule, LlamaModel } from './llama.js';
import { calibrateSparsified, type ForwardLoop, type SparsifyCalibration } from './sparsify-calibrate.js';

export type { ForwardLoop, SparsifyCalibration };

export interface SparsifyOptions {
  /** Backends by config name; 'cpu' (ModelOpt's 'pytorch') is the CPU reference backend. */
  backends?: Partial<Record<BackendName, AttentionBackend>>;
  /** Runs calibration prompts through the model; required when the config asks for calibration. */
  forwardLoop?: ForwardLoop;
}

export interface SparsifiedModule {
  name: string;
  enabled: boolean;
  method: string;
  backend: string;
  /** The config entry that decided this module (null: none matched, so dense). */
  matchedBy: string | null;
  settings: Record<string, unknown>;
  /** The entry's per-head knob values ({ setting: one value per query head }), when it has them. */
  perHead?: Record<string, number[]>;
}

export interface SparsifyResult {
  modules: SparsifiedModule[];
  stats: StatsAggregator;
  /** The calibration, when the config asked for one. */
  calibration?: SparsifyCalibration;
}

/** Per module: how the config resolved it, and its sparse method while disabled by wildcard. */
interface ModuleState {
  resolved: ResolvedModuleConfig;
  sparse: SparseAttentionMethod | null;
  enabled: boolean;
  /** The calibration's target_sparse_ratio as written, once calibrated (what the HF export records). */
  targetSparseRatio?: Partial<Record<'prefill' | 'decode', number>>;
}
const STATE = new WeakMap<AttentionModule, ModuleState>();

export function sparsify(model: LlamaModel, config: SparseAttentionConfigInput | SparseAttentionConfig, opts: SparsifyOptions & { forwardLoop: ForwardLoop }): Promise<SparsifyResult>;
export function sparsify(model: LlamaModel, config: SparseAttentionConfigInput | SparseAttentionConfig, opts?: SparsifyOptions): SparsifyResult;
export function sparsify(model: LlamaModel, config: SparseAttentionConfigInput | SparseAttentionConfig, opts: SparsifyOptions = {}): SparsifyResult | Promise<SparsifyResult> {
  const cfg = sparseAttentionConfig(config as SparseAttentionConfigInput);
  const backends: Partial<Record<BackendName, AttentionBackend>> = { cpu: cpuBackend, ...opts.backends };
  const modules: SparsifiedModule[] = [];
  for (const module of model.attention) {
    const resolved = resolveModuleConfig(cfg, module.name);
    const backendName = resolved.attributes?.backend ?? 'cpu';
    const backend = backends[backendName];
    if (!backend) {
      throw new UnsupportedError(`${module.name}: backend "${backendName}" was asked for by sparse_cfg[${resolved.matchedBy}]; pass it in sparsify's options.backends`);
    }
    const method = createModuleMethod(resolved);
    module.method = method ?? new DenseMethod(pickBlockSizes(resolved.settings));
    module.backend = backend;
    STATE.set(module, { resolved, sparse: method, enabled: method !== null });
    modules.push({
      name: module.name, enabled: resolved.enable, method: method ? resolved.attributes!.method : 'dense',
      backend: backendName, matchedBy: resolved.matchedBy, settings: method ? resolved.settings : {},
      ...(method && resolved.attributes?.per_head ? { perHead: resolved.attributes.per_head as Record<string, number[]> } : {}),
    });
  }
  const stats = new StatsAggregator();
  model.stats = stats;
  const result: SparsifyResult = { modules, stats };
  const request = calibrationRequest(cfg);
  if (opts.forwardLoop) {
    if (!request) return Promise.resolve(result);
    const enabled = model.attention.filter((m) => STATE.get(m)!.enabled).map((module) => ({ module, resolved: STATE.get(module)!.resolved }));
    // One calibrated value per method would replace the per-head values: refuse rather than drop them.
    const perHead = enabled.filter((m) => m.resolved.attributes?.per_head !== undefined).map((m) => m.module.name);
    if (perHead.length) {
      throw new UnsupportedError(`sparsify: the config asks for calibration, which sets one value per method, and ${perHead.join(', ')} carr${perHead.length > 1 ? 'y' : 'ies'} per_head values it would replace; calibrate per head with calibratePerHead, or leave per_head or the calibration request out`);
    }
    return calibrateSparsified(model, enabled, request, opts.forwardLoop, (module, method, settings) => {
      module.method = method;
      Object.assign(STATE.get(module)!, { sparse: method, targetSparseRatio: { ...request.target_sparse_ratio } });
      modules.find((m) => m.name === module.name)!.settings = settings;
    }).then((calibration) => ({ ...result, calibration }));
  }
  if (request) {
    throw new InvalidArgumentError('sparsify options.forwardLoop', undefined,
      'a function that runs calibration prompts through the model: the config asks for calibration (sparse_cfg.calibration), and no RULER generator is built in');
  }
  return result;
}

/** Turns sparse attention off (dense) for the modules whose name matches the glob or predicate. */
export function disableSparseAttention(model: LlamaModel, pattern: string | ((name: string) => boolean)): string[] {
  return switchModules(model, pattern, false);
}

/** Turns it back on: the module's method, or (never enabled) the method its config entry names. */
export function enableSparseAttention(model: LlamaModel, pattern: string | ((name: string) => boolean)): string[] {
  return switchModules(model, pattern, true);
}

function switchModules(model: LlamaModel, pattern: string | ((name: string) => boolean), on: boolean): string[] {
  const match = typeof pattern === 'string' ? compileGlob(pattern) : pattern;
  const switched: string[] = [];
  for (const module of model.attention) {
    const st = STATE.get(module);
    if (!st || !match(module.name)) continue;
    if (on && !st.sparse) st.sparse = methodForEnable(st.resolved);
    module.method = on ? st.sparse! : new DenseMethod(pickBlockSizes(st.resolved.settings));
    st.enabled = on;
    switched.push(module.name);
  }
  return switched;
}

/** A module its config left disabled runs, when enabled, the method and settings of its deciding entry. */
function methodForEnable(r: ResolvedModuleConfig): SparseAttentionMethod {
  if (r.attributes?.per_head !== undefined) return createModuleMethod({ ...r, enable: true })!;
  const name = r.attributes?.method ?? 'flash_skip_softmax';
  return new (sparseMethods.get(name))(r.attributes ? r.settings : {});
}

/**
 * ModelOpt's print_sparse_attention_summary as text: enabled modules out of those sparsify
 * configured, then one line per (method, threshold) group with its layer count.
 */
export function sparseAttentionSummary(model: LlamaModel): string {
  const configured = model.attention.filter((m) => STATE.has(m));
  if (configured.length === 0) return 'No sparse attention modules found';
  const enabled = configured.filter((m) => STATE.get(m)!.enabled);
  const groups = new Map<string, number>();
  for (const m of enabled) {
    const key = `${m.method.name}: ${formatThreshold(m.method)}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  const lines = [`Sparse attention: ${enabled.length}/${configured.length} modules enabled`];
  for (const [key, n] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const [method, threshold] = key.split(/: (.*)/s);
    lines.push(`  ${method}: ${n} layers, ${threshold}`);
  }
  return lines.join('\n');
}

export function printSparseAttentionSummary(model: LlamaModel): void {
  console.log(sparseAttentionSummary(model));
}

function formatThreshold(method: SparseAttentionMethod): string {
  const info = method.getThresholdInfo();
  if (info.type === 'dynamic_calibrated') {
    const params = (info.calibration_params ?? {}) as Record<string, { a: number; b: number }>;
    const target = (info.target_sparse_ratio ?? {}) as Record<string, number>;
    const parts = ['prefill', 'decode'].filter((p) => params[p])
      .map((p) => `${p}: a=${params[p].a.toFixed(4)}, b=${params[p].b.toFixed(2)}, target=${Math.round(100 * (target[p] ?? 0.5))}%`);
    return `calibrated(${parts.join(', ')})`;
  }
  if (info.type === 'static') {
    const v = info.value;
    return typeof v === 'number' ? `threshold=${v.toExponential(2)}` : `threshold=${JSON.stringify(v)}`;
  }
  return 'threshold=N/A';
}

/** A disabled module still reports statistics in the block size its entry names. */
function pickBlockSizes(settings: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (settings.br !== undefined) out.br = settings.br;
  if (settings.bc !== undefined) out.bc = settings.bc;
  return out;
}

/** What sparsify configured, per module in model order (the HF export reads it). */
export function sparsifiedModules(model: LlamaModel): { module: AttentionModule; enabled: boolean; resolved: ResolvedModuleConfig; targetSparseRatio?: Partial<Record<'prefill' | 'decode', number>> }[] {
  return model.attention.filter((m) => STATE.has(m)).map((module) => {
    const st = STATE.get(module)!;
    return { module, enabled: st.enabled, resolved: st.resolved, targetSparseRatio: st.targetSparseRatio };
  });
}

/** Back to dense attention everywhere, statistics off. */
export function desparsify(model: LlamaModel): void {
  for (const module of model.attention) {
    module.method = new DenseMethod();
    module.backend = cpuBackend;
    STATE.delete(module);
  }
  model.stats = undefined;
}
