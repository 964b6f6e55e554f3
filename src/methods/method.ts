/**
 * The contract every sparse-attention method meets (after ModelOpt's `SparseAttentionMethod`),
 * plus what our kernels need on top: a block mask planned from Q and K without the L×L scores.
 *
 *   calculateSparsity(scores) → { mask, stats }   token mask [B, H, Lq, Lk] (1 = keep) on given scores
 *   applySparsity(scores, mask?) → scores          masked entries set to -Infinity
 *   getThresholdInfo()                             what decides the mask (static / dynamic / none)
 *   planBlockMask(q, k, opts) → BlockPlan          the block mask a kernel runs, and its statistics
 */
import type { AttentionOptions } from '../core/attention-shape.js';
import type { BlockMask } from '../core/block-mask.js';
import type { Scores } from '../core/scores.js';
import type { Phase, SparsityStats } from '../core/stats.js';
import type { HeadTensor } from '../core/tensor.js';

export interface ThresholdInfo {
  type: 'static' | 'dynamic' | 'dynamic_calibrated' | 'none';
  value?: number | { prefill: number; decode: number };
  scaleFactor?: number;
  [key: string]: unknown;
}

export interface PlanOptions extends AttentionOptions {
  /** Defaults to the phase implied by the query length (decode when Lq = 1). */
  phase?: Phase;
  /**
   * This call's query rows are followed by this many more rows of the same call: a window cut from a
   * longer call, as calibration measures one. Rules about a call's last rows (tri-shape's last dense
   * queries) count them, so the window is planned as it is inside the whole call (but for its first
   * row when the whole window lies in that tail: a call's first row stays sparse). Default 0.
   */
  rowsAfter?: number;
  /**
   * This call is a chunk of a prompt prefilled in pieces, and the prompt continues with this many
   * tokens in later calls (their keys do not exist yet). Rules about a prompt's last rows (tri-shape's
   * last dense queries) count them, so that the chunks together plan what one call over the whole
   * prompt would; 0 marks the prompt's last chunk. Absent: the call is a whole prompt. Default absent.
   */
  promptRowsAfter?: number;
}

export interface BlockPlan {
  mask: BlockMask;
  stats: SparsityStats;
  /** Per-block importance when the method estimates one, [B, H, nQB, nKB] (XAttention block sums, SLA pooled scores). */
  blockScores?: Float32Array;
}

export interface SparsityResult {
  /** [B, H, Lq, Lk], 1 = keep. */
  mask: Uint8Array;
  stats: SparsityStats;
}

export interface SparseAttentionMethod {
  readonly name: string;
  readonly version: string;
  calculateSparsity(scores: Scores): SparsityResult;
  applySparsity(scores: Scores, mask?: Uint8Array): Scores;
  getThresholdInfo(): ThresholdInfo;
  planBlockMask(q: HeadTensor, k: HeadTensor, opts: PlanOptions): BlockPlan;
  /**
   * Causality when a call leaves `causal` out (its settings' flag: flash-skip-softmax's is_causal,
   * SLA's causal; tri-shape is causal only). Absent: false. `sparseAttention` decides it once from
   * here, before a backend is chosen, so every backend runs the same attention.
   */
  readonly defaultCausal?: boolean;
  /**
   * Methods whose output is not block-sparse softmax attention alone (SLA adds a linear part)
   * compute it here; others leave it undefined and run through a backend's block-sparse kernel.
   */
  attention?(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions): { output: HeadTensor; plan: BlockPlan };
}

/** A method class as the registry holds it: constructed from its (validated) settings. */
export interface SparseMethodClass {
  new (settings?: Record<string, unknown>): SparseAttentionMethod;
  /** One line for `sparse-attn methods`. */
  readonly description: string;
}

/** `applySparsity` from `calculateSparsity`, shared by every method. */
export function maskScores(scores: Scores, mask: Uint8Array): Scores {
  const data = new Float32Array(scores.data);
  for (let i = 0; i < data.length; i++) if (!mask[i]) data[i] = -Infinity;
  return { ...scores, data };
}
