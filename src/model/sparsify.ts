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
 */
import type { AttentionBackend } from '../backends/backend.js';
import { cpuBackend } from '../backends/cpu/index.js';
import type { BackendName } from '../backends/backend.js';
import { createModuleMethod, resolveModuleConfig } from '../config/resolve.js';
import { type SparseAttentionConfig, type SparseAttentionConfigInput, sparseAttentionConfig } from '../config/sparse-config.js';
import { UnsupportedError } from '../core/errors.js';
import { StatsAggregator } from '../core/stats.js';
import { DenseMethod } from '../methods/dense/dense.js';
import type { LlamaModel } from './llama.js';

export interface SparsifyOptions {
  /** Backends by config name; 'cpu' (ModelOpt's 'pytorch') is the CPU reference backend. */
  backends?: Partial<Record<BackendName, AttentionBackend>>;
}

export interface SparsifiedModule {
  name: string;
  enabled: boolean;
  method: string;
  backend: string;
  /** The config entry that decided this module (null: none matched, so dense). */
  matchedBy: string | null;
  settings: Record<string, unknown>;
}

export interface SparsifyResult {
  modules: SparsifiedModule[];
  stats: StatsAggregator;
}

export function sparsify(model: LlamaModel, config: SparseAttentionConfigInput | SparseAttentionConfig, opts: SparsifyOptions = {}): SparsifyResult {
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
    modules.push({
      name: module.name, enabled: resolved.enable, method: method ? resolved.attributes!.method : 'dense',
      backend: backendName, matchedBy: resolved.matchedBy, settings: method ? resolved.settings : {},
    });
  }
  const stats = new StatsAggregator();
  model.stats = stats;
  return { modules, stats };
}

/** A disabled module still reports statistics in the block size its entry names. */
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
