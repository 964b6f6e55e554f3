/**
 * `sparsify(model, config)`: applies a ModelOpt-shaped SparseAttentionConfig to a model's
 * attention modules by name (`model.layers.N.self_attn`), after ModelOpt's `mtsa.sparsify`:
 *
 *   { sparse_cfg: { "*self_attn*": { method: "xattention", threshold: 0.9 },
 *                   "model.layers.0.self_attn": { enable: false },      // exception: first layer dense
 *                   default: { enable: false } } }
 *
 * As in ModelOpt, `default` applies to every module first, then each pattern that matches the
 * module's name, in the order written, replaces its attributes wholesale (fields it leaves out
 * take their defaults, e.g. enable: true): the last matching pattern wins. Enabled modules
 * get the named method constructed with the remaining fields as its settings; disabled ones run
 * dense. Statistics of every attention call go to a StatsAggregator keyed by module name.
 *
 * The `config` branch owns the full config schema and `resolveModuleConfig`; until it lands here,
 * `resolveModuleConfigMinimal` below does the pattern resolution, and `sparsify` takes any
 * resolver with that signature.
 */
import type { AttentionBackend } from '../backends/backend.js';
import { cpuBackend } from '../backends/cpu/index.js';
import { InvalidArgumentError, UnsupportedError } from '../core/errors.js';
import { StatsAggregator } from '../core/stats.js';
import { DenseMethod } from '../methods/dense.js';
import { createSparseMethod } from '../methods/index.js';
import type { LlamaModel } from './llama.js';

/** One module's attributes (ModelOpt's SparseAttentionAttributeConfig, plus method-specific settings). */
export interface ModuleSparseConfig {
  enable?: boolean;
  method?: string;
  backend?: string;
  is_causal?: boolean;
  calibration?: unknown;
  [setting: string]: unknown;
}

export interface SparseAttentionConfigLike {
  sparse_cfg: Record<string, ModuleSparseConfig>;
  export_format?: string | null;
}

export type ModuleConfigResolver = (cfg: SparseAttentionConfigLike, moduleName: string) => ModuleSparseConfig;

/** fnmatch-style: `*` any run of characters (dots included), `?` one character; whole-name match. */
export function modulePatternMatches(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(name);
}

export function resolveModuleConfigMinimal(cfg: SparseAttentionConfigLike, moduleName: string): ModuleSparseConfig {
  if (!cfg || typeof cfg.sparse_cfg !== 'object' || cfg.sparse_cfg === null) {
    throw new InvalidArgumentError('config.sparse_cfg', cfg?.sparse_cfg, 'an object of { pattern: module settings }');
  }
  let out: ModuleSparseConfig = cfg.sparse_cfg.default ?? {};
  for (const [pattern, attrs] of Object.entries(cfg.sparse_cfg)) {
    if (pattern !== 'default' && modulePatternMatches(pattern, moduleName)) out = attrs;
  }
  return { ...out };
}

export interface SparsifyOptions {
  resolve?: ModuleConfigResolver;
  /** Backends by config name; 'cpu' (and ModelOpt's 'pytorch') map to the CPU reference backend. */
  backends?: Record<string, AttentionBackend>;
}

export interface SparsifiedModule {
  name: string;
  enabled: boolean;
  method: string;
  backend: string;
  settings: Record<string, unknown>;
}

export interface SparsifyResult {
  modules: SparsifiedModule[];
  stats: StatsAggregator;
}

/** Fields of a module config that steer sparsify itself rather than the method. */
const CONTROL_FIELDS = new Set(['enable', 'method', 'backend', 'is_causal', 'calibration']);

export function sparsify(model: LlamaModel, config: SparseAttentionConfigLike, opts: SparsifyOptions = {}): SparsifyResult {
  const resolve = opts.resolve ?? resolveModuleConfigMinimal;
  const backends: Record<string, AttentionBackend> = { cpu: cpuBackend, pytorch: cpuBackend, ...opts.backends };
  const modules: SparsifiedModule[] = [];
  for (const module of model.attention) {
    const attrs = resolve(config, module.name);
    const enabled = attrs.enable ?? true;
    if (attrs.is_causal === false) {
      throw new UnsupportedError(`${module.name}: is_causal false was asked for, but ${model.constructor.name} is a causal LM`);
    }
    const backendName = attrs.backend ?? 'cpu';
    const backend = backends[backendName];
    if (!backend) throw new InvalidArgumentError(`${module.name}.backend`, backendName, `one of ${Object.keys(backends).join(', ')}`);
    const settings = Object.fromEntries(Object.entries(attrs).filter(([k]) => !CONTROL_FIELDS.has(k)));
    const methodName = enabled ? (attrs.method ?? 'flash_skip_softmax') : 'dense';
    module.method = enabled ? createSparseMethod(methodName, settings) : new DenseMethod(pickBlockSizes(settings));
    module.backend = backend;
    modules.push({ name: module.name, enabled, method: methodName, backend: backendName, settings: enabled ? settings : {} });
  }
  const stats = new StatsAggregator();
  model.stats = stats;
  return { modules, stats };
}

/** A disabled module still reports statistics in the block size the config names. */
function pickBlockSizes(settings: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (settings.br !== undefined) out.br = settings.br;
  if (settings.bc !== undefined) out.bc = settings.bc;
  return out;
}

/** Back to dense attention everywhere, statistics off. */
export function desparsify(model: LlamaModel): void {
  for (const module of model.attention) {
    module.method = new DenseMethod();
    module.backend = cpuBackend;
  }
  model.stats = undefined;
}
