/**
 * `SparseAttentionConfig` (ModelOpt's, seed 002): per-module attributes chosen by name.
 *
 *   { sparse_cfg: { "<glob>" | predicate → attribute entry, ..., "default": entry }, export_format }
 *
 * JSON objects cannot have function keys, so a config holds sparse_cfg as an ordered list of
 * { pattern, config } entries; its JSON form is ModelOpt's object (see json.ts). Entries are kept as
 * written (validated, copied, frozen): defaults are applied at resolution, so saving a loaded config
 * gives back exactly what was loaded. Which entry wins for a module: resolve.ts.
 */
import { formatValue } from '../core/errors.js';
import { attributeConfigSchema, knownAttributeFields, type SparseAttentionAttributeInput } from './attribute-config.js';
import { CALIBRATION_FIELDS, type CalibrationConfig, type CalibrationInput, calibrationSchema, resolveCalibration } from './calibration-config.js';
import { type ConfigIssue, ConfigValidationError, issuesFromZod, makeIssue, type PathSegment } from './issues.js';

/** Decides by module name, like ModelOpt's callable keys. */
export type ModulePredicate = (moduleName: string) => boolean;
export type SparseCfgPattern = string | ModulePredicate;

export interface SparseCfgEntry {
  readonly pattern: SparseCfgPattern;
  readonly config: Readonly<SparseAttentionAttributeInput>;
}

export interface SparseAttentionConfig {
  readonly sparse_cfg: readonly SparseCfgEntry[];
  /** e.g. 'onnx'; carried for ModelOpt compatibility, unused here. */
  readonly export_format: string | null;
}

/** The FlashSkipSoftmaxConfig of ModelOpt is a SparseAttentionConfig with other defaults. */
export type FlashSkipSoftmaxConfig = SparseAttentionConfig;

/** The JSON form: sparse_cfg keys are glob patterns, in order, "default" among them. */
export interface SparseAttentionConfigJson {
  sparse_cfg: Record<string, SparseAttentionAttributeInput>;
  export_format: string | null;
}

/** What a caller may pass: the JSON form, or sparse_cfg as a Map / entry list (predicates allowed). */
export interface SparseAttentionConfigInput {
  sparse_cfg?:
    | Record<string, SparseAttentionAttributeInput>
    | ReadonlyMap<SparseCfgPattern, SparseAttentionAttributeInput>
    | readonly (SparseCfgEntry | readonly [SparseCfgPattern, SparseAttentionAttributeInput])[];
  export_format?: string | null;
}

/** The entry ModelOpt applies to every module before the patterns. */
export const DEFAULT_PATTERN = 'default';
/** Current ModelOpt's key for the calibration request (a CalibrationConfig, not a pattern). */
export const CALIBRATION_KEY = 'calibration';

/** ModelOpt's SparseAttentionConfig default (seed 002). */
export const SPARSE_ATTENTION_CONFIG_DEFAULT: Readonly<SparseAttentionConfigJson> = deepFreeze({
  sparse_cfg: {
    '*attention*': { enable: true, method: 'flash_skip_softmax' },
    default: { enable: false },
  },
  export_format: null,
});

/**
 * ModelOpt's FlashSkipSoftmaxConfig default (seed 002) with our backend name: "cpu" where ModelOpt
 * writes "pytorch" (which we also accept, see attribute-config.ts).
 */
export const FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT: Readonly<SparseAttentionConfigJson> = deepFreeze({
  sparse_cfg: {
    '*attention*': {
      backend: 'cpu',
      bc: 128,
      br: 128,
      enable: true,
      method: 'flash_skip_softmax',
      threshold: { decode: 1e-4, prefill: 1e-3 },
    },
    default: { enable: false },
  },
  export_format: null,
});

/**
 * Current ModelOpt's presets (config.py), as ModelOpt writes them ("pytorch" is read as "cpu").
 * SKIP_SOFTMAX_CALIB leaves thresholds out: calibration sets them (a·exp(b·target)/length).
 */
export const SKIP_SOFTMAX_DEFAULT: Readonly<SparseAttentionConfigJson> = deepFreeze({
  sparse_cfg: {
    '*attn*': {
      method: 'flash_skip_softmax', thresholds: { prefill: [1e-3], decode: [1e-4] }, br: 128, bc: 128, backend: 'pytorch', collect_stats: true, enable: true,
    },
    default: { enable: false },
  },
  export_format: null,
});

export const SKIP_SOFTMAX_CALIB: Readonly<SparseAttentionConfigJson> = deepFreeze({
  sparse_cfg: {
    calibration: { target_sparse_ratio: { prefill: 0.5, decode: 0.5 }, samples: 64, max_seqlen: 16384, chunk_size: 4096 },
    '*attn*': { method: 'flash_skip_softmax', br: 128, bc: 128, backend: 'pytorch', collect_stats: true, enable: true },
    default: { enable: false },
  },
  export_format: null,
});

/** Current ModelOpt's FlashSkipSoftmaxConfig default (its sparse_cfg field's default; decode 1e-5). */
export const MODELOPT_FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT: Readonly<SparseAttentionConfigJson> = deepFreeze({
  sparse_cfg: {
    '*attention*': {
      method: 'flash_skip_softmax', thresholds: { prefill: [1e-3], decode: [1e-5] }, br: 128, bc: 128, backend: 'pytorch', collect_stats: true, enable: true,
    },
    default: { enable: false },
  },
  export_format: null,
});

const TOP_LEVEL_FIELDS = ['sparse_cfg', 'export_format'];

/** How an entry's pattern is named in messages and in resolution results. */
export function patternLabel(pattern: SparseCfgPattern): string {
  return typeof pattern === 'string' ? JSON.stringify(pattern) : `predicate ${pattern.name || '(anonymous)'}`;
}

function patternSegment(pattern: SparseCfgPattern): PathSegment {
  return typeof pattern === 'string' ? pattern : { label: patternLabel(pattern) };
}

/**
 * A validated config from `input`; fields it leaves out come from `defaults` (a missing sparse_cfg
 * means the defaults' whole sparse_cfg, as in ModelOpt). Throws ConfigValidationError listing every
 * bad field.
 */
export function sparseAttentionConfig(input: SparseAttentionConfigInput = {}, defaults: Readonly<SparseAttentionConfigJson> = SPARSE_ATTENTION_CONFIG_DEFAULT, what = 'sparse attention config'): SparseAttentionConfig {
  const issues: ConfigIssue[] = [];
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ConfigValidationError(what, [makeIssue([], input, 'an object {sparse_cfg, export_format}')]);
  }
  for (const key of Object.keys(input)) {
    if (!TOP_LEVEL_FIELDS.includes(key)) issues.push(makeIssue([key], (input as Record<string, unknown>)[key], `absent (allowed fields: ${TOP_LEVEL_FIELDS.join(', ')})`));
  }
  const exportFormat = input.export_format === undefined ? defaults.export_format : input.export_format;
  if (exportFormat !== null && typeof exportFormat !== 'string') issues.push(makeIssue(['export_format'], exportFormat, 'a string or null'));
  const entries = rawEntries(input.sparse_cfg === undefined ? defaults.sparse_cfg : input.sparse_cfg, issues);
  const seen = new Set<SparseCfgPattern>();
  const out: SparseCfgEntry[] = [];
  for (const [key, config] of entries) {
    if (!(typeof key === 'function' || (typeof key === 'string' && key.length > 0))) {
      issues.push(makeIssue(['sparse_cfg', { label: formatValue(key) }], key, 'a key that is a non-empty glob pattern string or a predicate function'));
      continue;
    }
    const pattern = key as SparseCfgPattern;
    if (seen.has(pattern)) {
      issues.push(makeIssue(['sparse_cfg', patternSegment(pattern)], config, 'given once (a pattern may appear in sparse_cfg only once)'));
      continue;
    }
    seen.add(pattern);
    const isCalibration = pattern === CALIBRATION_KEY;
    const r = (isCalibration ? calibrationSchema : attributeConfigSchema).safeParse(config);
    if (!r.success) {
      const known = isCalibration ? (rel: readonly PropertyKey[]) => (rel.length === 0 ? CALIBRATION_FIELDS : knownAttributeFields(rel)) : knownAttributeFields;
      issues.push(...issuesFromZod(r.error, config, ['sparse_cfg', patternSegment(pattern)], known));
      continue;
    }
    out.push(Object.freeze({ pattern, config: deepFreeze(cloneJsonLike(config) as SparseAttentionAttributeInput) }));
  }
  if (issues.length) throw new ConfigValidationError(what, issues);
  return Object.freeze({ sparse_cfg: Object.freeze(out), export_format: exportFormat as string | null });
}

/**
 * The calibration a config asks for: current ModelOpt's `sparse_cfg.calibration` key, else the seed
 * form's `calibration` field of an enabled entry (the first; ModelOpt allows one). Null: none.
 */
export function calibrationRequest(cfg: SparseAttentionConfig): CalibrationConfig | null {
  const global = cfg.sparse_cfg.find((e) => e.pattern === CALIBRATION_KEY);
  if (global) return resolveCalibration(global.config as CalibrationInput);
  const entry = cfg.sparse_cfg.find((e) => e.pattern !== CALIBRATION_KEY && e.config.enable !== false && e.config.calibration);
  return entry ? resolveCalibration(entry.config.calibration) : null;
}

/** ModelOpt's FlashSkipSoftmaxConfig: its defaults under whatever `input` sets. */
export function flashSkipSoftmaxConfig(input: SparseAttentionConfigInput = {}): FlashSkipSoftmaxConfig {
  return sparseAttentionConfig(input, FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT, 'flash_skip_softmax config');
}

function rawEntries(cfg: unknown, issues: ConfigIssue[]): [unknown, unknown][] {
  if (cfg instanceof Map) return [...cfg.entries()];
  if (Array.isArray(cfg)) {
    const out: [unknown, unknown][] = [];
    cfg.forEach((e: unknown, i) => {
      if (Array.isArray(e) && e.length === 2) out.push([e[0], e[1]]);
      else if (e !== null && typeof e === 'object' && 'pattern' in e && 'config' in e) out.push([e.pattern, e.config]);
      else issues.push(makeIssue(['sparse_cfg', i], e, 'a [pattern, attributes] pair or a {pattern, config} entry'));
    });
    return out;
  }
  if (cfg !== null && typeof cfg === 'object') return Object.entries(cfg);
  issues.push(makeIssue(['sparse_cfg'], cfg, 'an object mapping glob patterns to attribute objects (or a Map / entry list)'));
  return [];
}

/** Deep copy of plain objects and arrays; anything else (functions, typed arrays) by reference. */
export function cloneJsonLike(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(cloneJsonLike);
  if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, cloneJsonLike(x)]));
  }
  return v;
}

function deepFreeze<T>(v: T): T {
  if (Array.isArray(v) || (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype)) {
    for (const x of Object.values(v as object)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
