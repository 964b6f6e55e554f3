/**
 * What one scheduled chunk of one sequence may attend to, decided before any attention runs
 * (OpenVINO GenAI puts the same facts in its scheduler output): the logical KV blocks it skips
 * (TRISHAPE), the XAttention threshold (XATTENTION, null = dense), and so the visible blocks.
 * Layer- and head-independent; a method's block mask (XAttention) is planned per layer later.
 */
import { type SchedulerConfig, SparseAttentionMode } from '../config/openvino.js';
import { TriShapeTokenSkipper } from '../methods/tri-shape/trishape-skipper.js';
import { xattentionChunkThreshold } from '../methods/xattention/xattention-chunk-rule.js';

export type ChunkAttentionKind = 'dense' | 'trishape' | 'xattention';

export interface ChunkPlan {
  kind: ChunkAttentionKind;
  /** Logical blocks of the sequence the chunk does not attend to (ascending). */
  skippedBlocks: number[];
  /** Logical blocks it attends to: every block of [0, start + length) not skipped (ascending). */
  visibleBlocks: number[];
  /** XAttention threshold for this chunk; null when the chunk is dense. */
  xattentionThreshold: number | null;
}

export interface ChunkToPlan {
  promptLength: number;
  /** Tokens of the sequence already in the cache (processed before this chunk). */
  start: number;
  length: number;
}

/** Builds chunk plans from a parsed SchedulerConfig. */
export class SparsePrefillPlanner {
  private readonly skipper: TriShapeTokenSkipper | null;

  constructor(readonly config: SchedulerConfig) {
    const sa = config.sparseAttentionConfig;
    this.skipper = config.useSparseAttention && sa.mode === SparseAttentionMode.TRISHAPE
      ? new TriShapeTokenSkipper(config.kvBlockSize, sa.numLastDenseTokensInPrefill, sa.numRetainedStartTokensInCache, sa.numRetainedRecentTokensInCache)
      : null;
  }

  plan(chunk: ChunkToPlan): ChunkPlan {
    const { promptLength, start, length } = chunk;
    const sa = this.config.sparseAttentionConfig;
    let kind: ChunkAttentionKind = 'dense';
    let skippedBlocks: number[] = [];
    let xattentionThreshold: number | null = null;
    // OpenVINO applies the skipper only while the chunk stays inside the prompt (after <= promptLength).
    if (this.skipper && start + length <= promptLength) {
      skippedBlocks = this.skipper.skippedBlocks({ promptLength, processed: start, scheduled: length });
      if (skippedBlocks.length > 0) kind = 'trishape';
    } else if (this.config.useSparseAttention && sa.mode === SparseAttentionMode.XATTENTION) {
      xattentionThreshold = xattentionChunkThreshold({ promptLength, processed: start, scheduled: length }, sa.xattentionThreshold, sa.numLastDenseTokensInPrefill);
      if (xattentionThreshold !== null) kind = 'xattention';
    }
    const skipped = new Set(skippedBlocks);
    const visibleBlocks: number[] = [];
    const numBlocks = Math.ceil((start + length) / this.config.kvBlockSize);
    for (let b = 0; b < numBlocks; b++) if (!skipped.has(b)) visibleBlocks.push(b);
    return { kind, skippedBlocks, visibleBlocks, xattentionThreshold };
  }
}
