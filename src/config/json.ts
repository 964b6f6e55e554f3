/**
 * JSON load/save of SparseAttentionConfig in ModelOpt's form (seed 002):
 *
 *   const cfg = loadSparseAttentionConfig(fs.readFileSync('sparse.json', 'utf8'));
 *   fs.writeFileSync('out.json', JSON.stringify(saveSparseAttentionConfig(cfg), null, 2));
 *
 * load(save(cfg)) gives the same config and save(load(json)) the same JSON, key order included:
 * entries are stored as written and defaults are applied only when a module is resolved.
 */
import { InvalidArgumentError } from '../core/errors.js';
import type { SparseAttentionAttributeInput } from './attribute-config.js';
import { ConfigValidationError, formatPath, makeIssue, type PathSegment } from './issues.js';
import {
  cloneJsonLike,
  patternLabel,
  SPARSE_ATTENTION_CONFIG_DEFAULT,
  type SparseAttentionConfig,
  type SparseAttentionConfigInput,
  type SparseAttentionConfigJson,
  sparseAttentionConfig,
} from './sparse-config.js';

/**
 * A config from JSON text or an object (the JSON form, or sparse_cfg as a Map / entry list).
 * Fields left out come from `defaults` (pass FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT for that config).
 */
export function loadSparseAttentionConfig(jsonOrObject: string | SparseAttentionConfigInput, defaults: Readonly<SparseAttentionConfigJson> = SPARSE_ATTENTION_CONFIG_DEFAULT): SparseAttentionConfig {
  let input: unknown = jsonOrObject;
  if (typeof jsonOrObject === 'string') {
    try {
      input = JSON.parse(jsonOrObject);
    } catch (err) {
      throw new ConfigValidationError('sparse attention config', [makeIssue([], truncate(jsonOrObject), `valid JSON (${(err as Error).message})`)]);
    }
  }
  return sparseAttentionConfig(input as SparseAttentionConfigInput, defaults);
}

/** The JSON form (a plain object; JSON.stringify it to write). Predicate entries cannot be saved. */
export function saveSparseAttentionConfig(cfg: SparseAttentionConfig): SparseAttentionConfigJson {
  const entries: [string, SparseAttentionAttributeInput][] = [];
  for (const { pattern, config } of cfg.sparse_cfg) {
    if (typeof pattern !== 'string') {
      throw new InvalidArgumentError(`sparse_cfg[${patternLabel(pattern)}]`, pattern,
        'a glob pattern string to be saved as JSON (a predicate function has no JSON form: replace it with a pattern, or remove the entry before saving)');
    }
    checkJsonValue(['sparse_cfg', pattern], config);
    entries.push([pattern, cloneJsonLike(config) as SparseAttentionAttributeInput]);
  }
  // fromEntries defines own properties, so even a "__proto__" pattern stays a key.
  return { sparse_cfg: Object.fromEntries(entries), export_format: cfg.export_format };
}

/** Method settings may be anything in memory; only JSON values can be written. */
function checkJsonValue(path: PathSegment[], v: unknown): void {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new InvalidArgumentError(formatPath(path), v, 'a finite number to be saved as JSON');
    return;
  }
  if (Array.isArray(v)) return v.forEach((x, i) => checkJsonValue([...path, i], x));
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v)) if (x !== undefined) checkJsonValue([...path, k], x);
    return;
  }
  throw new InvalidArgumentError(formatPath(path), v, 'a JSON value (null, boolean, number, string, array or plain object) to be saved as JSON');
}

function truncate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
