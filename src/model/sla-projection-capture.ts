/**
 * The model side of fitting SLA's projection (calibration/sla-projection-fit.ts): the attention
 * inputs each layer sees on calibration prompts, and a sparse-attention config that carries the
 * fitted weights back into `sparsify(model, config)`.
 *
 * Inputs are captured from a dense forward pass (as sparsify's calibration does): each layer's Q, K
 * and V are then those of the model it is meant to imitate, not of a model already perturbed by
 * sparse layers below it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CapturedSlaAttention, SlaProjectionWeights } from '../calibration/sla-projection-fit.js';
import { slaProjectionJson } from '../calibration/sla-projection-fit.js';
import { InvalidArgumentError } from '../core/errors.js';
import { DenseMethod } from '../methods/dense/dense.js';
import { type LlamaModel, prefill } from './llama.js';

export interface CaptureOptions {
  /** Which modules to capture (default all). */
  modules?: (name: string) => boolean;
  /** Prefill chunk (default the whole prompt in one call, as the accuracy eval runs). */
  prefillChunk?: number;
}

/** Q/K/V (BHLD copies) of every prefill attention call while the prompts run dense. */
export async function captureAttentionInputs(model: LlamaModel, prompts: readonly ArrayLike<number>[], opts: CaptureOptions = {}): Promise<CapturedSlaAttention[]> {
  if (prompts.length === 0) throw new InvalidArgumentError('prompts', prompts, 'at least one prompt');
  const want = opts.modules ?? (() => true);
  const captured: CapturedSlaAttention[] = [];
  const saved = model.attention.map((m) => m.method);
  const previous = model.onAttention;
  model.onAttention = (module, q, k, v) => {
    // The cache views change as later chunks are written: keep copies.
    if (q.length > 1 && want(module.name)) captured.push({ module: module.name, q: q.toLayout('BHLD'), k: k.toLayout('BHLD'), v: v.toLayout('BHLD') });
  };
  try {
    for (const m of model.attention) m.method = new DenseMethod();
    for (const p of prompts) await prefill(model, p, model.newCache(p.length), opts.prefillChunk ?? p.length);
  } finally {
    model.onAttention = previous;
    model.attention.forEach((m, i) => { m.method = saved[i]; });
  }
  return captured;
}

export interface ProjectionConfigOptions {
  method?: string;
  /** Where per-module projFile JSONs go (named <prefix>.<module>.proj.json); absent: weights inline. */
  dir?: string;
  prefix?: string;
}

/**
 * A sparse_cfg with one entry per fitted module: the method, the settings, and the projection
 * (inline `proj` or a written `projFile`). Later entries win wholesale in the config rules, so each
 * carries the full settings.
 */
export function slaProjectionConfig(
  settings: Record<string, unknown>, projections: ReadonlyMap<string, SlaProjectionWeights>, opts: ProjectionConfigOptions = {},
): { sparse_cfg: Record<string, Record<string, unknown>> } {
  const { proj: _p, projFile: _f, ...base } = settings;
  const method = opts.method ?? 'sla';
  const cfg: Record<string, Record<string, unknown>> = { default: { enable: false } };
  for (const [module, w] of projections) {
    const json = slaProjectionJson(w);
    if (opts.dir === undefined) {
      cfg[module] = { method, ...base, proj: json };
      continue;
    }
    const file = join(opts.dir, `${opts.prefix ?? 'sla'}.${module}.proj.json`);
    mkdirSync(opts.dir, { recursive: true });
    writeFileSync(file, `${JSON.stringify(json)}\n`);
    cfg[module] = { method, ...base, projFile: file };
  }
  return { sparse_cfg: cfg };
}
