/**
 * A config's method settings checked with each method's own schema: every enabled entry's method
 * is constructed from the registry with the entry's settings, as the runner would construct it,
 * so `sparse-attn config` rejects what the API would reject when the module is created (an unknown
 * method, an unknown setting such as "thresh", an XAttention block size its stride does not divide).
 *
 * A method's constructor stops at its first bad field; to report every one, a failing entry is
 * retried one field at a time. A problem only the combination has (two fields that disagree) is
 * reported as the whole entry's.
 */
import { formatValue, InvalidArgumentError } from '../core/errors.js';
import { sparseMethods } from '../methods/index.js';
import { PerHeadMethod } from '../methods/per-head.js';
import type { MethodRegistry } from '../methods/registry.js';
import { fillAttributeDefaults } from './attribute-config.js';
import { ConfigValidationError, type ConfigIssue, formatPath } from './issues.js';
import { methodSettings } from './resolve.js';
import { patternLabel, type SparseAttentionConfig } from './sparse-config.js';

function issue(path: string, value: unknown, err: unknown): ConfigIssue {
  const message = err instanceof Error ? err.message : String(err);
  const expected = err instanceof InvalidArgumentError ? err.expected : message;
  return { path, value, expected, message: `${path}: ${message}` };
}

/** Every problem of every enabled entry's method settings; empty when each method accepts its settings. */
export function methodSettingIssues(cfg: SparseAttentionConfig, registry: MethodRegistry = sparseMethods): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const entry of cfg.sparse_cfg) {
    const attributes = fillAttributeDefaults(entry.config);
    if (!attributes.enable) continue;
    const at = `sparse_cfg[${patternLabel(entry.pattern)}]`;
    if (!registry.has(attributes.method)) {
      const known = registry.list().map((m) => m.name).join(', ');
      const path = `${at}.method`;
      issues.push({ path, value: attributes.method, expected: `a registered sparse method (${known})`, message: `${path} must be a registered sparse method (${known}), got ${formatValue(attributes.method)}` });
      continue;
    }
    const cls = registry.get(attributes.method);
    const settings = methodSettings(entry.config);
    if (entry.config.per_head !== undefined) {
      // The setting must be the knob and each head's value pass the method's schema.
      try {
        new PerHeadMethod(registry.descriptor(attributes.method), settings, entry.config.per_head, { registry, label: `${at}.per_head` });
      } catch (err) {
        issues.push(issue(`${at}.per_head`, entry.config.per_head, err));
      }
    }
    try {
      new cls(settings);
      continue;
    } catch (err) {
      const single: ConfigIssue[] = [];
      for (const [key, value] of Object.entries(settings)) {
        try {
          new cls({ [key]: value });
        } catch (one) {
          const sub = formatPath([key]);
          single.push(issue(sub.startsWith('[') ? at + sub : `${at}.${sub}`, value, one));
        }
      }
      issues.push(...(single.length ? single : [issue(at, settings, err)]));
    }
  }
  return issues;
}

/** Throws one ConfigValidationError listing every problem methodSettingIssues finds. */
export function checkMethodSettings(cfg: SparseAttentionConfig, registry: MethodRegistry = sparseMethods): void {
  const issues = methodSettingIssues(cfg, registry);
  if (issues.length) throw new ConfigValidationError('method settings', issues);
}
