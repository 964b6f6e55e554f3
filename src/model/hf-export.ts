/**
 * ModelOpt's export of a sparsified model's attention settings for serving engines
 * (export_sparse_attention_config): the `sparse_attention_config` block of the model's HF
 * config.json (config/hf-sparse-attention.ts), from what `sparsify` configured and calibrated.
 *
 * As in ModelOpt: modules kept dense form the ignore list; the calibration parameters, target and
 * initial_disabled_steps come from the first enabled module that has them; N:M metadata from the first
 * enabled module whose entry sets export_sparse_softmax (with ModelOpt's defaults for fields it leaves
 * out); no calibration and no N:M metadata: no block (null).
 */
import { MODELOPT_ONLY_DEFAULTS } from '../config/attribute-config.js';
import { UnsupportedError } from '../core/errors.js';
import { PRODUCER, type SparseAttentionExport, type SparseSoftmaxMetadata, sparseAttentionHfBlock } from '../config/hf-sparse-attention.js';
import type { FlashSkipCalibration } from '../methods/flash-skip-softmax/flash-skip-softmax.js';
import type { LlamaModel } from './llama.js';
import { sparsifiedModules } from './sparsify.js';

export { PRODUCER };

/** HF class of this library's Llama attention modules. */
export const LLAMA_ATTENTION_CLASS = 'LlamaAttention';

export function exportSparseAttentionConfig(model: LlamaModel, opts: { producer?: { name: string; version: string } } = {}): Record<string, unknown> | null {
  const e: SparseAttentionExport = {
    targets: [], ignore: [], calibrationParams: null, targetSparsity: null, initialDisabledSteps: 0, sparseSoftmax: null, producer: opts.producer ?? PRODUCER,
  };
  for (const m of sparsifiedModules(model)) {
    e.targets = [LLAMA_ATTENTION_CLASS];
    if (!m.enabled) {
      e.ignore.push(m.module.name);
      continue;
    }
    const settings = (m.module.method as unknown as { settings?: { calibrationParams?: FlashSkipCalibration } }).settings;
    if (e.calibrationParams === null && settings?.calibrationParams && (settings.calibrationParams.prefill || settings.calibrationParams.decode)) {
      e.calibrationParams = { ...settings.calibrationParams };
    }
    const entry = m.resolved.attributes ?? {};
    const perHead = m.resolved.attributes?.per_head;
    if (perHead !== undefined) {
      throw new UnsupportedError(`${m.module.name}: per_head values (${Object.keys(perHead as object).join(', ')}) have no place in ModelOpt's sparse_attention_config block, which serving engines (vLLM, TensorRT-LLM) read as one setting for every head; export a config without per_head, or keep the per-head config JSON for this library`);
    }
    if (e.targetSparsity === null) e.targetSparsity = m.targetSparseRatio ?? writtenTarget(m.resolved.settings);
    const config = { ...MODELOPT_ONLY_DEFAULTS, ...entry } as Record<string, unknown>;
    if (e.sparseSoftmax === null && config.export_sparse_softmax === true && (config.sparsity_n as number) > 0) {
      e.sparseSoftmax = Object.fromEntries(['sparsity_n', 'sparsity_m', 'dense_sink_tokens', 'dense_recent_tokens'].map((k) => [k, config[k]])) as unknown as SparseSoftmaxMetadata;
    }
    if (!e.initialDisabledSteps) e.initialDisabledSteps = (config.initial_disabled_steps as number) ?? 0;
  }
  return sparseAttentionHfBlock(e);
}

/** A target given with calibration_params in the config (restored checkpoints), as written. */
function writtenTarget(settings: Record<string, unknown>): Partial<Record<'prefill' | 'decode', number>> | null {
  const t = settings.target_sparse_ratio;
  return t && typeof t === 'object' ? { ...(t as Record<'prefill' | 'decode', number>) } : null;
}
