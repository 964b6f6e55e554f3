/**
 * The `sparse_attention_config` block of a Hugging Face config.json, as ModelOpt's exporter writes
 * it (conversion.py export_sparse_attention_config, called by unified_export_hf) and vLLM's ModelOpt
 * plugin and TensorRT-LLM's skip-softmax read it:
 *
 *   { "config_groups": {
 *       "group_0": { "algorithm": "skip_softmax", "targets": ["LlamaAttention"],
 *                    "ignore": [<modules kept dense>],              (only when some are)
 *                    "initial_disabled_steps": N,                   (only when > 0)
 *                    "threshold_scale_factor": { "formula": "a * exp(b * target_sparsity)",
 *                                                "prefill": {"a", "b"}, "decode": {"a", "b"} },
 *                    "target_sparsity": <the calibration's target_sparse_ratio as written> },
 *       "group_1": { "algorithm": "sparse_softmax", "targets": [...], sparsity_n, sparsity_m,
 *                    dense_sink_tokens, dense_recent_tokens } },         (N:M metadata, when asked)
 *     "producer": { "name", "version" } }
 *
 * At serving time threshold = a·exp(b·target)/seqlen. Key order is the exporter's. Reading it back
 * follows ModelOpt's serving reader (plugins/sparse_attn_config.py): the ignore list is disabled,
 * every other attention module runs the calibrated skip-softmax, a missing target phase runs at 0.5.
 */
import { InvalidArgumentError } from '../core/errors.js';
import type { SparseAttentionConfigJson } from './sparse-config.js';

export interface PhaseFit { a: number; b: number }

export interface SparseSoftmaxMetadata {
  sparsity_n: number;
  sparsity_m: number;
  dense_sink_tokens: number;
  dense_recent_tokens: number;
}

export interface SparseAttentionExport {
  /** HF attention class names the groups apply to (ModelOpt: sorted; ["Attention"] when unknown). */
  targets: string[];
  /** Modules kept dense (in model order). */
  ignore: string[];
  /** Calibrated fit per phase; null: no skip_softmax group. */
  calibrationParams: Partial<Record<'prefill' | 'decode', PhaseFit>> | null;
  /** The calibration's target_sparse_ratio as written (null: none). */
  targetSparsity: Partial<Record<'prefill' | 'decode', number>> | null;
  initialDisabledSteps: number;
  /** N:M sparse-softmax metadata (null: none). */
  sparseSoftmax: SparseSoftmaxMetadata | null;
  producer: { name: string; version: string };
}

/** Our package as the producer; pass ModelOpt's to compare with its exporter byte for byte. */
export const PRODUCER = Object.freeze({ name: 'sparse-attention', version: '0.1.0' });

export const SPARSE_SOFTMAX_KEYS = ['sparsity_n', 'sparsity_m', 'dense_sink_tokens', 'dense_recent_tokens'] as const;

/** The block, or null when there is nothing to export (ModelOpt writes no block then). */
export function sparseAttentionHfBlock(e: SparseAttentionExport): Record<string, unknown> | null {
  if (e.calibrationParams === null && e.sparseSoftmax === null) return null;
  const targets = e.targets.length ? [...e.targets].sort() : ['Attention'];
  const groups: Record<string, unknown> = {};
  if (e.calibrationParams !== null) {
    const skip: Record<string, unknown> = { algorithm: 'skip_softmax', targets };
    if (e.ignore.length) skip.ignore = [...e.ignore];
    if (e.initialDisabledSteps) skip.initial_disabled_steps = e.initialDisabledSteps;
    const scale: Record<string, unknown> = { formula: 'a * exp(b * target_sparsity)' };
    for (const phase of ['prefill', 'decode'] as const) {
      const fit = e.calibrationParams[phase];
      if (fit) scale[phase] = { a: fit.a, b: fit.b };
    }
    skip.threshold_scale_factor = scale;
    if (e.targetSparsity !== null) skip.target_sparsity = { ...e.targetSparsity };
    groups[`group_${Object.keys(groups).length}`] = skip;
  }
  if (e.sparseSoftmax !== null) groups[`group_${Object.keys(groups).length}`] = { algorithm: 'sparse_softmax', targets, ...e.sparseSoftmax };
  return { config_groups: groups, producer: { ...e.producer } };
}

/** A HF config.json object with the block set (or removed when there is none), other keys kept in order. */
export function withSparseAttentionBlock(hfConfig: Record<string, unknown>, block: Record<string, unknown> | null): Record<string, unknown> {
  const out = { ...hfConfig };
  delete out.sparse_attention_config;
  if (block) out.sparse_attention_config = block;
  return out;
}

/** The attention class of a HF config's architecture (LlamaForCausalLM → LlamaAttention). */
export function attentionClassOf(hfConfig: Record<string, unknown>): string[] {
  const archs = Array.isArray(hfConfig.architectures) ? (hfConfig.architectures as unknown[]) : [];
  return archs.filter((a): a is string => typeof a === 'string').map((a) => `${a.replace(/For[A-Z]\w*$/, '').replace(/Model$/, '')}Attention`);
}

/**
 * Our config from a HF config.json's block: the calibrated skip-softmax on every attention module
 * ("*attn*"), the ignore list disabled after it (the last matching entry wins here), N:M metadata
 * and initial_disabled_steps carried on the entry. Null when the block has no usable group.
 */
export function sparseConfigFromHfBlock(hfConfig: Record<string, unknown>): SparseAttentionConfigJson | null {
  const meta = hfConfig.sparse_attention_config;
  if (meta === undefined) return null;
  if (meta === null || typeof meta !== 'object') throw new InvalidArgumentError('config.json sparse_attention_config', meta, 'an object {config_groups, producer}');
  const groups = Object.values(((meta as Record<string, unknown>).config_groups ?? {}) as Record<string, Record<string, unknown>>).filter((g) => g && typeof g === 'object');
  const skip = groups.find((g) => g.algorithm === 'skip_softmax');
  const nm = groups.find((g) => g.algorithm === 'sparse_softmax' || g.algorithm === 'triton_sparse_softmax');
  const scale = (skip?.threshold_scale_factor ?? {}) as Record<string, { a?: unknown; b?: unknown }>;
  const params: Record<string, PhaseFit> = {};
  for (const phase of ['prefill', 'decode']) {
    const p = scale[phase];
    if (p && typeof p.a === 'number' && typeof p.b === 'number') params[phase] = { a: p.a, b: p.b };
  }
  const calibrated = Object.keys(params).length > 0;
  if (!calibrated && !nm) return null;
  const entry: Record<string, unknown> = { method: 'flash_skip_softmax', enable: calibrated };
  if (calibrated) {
    entry.calibration_params = params;
    entry.target_sparse_ratio = normalizeTarget(skip!.target_sparsity);
  }
  if (typeof skip?.initial_disabled_steps === 'number') entry.initial_disabled_steps = skip.initial_disabled_steps;
  if (nm) {
    entry.export_sparse_softmax = true;
    const defaults: SparseSoftmaxMetadata = { sparsity_n: 2, sparsity_m: 4, dense_sink_tokens: 0, dense_recent_tokens: 64 };
    for (const k of SPARSE_SOFTMAX_KEYS) entry[k] = typeof nm[k] === 'number' ? nm[k] : defaults[k];
  }
  const sparse_cfg: SparseAttentionConfigJson['sparse_cfg'] = { '*attn*': entry };
  for (const name of (Array.isArray(skip?.ignore) ? skip!.ignore : []) as string[]) sparse_cfg[`*${name}*`] = { enable: false };
  sparse_cfg.default = { enable: false };
  return { sparse_cfg, export_format: null };
}

/**
 * ModelOpt's _normalize_target_sparse_ratio, except that phases stay as written (the method runs a
 * missing phase at 0.5 all the same, and a re-export then writes the block it read): a number is both
 * phases; nothing at all is 0.5 for both.
 */
function normalizeTarget(v: unknown): Partial<Record<'prefill' | 'decode', number>> {
  if (typeof v === 'number') return { prefill: v, decode: v };
  const o = (v && typeof v === 'object' ? v : {}) as Record<string, unknown>;
  const out: Partial<Record<'prefill' | 'decode', number>> = {};
  for (const phase of ['prefill', 'decode'] as const) if (typeof o[phase] === 'number') out[phase] = o[phase] as number;
  return Object.keys(out).length ? out : { prefill: 0.5, decode: 0.5 };
}
