/// <reference types="@webgpu/types" />
/**
 * What one attention dispatch reads and how (both kernels: the portable skeleton and tensor cores):
 * GPU tensor views, the block list, paged KV, the token rule and the kernel choice.
 */
import type { HeadTokenRules, TokenRule } from '../../../core/token-rule.js';
import type { AttentionSpec } from './attention-program.js';
import type { GpuTensorView } from '../runtime/buffers.js';

export interface AttentionViews {
  /** [B, H, Lq, D] */
  q: GpuTensorView;
  /** [B, Hkv, Lk, D]; for paged KV a cache [numPages, Hkv, pageSize, D] (batch = pages, length = pageSize). */
  k: GpuTensorView;
  v: GpuTensorView;
  /** [B, H, Lq, Dv], written. */
  o: GpuTensorView;
}

export type BlockList =
  | { kind: 'all' }
  | { kind: 'csr'; rowPtr: GPUBuffer; colIdx: GPUBuffer; blockRows: number; blockCols: number };

export interface PagedKvBinding {
  /** Int32 [batch, tableStride]: logical key block → physical page of the cache. */
  blockTable: GPUBuffer;
  tableStride: number;
  /** Keys per page (the cache's length axis). */
  pageSize: number;
}

export interface AttentionDispatchOptions {
  causal: boolean;
  scale: number;
  /** Keys visible to the call; required with paged KV, else k.length. */
  keyLength?: number;
  blocks: BlockList;
  tokenRule?: TokenRule;
  /**
   * One rule (or none) per query head, instead of tokenRule: encodeAttention dispatches runs of heads
   * with equal rules (head-rule-split.ts). CSR rowPtr and paged block tables then need COPY_SRC usage.
   */
  headTokenRules?: HeadTokenRules;
  paged?: PagedKvBinding;
  /** See AttentionSpec.headDimLoop; default 'rolled' on software adapters, else 'unrolled'. */
  headDimLoop?: AttentionSpec['headDimLoop'];
  /**
   * 'auto' (default): the tensor-core kernel when the adapter and the call allow it, else the
   * portable skeleton; 'portable' / 'tensor-core' force one (the latter throws with the reason).
   */
  kernel?: 'auto' | 'portable' | 'tensor-core';
  /** Variant of the tensor-core kernel (subgroups, staging, passes); its defaults otherwise. */
  tensorCore?: TensorCoreOptions;
}

export interface TensorCoreOptions {
  /** 2 only with `emulate`: staged, its workgroup memory fits lavapipe's 32 KiB. */
  subgroups?: 2 | 4 | 8;
  /** Stage K/V tiles in workgroup memory (default: on when the views allow it). */
  stage?: boolean;
  /**
   * 1: one pass with lazy rescale (the default); 2: exact max and sum first, QKᵀ twice (default
   * only with 8 subgroups and 64-key tiles, whose scratch alone fills 48 KiB of workgroup memory).
   */
  passes?: 1 | 2;
  /** Workgroup-memory access order (tensor-core-attention.wgsl.ts; default 'scores'). */
  swizzle?: 'none' | 'scores' | 'staging' | 'both';
  /** Bench diagnostics that leave a stage out; the output is wrong (tensor-core-attention.wgsl.ts). */
  diag?: 'no-softmax' | 'no-mma' | 'rule-causal-scores' | 'rule-causal-tiles';
  /** QKᵀ as independent accumulator chains (default: when staged). */
  interleave?: boolean;
  /**
   * Test-only: run the kernel's data flow in plain WGSL instead of subgroup matrices (slow; any
   * adapter with shader-f16). Only taken when asked for, with `kernel: 'tensor-core'`.
   */
  emulate?: boolean;
  /** Keys per tile (default 16 at D128 with 4 subgroups, else 32; 64 was the default before 2026-12-04). */
  keyTile?: 16 | 32 | 64;
  /** Staged, one pass: the next K/V tile is loaded into registers while this one is multiplied (default on). */
  prefetch?: boolean;
  /** Prefetched: the next K tile's loads without a test for the last tile (which re-reads itself). */
  prefetchClamp?: boolean;
  /** A token rule's per-score test as one expression, no early returns (bench variant; default off). */
  ruleExpression?: boolean;
  /** Tiles each row sees all of or none of test a per-row constant (bench variant; default off). */
  ruleRowwise?: boolean;
  /** Skip tiles no row of the workgroup sees (causal block lists, token rules with a hidden-tile hook; default off since 2026-12-04's third session: 4–6% slower at tri-shape's defaults on the H200). */
  skipHidden?: boolean;
  /** Causal: the query tiles with the most keys start first (default on). */
  heavyFirst?: boolean;
  /** Causal, heavy first: heads innermost in the grid, so every head's heaviest query tile starts first (default on). */
  headsInner?: boolean;
  /** One pass: whole tiles run a copy of the softmax loops without the per-score visibility test (default on). */
  splitFull?: boolean;
  /** flash-skip mode: decide a tile before its softmax, so skipped tiles skip exp2 and V (default on). */
  voteFirst?: boolean;
}
