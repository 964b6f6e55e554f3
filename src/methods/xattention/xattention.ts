/**
 * XAttention (arXiv 2503.16428, spec xattention.md) as a registered method: estimate each B×B
 * block's attention mass from strided antidiagonal sums (xattention-estimate.ts), keep the fewest
 * blocks holding a fraction tau of each query block's mass, run exact attention on those.
 *
 * Defaults follow OpenVINO GenAI's SparseAttentionConfig (tau 0.8, B 64, S 8); the reference code
 * uses B 128. `dense: true` skips estimation (GenAI overloads threshold 0 for that; we do not).
 */
import { describeAttention } from '../../core/attention-shape.js';
import { BlockMask } from '../../core/block-mask.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { checkScores, type Scores } from '../../core/scores.js';
import { phaseOf, statsFromMask } from '../../core/stats.js';
import type { HeadTensor } from '../../core/tensor.js';
import { type BlockPlan, maskScores, type PlanOptions, type SparseAttentionMethod, type SparsityResult, type ThresholdInfo } from '../method.js';
import { checkXAttentionParams, estimateXAttention, selectFromAntidiagonals, type XAttentionParams } from './antidiagonal-estimate.js';

export interface XAttentionSettings extends XAttentionParams {
  /** Keep every causally valid block and skip estimation. Default false. */
  dense: boolean;
  /**
   * Causality for calculateSparsity only (a score matrix carries no flag); planBlockMask takes it
   * from the call. Default true (LLM prefill).
   */
  causal: boolean;
}

export const XATTENTION_DEFAULTS: Readonly<XAttentionSettings> = { threshold: 0.8, blockSize: 64, stride: 8, dense: false, causal: true };

export function xattentionSettings(settings: Record<string, unknown> = {}): XAttentionSettings {
  for (const key of Object.keys(settings)) {
    if (!(key in XATTENTION_DEFAULTS)) throw new InvalidArgumentError('xattention setting', key, `one of ${Object.keys(XATTENTION_DEFAULTS).join(', ')}`);
  }
  const s = { ...XATTENTION_DEFAULTS, ...settings } as XAttentionSettings;
  for (const flag of ['dense', 'causal'] as const) {
    if (typeof s[flag] !== 'boolean') throw new InvalidArgumentError(`xattention.${flag}`, s[flag], 'a boolean');
  }
  checkXAttentionParams(s);
  return s;
}

export class XAttentionMethod implements SparseAttentionMethod {
  static readonly description = 'XAttention: antidiagonal block estimation, keep tau of each query block\'s mass';
  readonly name = 'xattention';
  readonly version = 'v1';
  readonly settings: XAttentionSettings;

  constructor(settings: Record<string, unknown> = {}) {
    this.settings = xattentionSettings(settings);
  }

  /**
   * The same estimation as planBlockMask, from a score matrix (scale·QKᵀ, [B, H, Lq, Lk]):
   * A[i, j] = Σ_s scores[i·S + S-1-s, j·S + s] / S, tokens past the ends counting as the zero
   * padding. Entries already -Infinity (a causally masked matrix) count as 0 in the sums, so pass
   * unmasked scores to reproduce planBlockMask exactly. Returns the expanded token mask.
   */
  calculateSparsity(scores: Scores): SparsityResult {
    checkScores(scores);
    const { batch, heads, queryLength: Lq, keyLength: Lk } = scores;
    const causal = this.settings.causal;
    if (causal && Lq > Lk) throw new InvalidArgumentError('scores.queryLength', Lq, `at most keyLength (${Lk}) for causal xattention`);
    const dims = { batch, heads, queryLength: Lq, keyLength: Lk, causal };
    const blocks = this.settings.dense
      ? BlockMask.full({ ...dims, blockRows: this.settings.blockSize, blockCols: this.settings.blockSize })
      : selectFromAntidiagonals(dims, this.settings, (b, h) => scoreAntidiagonals(scores, b, h, this.settings.stride)).mask;
    const mask = new Uint8Array(scores.data.length);
    for (let b = 0; b < batch; b++)
      for (let h = 0; h < heads; h++) {
        const token = blocks.expand(b, h);
        const base = (b * heads + h) * Lq * Lk;
        for (let t = 0; t < token.length; t++) mask[base + t] = token[t] && scores.data[base + t] !== -Infinity ? 1 : 0;
      }
    return { mask, stats: statsFromMask(this.name, blocks) };
  }

  applySparsity(scores: Scores, mask?: Uint8Array): Scores {
    return maskScores(scores, mask ?? this.calculateSparsity(scores).mask);
  }

  getThresholdInfo(): ThresholdInfo {
    if (this.settings.dense) return { type: 'none' };
    const { threshold, blockSize, stride } = this.settings;
    return { type: 'dynamic', value: threshold, blockSize, stride };
  }

  planBlockMask(q: HeadTensor, k: HeadTensor, opts: PlanOptions): BlockPlan {
    const p = describeAttention(q, k, k, opts);
    const phase = opts.phase ?? phaseOf(p.queryLength);
    // NaN in the antidiagonal sums would keep every block: refuse it as sparseAttention does.
    q.assertFinite('q');
    k.assertFinite('k');
    if (this.settings.dense) {
      const B = this.settings.blockSize;
      const mask = BlockMask.full({ batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, blockRows: B, blockCols: B, causal: p.causal });
      return { mask, stats: { ...statsFromMask(this.name, mask), phase } };
    }
    const { mask, blockScores } = estimateXAttention(q, k, this.settings, { causal: p.causal, scale: p.scale });
    return { mask, blockScores, stats: { ...statsFromMask(this.name, mask, { threshold: this.settings.threshold }), phase } };
  }
}

/** Antidiagonal sums of one (batch, head) of a score matrix; see calculateSparsity. */
function scoreAntidiagonals(scores: Scores, b: number, h: number, S: number): (i: number, j: number) => number {
  const { queryLength: Lq, keyLength: Lk } = scores;
  const base = (b * scores.heads + h) * Lq * Lk;
  return (i, j) => {
    let acc = 0;
    for (let s = 0; s < S; s++) {
      const qi = i * S + S - 1 - s;
      const kj = j * S + s;
      if (qi >= Lq || kj >= Lk) continue;
      const v = scores.data[base + qi * Lk + kj];
      if (v !== -Infinity) acc += v;
    }
    return acc / S;
  };
}
