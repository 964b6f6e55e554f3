/**
 * What a backend offers the API and the engine: block-sparse softmax attention over a planned
 * BlockMask (dense attention is the full mask). Async because GPU backends are.
 */
import type { AttentionOptions } from '../core/attention-shape.js';
import type { BlockMask } from '../core/block-mask.js';
import type { HeadTensor } from '../core/tensor.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../methods/method.js';

export type BackendName = 'cpu' | 'webgpu';

export interface AttentionBackend {
  readonly name: BackendName;
  /** q [B, H, Lq, D], k/v [B, Hkv, Lk, D] → [B, H, Lq, Dv] in q's layout. */
  blockSparseAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, mask: BlockMask, opts: AttentionOptions): Promise<HeadTensor>;
  /**
   * A method run whole on this backend (plan and attention; GPU methods: no CPU step), or
   * undefined when the backend has no own path for it and the generic plan → kernel path applies.
   */
  methodAttention?(method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions): Promise<{ output: HeadTensor; plan: BlockPlan } | undefined>;
  dispose?(): void;
}
