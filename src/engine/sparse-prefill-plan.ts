/**
 * What one scheduled chunk of one sequence may attend to, decided before any attention runs
 * (OpenVINO GenAI puts the same facts in its scheduler output). The sparse prefill mode of the
 * config names a method through the registry (the descriptor whose engine hook serves that mode:
 * tri_shape for TRISHAPE, xattention for XATTENTION); its planner gives the logical KV blocks the
 * chunk skips and the settings of a per-layer block mask (null = none), and so the visible blocks.
 * Layer- and head-independent; the mask itself is planned per layer by the engine.
 */
import { type SchedulerConfig, SparseAttentionMode } from '../config/openvino.js';
import { SparseAttentionError, UnsupportedError } from '../core/errors.js';
import type { ChunkDecision, EngineChunk, MethodDescriptor } from '../methods/descriptor.js';
import { sparseMethods } from '../methods/index.js';

/** 'dense', or the engine kind of the method that made the chunk sparse ('trishape', 'xattention'). */
export type ChunkAttentionKind = string;

export interface ChunkPlan {
  kind: ChunkAttentionKind;
  /** Logical blocks of the sequence the chunk does not attend to (ascending). */
  skippedBlocks: number[];
  /** Logical blocks it attends to: every block of [0, start + length) not skipped (ascending). */
  visibleBlocks: number[];
  /** The method whose block mask each layer plans over the visible keys; null: no mask. */
  mask: { method: string; settings: Record<string, unknown> } | null;
  /** The method's threshold for this chunk (XAttention's tau); null when the chunk is dense or has none. */
  threshold: number | null;
}

export type ChunkToPlan = EngineChunk;

/** The registered method that serves a sparse prefill mode, or an error naming the mode. */
export function engineMethodFor(mode: SparseAttentionMode): MethodDescriptor {
  const name = SparseAttentionMode[mode];
  const d = sparseMethods.descriptors().find((m) => m.engine?.mode === name);
  if (!d) throw new UnsupportedError(`sparse prefill mode ${name} needs a registered method with an engine hook for it; none is registered in this build`);
  return d;
}

/** Builds chunk plans from a parsed SchedulerConfig. */
export class SparsePrefillPlanner {
  private readonly method: MethodDescriptor | null;
  private readonly decide: ((chunk: EngineChunk) => ChunkDecision | null) | null;

  constructor(readonly config: SchedulerConfig) {
    this.method = config.useSparseAttention ? engineMethodFor(config.sparseAttentionConfig.mode) : null;
    this.decide = this.method ? this.method.engine!.planner(config) : null;
  }

  /**
   * `cacheStart`: the chunk's first cache slot (default `chunk.start`; less once blocks were evicted).
   * Methods decide by position; eviction only starts after the prompt, where they plan dense chunks.
   */
  plan(chunk: ChunkToPlan, cacheStart = chunk.start): ChunkPlan {
    const decision = this.decide?.(chunk) ?? null;
    const skippedBlocks = decision?.skippedBlocks ?? [];
    const mask = decision?.maskSettings ? { method: this.method!.name, settings: decision.maskSettings } : null;
    const sparse = decision !== null && (skippedBlocks.length > 0 || mask !== null);
    if (sparse && cacheStart !== chunk.start) {
      throw new SparseAttentionError(`internal error: ${this.method!.name} planned a sparse chunk at position ${chunk.start} of a sequence with evicted blocks`);
    }
    const skipped = new Set(skippedBlocks);
    const visibleBlocks: number[] = [];
    const numBlocks = Math.ceil((cacheStart + chunk.length) / this.config.kvBlockSize);
    for (let b = 0; b < numBlocks; b++) if (!skipped.has(b)) visibleBlocks.push(b);
    return { kind: sparse ? this.method!.engine!.kind : 'dense', skippedBlocks, visibleBlocks, mask, threshold: decision?.threshold ?? null };
  }
}
