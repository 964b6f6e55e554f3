/**
 * Validation problems as messages a user can act on, one per bad field, all of them at once:
 *   sparse_cfg["*attention*"].threshold.prefill must be a number in (0, 1], got 1.5
 * Schemas carry only the "expected" text as their zod message; the path and the offending value
 * are added here, so every field reads the same way.
 */
import type { z } from 'zod';
import { formatValue, SparseAttentionError } from '../core/errors.js';

export type PathSegment = string | number | { label: string };

export interface ConfigIssue {
  /** e.g. `sparse_cfg["*attention*"].threshold.prefill` */
  path: string;
  value: unknown;
  expected: string;
  message: string;
}

/** All problems of one config, listed in its message. */
export class ConfigValidationError extends SparseAttentionError {
  override readonly name = 'ConfigValidationError';
  constructor(
    readonly what: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    const head = issues.length === 1 ? `invalid ${what}: ` : `invalid ${what} (${issues.length} problems):\n  `;
    super(head + issues.map((i) => i.message).join('\n  '));
  }
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** `a.b[0]["*x*"]`; a `{label}` segment is printed in brackets as is (a predicate's description). */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'object') out += `[${seg.label}]`;
    else if (IDENTIFIER.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export function makeIssue(path: readonly PathSegment[], value: unknown, expected: string): ConfigIssue {
  const p = formatPath(path);
  const got = value === undefined ? 'nothing (the field is missing)' : formatValue(value);
  return { path: p, value, expected, message: `${p || 'config'} must be ${expected}, got ${got}` };
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/**
 * Turns zod issues for `input` (found at `prefix` in the whole config) into ConfigIssues.
 * Unknown keys of strict objects become one issue per key, naming the fields that are allowed.
 */
export function issuesFromZod(error: z.ZodError, input: unknown, prefix: readonly PathSegment[], known: (path: readonly PropertyKey[]) => readonly string[] = () => []): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const rel = issue.path;
    const at = [...prefix, ...(rel as (string | number)[])];
    if (issue.code === 'unrecognized_keys') {
      const allowed = known(rel);
      const what = allowed.length ? `absent (allowed fields: ${allowed.join(', ')})` : 'absent (not a known field)';
      for (const key of issue.keys) out.push(makeIssue([...at, key], valueAt(input, [...rel, key]), what));
    } else {
      out.push(makeIssue(at, valueAt(input, rel), issue.message));
    }
  }
  return out;
}
