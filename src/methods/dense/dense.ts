/**
 * Dense attention as a method: keeps every (causally valid) block. The baseline every sparse
 * method is measured against, and the plan that makes a block-sparse kernel compute dense attention.
 */
import { describeAttention } from '../../core/attention-shape.js';
import { BlockMask } from '../../core/block-mask.js';
import { checkScores, type Scores } from '../../core/scores.js';
import { phaseOf, statsFromMask } from '../../core/stats.js';
import type { HeadTensor } from '../../core/tensor.js';
import { rejectUnknownKeys } from '../../core/validate.js';
import { blockSizeSettings } from '../settings.js';
import { type BlockPlan, maskScores, type PlanOptions, type SparseAttentionMethod, type SparsityResult, type ThresholdInfo } from '../method.js';

export class DenseMethod implements SparseAttentionMethod {
  static readonly description = 'dense attention, every block kept (the baseline)';
  readonly name = 'dense';
  readonly version = 'v1';
  readonly br: number;
  readonly bc: number;

  constructor(settings: Record<string, unknown> = {}) {
    rejectUnknownKeys('dense setting', settings, ['br', 'bc']);
    ({ br: this.br, bc: this.bc } = blockSizeSettings('dense', settings, { br: 128, bc: 128 }));
  }

  calculateSparsity(scores: Scores): SparsityResult {
    checkScores(scores);
    const mask = new Uint8Array(scores.data.length);
    for (let i = 0; i < mask.length; i++) mask[i] = scores.data[i] === -Infinity ? 0 : 1;
    const n = scores.batch * scores.heads;
    const blocks = Math.ceil(scores.queryLength / this.br) * Math.ceil(scores.keyLength / this.bc) * n;
    return { mask, stats: { method: this.name, phase: phaseOf(scores.queryLength), totalBlocks: blocks, keptBlocks: blocks, sparsity: 0 } };
  }

  applySparsity(scores: Scores, mask?: Uint8Array): Scores {
    return maskScores(scores, mask ?? this.calculateSparsity(scores).mask);
  }

  getThresholdInfo(): ThresholdInfo {
    return { type: 'none' };
  }

  planBlockMask(q: HeadTensor, k: HeadTensor, opts: PlanOptions): BlockPlan {
    const p = describeAttention(q, k, k, opts);
    // The plan does not read values, but a plan for NaN inputs would promise an output there is none of.
    q.assertFinite('q');
    k.assertFinite('k');
    const mask = BlockMask.full({
      batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength,
      blockRows: this.br, blockCols: this.bc, causal: p.causal,
    });
    return { mask, stats: { ...statsFromMask(this.name, mask), phase: opts.phase ?? phaseOf(p.queryLength) } };
  }
}
