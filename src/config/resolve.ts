/**
 * Which attributes a module gets: `resolveModuleConfig(cfg, 'model.layers.3.self_attn')`.
 *
 * Precedence (ModelOpt's `set_sparse_attention_by_cfg`, followed exactly): the "default" entry is
 * applied to every module first, wherever it stands; then every other entry is applied, in order,
 * to the modules its pattern (fnmatch glob over the whole name, or predicate) matches. Each applied
 * entry replaces the module's attributes wholesale — it is merged over the attribute defaults, never
 * over an earlier entry. So: **the last matching entry wins, "default" loses to any pattern.**
 *
 * The "calibration" key of current ModelOpt configs holds the calibration request, not a pattern.
 *
 * A module no entry matches (no "default" either) is disabled. (ModelOpt would leave it enabled
 * with the attribute defaults; a config that names no module should not sparsify anything.)
 *
 * The method of an enabled module must be registered; its settings are the entry's own fields less
 * `method`, `enable`, `backend` and `is_causal` (the runner's: causality is a per-call option here),
 * so each method applies its own defaults to what the entry leaves out (ModelOpt's numbers are
 * flash_skip_softmax's, not XAttention's) and rejects settings it does not know.
 */
import { InvalidArgumentError } from '../core/errors.js';
import { sparseMethods } from '../methods/index.js';
import type { SparseAttentionMethod } from '../methods/method.js';
import { PerHeadMethod } from '../methods/per-head.js';
import type { MethodRegistry } from '../methods/registry.js';
import { fillAttributeDefaults, MODELOPT_ONLY_DEFAULTS, resolveCalibration, type SparseAttentionAttributeConfig, type SparseAttentionAttributeInput } from './attribute-config.js';
import { compileGlob } from './glob.js';
import { CALIBRATION_KEY, DEFAULT_PATTERN, patternLabel, type SparseAttentionConfig, type SparseCfgEntry } from './sparse-config.js';

export interface ResolvedModuleConfig {
  module: string;
  enable: boolean;
  /** The deciding entry: '"default"', the pattern as JSON ('"*attention*"'), 'predicate <name>'; null when none matched. */
  matchedBy: string | null;
  /** The deciding entry over the attribute defaults; null when no entry matched. */
  attributes: SparseAttentionAttributeConfig | null;
  /** For the method's constructor: the entry's fields less method/enable/backend/is_causal, calibration filled. */
  settings: Record<string, unknown>;
}

export interface ResolveOptions {
  /** Where `method` must be registered; default: the built-in registry. */
  registry?: MethodRegistry;
}

const MODULE_LEVEL_FIELDS = new Set(['method', 'enable', 'backend', 'is_causal', 'per_head', ...Object.keys(MODELOPT_ONLY_DEFAULTS)]);

function matches(entry: SparseCfgEntry, moduleName: string): boolean {
  return typeof entry.pattern === 'string' ? compileGlob(entry.pattern)(moduleName) : entry.pattern(moduleName) === true;
}

/** The entry that decides `moduleName` under the precedence rule above, or undefined. */
export function decidingEntry(cfg: SparseAttentionConfig, moduleName: string): SparseCfgEntry | undefined {
  let winner = cfg.sparse_cfg.find((e) => e.pattern === DEFAULT_PATTERN);
  for (const e of cfg.sparse_cfg) if (e.pattern !== DEFAULT_PATTERN && e.pattern !== CALIBRATION_KEY && matches(e, moduleName)) winner = e;
  return winner;
}

export function resolveModuleConfig(cfg: SparseAttentionConfig, moduleName: string, opts: ResolveOptions = {}): ResolvedModuleConfig {
  if (typeof moduleName !== 'string' || moduleName.length === 0) throw new InvalidArgumentError('moduleName', moduleName, 'a non-empty module name');
  const entry = decidingEntry(cfg, moduleName);
  if (!entry) return { module: moduleName, enable: false, matchedBy: null, attributes: null, settings: {} };
  const attributes = fillAttributeDefaults(entry.config);
  const matchedBy = patternLabel(entry.pattern);
  if (attributes.enable) {
    const where = `sparse_cfg[${matchedBy}].method${entry.config.method === undefined ? ' (left out, so the default)' : ''}`;
    requireRegistered(opts.registry ?? sparseMethods, attributes.method, where);
  }
  return { module: moduleName, enable: attributes.enable, matchedBy, attributes, settings: methodSettings(entry.config) };
}

/** resolveModuleConfig for several modules, in order. */
export function resolveModuleConfigs(cfg: SparseAttentionConfig, moduleNames: readonly string[], opts: ResolveOptions = {}): ResolvedModuleConfig[] {
  return moduleNames.map((name) => resolveModuleConfig(cfg, name, opts));
}

/**
 * The method an enabled module runs, constructed with its settings; null when disabled. An entry
 * with `per_head` gives a PerHeadMethod (one inner instance per query head, methods/per-head.ts).
 */
export function createModuleMethod(resolved: ResolvedModuleConfig, opts: ResolveOptions = {}): SparseAttentionMethod | null {
  if (!resolved.enable || !resolved.attributes) return null;
  const registry = opts.registry ?? sparseMethods;
  const perHead = resolved.attributes.per_head as Record<string, number[]> | undefined;
  if (perHead !== undefined) {
    return new PerHeadMethod(registry.descriptor(resolved.attributes.method), resolved.settings, perHead, { registry, label: `sparse_cfg[${resolved.matchedBy}].per_head` });
  }
  return new (registry.get(resolved.attributes.method))(resolved.settings);
}

/** The settings an entry gives its method: its fields less the module-level ones, calibration filled. */
export function methodSettings(entry: Readonly<SparseAttentionAttributeInput>): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entry)) if (!MODULE_LEVEL_FIELDS.has(k) && v !== undefined) settings[k] = v;
  if ('calibration' in settings) settings.calibration = resolveCalibration(entry.calibration);
  return settings;
}

function requireRegistered(registry: MethodRegistry, method: string, parameter: string): void {
  if (registry.has(method)) return;
  const known = registry.list().map((m) => `${m.name} (${m.versions.join(', ')})`);
  throw new InvalidArgumentError(parameter, method, `a registered sparse method; registered: ${known.length ? known.join(', ') : '(none)'}`);
}
