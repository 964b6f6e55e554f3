/**
 * The one contract every backend meets, for the API, the engine and the benchmarks:
 *
 *   blockSparseAttention(q, k, v, mask)   softmax attention over a planned BlockMask (dense = full mask)
 *   pagedAttention(input)                 one sequence's query chunk over a paged KV cache (the engine's call)
 *   methodHooks(method)                   optional: this backend's own work for a method (plan / run / time);
 *                                         undefined → the generic path (the method's CPU plan, then the kernel)
 *
 * Async because GPU backends are. Names, aliases and the table that loads backends lazily live in
 * backends/index.ts.
 */
import type { AttentionOptions } from '../core/attention-shape.js';
import type { BlockMask } from '../core/block-mask.js';
import type { HeadTensor } from '../core/tensor.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../methods/method.js';


import { InvalidArgumentError } from '../core/errors.js';

/** Every backend, by the name a user writes; backends/index.ts has one loader per name. */
export const BACKEND_NAMES = ['cpu', 'webgpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
/** 'auto': WebGPU when an adapter exists, else the CPU. */
export type BackendChoice = BackendName | 'auto';
export const BACKEND_CHOICES: readonly BackendChoice[] = [...BACKEND_NAMES, 'auto'];
/** Other names accepted for a backend: "pytorch" is ModelOpt's name for the reference implementation (our CPU backend). */
export const BACKEND_ALIASES: Readonly<Record<string, BackendName>> = { pytorch: 'cpu' };

/** A backend name, alias or 'auto' as written by a user → the choice; the error names `field` and every accepted name. */
export function parseBackendChoice(field: string, value: unknown): BackendChoice {
  if (typeof value === 'string') {
    if ((BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
    if (value in BACKEND_ALIASES) return BACKEND_ALIASES[value];
  }
  throw new InvalidArgumentError(field, value, `one of ${BACKEND_CHOICES.map((c) => `"${c}"`).join(', ')}`);
}

/**
 * What a paged-attention kernel reads of the engine's cache: per layer, keys and values as
 * Float32Array [numBlocks, Hkv, blockSize, D]. The engine's PagedKvCache is one.
 */
export interface PagedKvView {
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
  /** K and V [1, Hkv, n, D] of `logicalBlocks` (ascending) below `contextLength`, in position order. */
  gatherBlocks(layer: number, blockTable: readonly number[], logicalBlocks: readonly number[], contextLength: number): { k: HeadTensor; v: HeadTensor };
  /**
   * Optional (the engine's PagedKvCache has it): a resident copy a backend attached, which the cache
   * writes through to, so a backend reads the cache where it lives instead of uploading it per call.
   */
  readonly deviceCopy?: PagedKvDeviceCopy | null;
  attachDeviceCopy?(copy: PagedKvDeviceCopy | null): void;
}

/**
 * A backend's copy of a paged cache's storage, same layout ([numBlocks, Hkv, blockSize, D] per
 * layer). The cache calls writeRows with each contiguous run of newly written rows (element offset
 * into the layer, the host rows of K and V); dispose frees the copy.
 */
export interface PagedKvDeviceCopy {
  writeRows(layer: number, elementOffset: number, k: Float32Array, v: Float32Array): void;
  dispose(): void;
}

/**
 * One sequence's query chunk over its paged KV cache:
 *   q [1, H, n, D]: tokens [start, start + n) of the sequence, start + n = contextLength
 *   keys: the tokens of `visibleBlocks` (logical blocks, ascending) below contextLength, gathered in
 *     position order; the chunk's own blocks are always visible, so the queries are the last n
 *     gathered keys and a causal mask with right-aligned queries is exactly "key position <= query position".
 *   mask (optional): a method's block mask over (n queries × gathered keys), causal; default every block.
 *   → out [1, H, n, Dv]
 */
export interface PagedAttentionInput {
  cache: PagedKvView;
  layer: number;
  /** Logical → physical block ids of the sequence. */
  blockTable: readonly number[];
  q: HeadTensor;
  /** Tokens of the sequence in the cache, this chunk included. */
  contextLength: number;
  visibleBlocks: readonly number[];
  mask?: BlockMask;
  scale?: number;
}

/** How a benchmark asks a backend to time a method on inputs uploaded once. */
export interface TimingRuns {
  iterations: number;
  /** Minimum warm-up before the timed series (GPU clocks ramp up under load). */
  warmMs?: number;
  warmRuns?: number;
  /** Also split one run into per-kernel times where the backend can (timestamp queries). */
  profile?: boolean;
}

export interface TimedRuns {
  /** Milliseconds of each timed run. */
  ms: number[];
  /** Per-kernel milliseconds of one profiled run, by program label. */
  kernelMs?: Record<string, number>;
}

/** Where a paged chunk's keys live: the visible blocks of a layer of the engine's cache, below contextLength. */
export type PagedKeys = Pick<PagedAttentionInput, 'cache' | 'layer' | 'blockTable' | 'contextLength' | 'visibleBlocks'>;

/** A backend's own work for one method instance. Every hook is optional. */
export interface MethodHooks {
  /** The method's plan made on this backend (e.g. XAttention's estimation on the GPU); same mask as the method's planBlockMask. */
  plan?(q: HeadTensor, k: HeadTensor, opts: PlanOptions): Promise<BlockPlan>;
  /** As `plan`, over keys read where the paged cache keeps them (the engine's call: no gather on the host, no upload). */
  planPaged?(q: HeadTensor, keys: PagedKeys, opts: PlanOptions): Promise<BlockPlan>;
  /** The method run whole on this backend (plan and attention, no CPU step). */
  run?(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions): Promise<{ output: HeadTensor; plan: BlockPlan }>;
  /** Benchmarks: times `run` on inputs uploaded once (GPU work alone). */
  time?(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions, runs: TimingRuns): Promise<TimedRuns>;
}

export interface AttentionBackend {
  readonly name: BackendName;
  /** q [B, H, Lq, D], k/v [B, Hkv, Lk, D] → [B, H, Lq, Dv] in q's layout. */
  blockSparseAttention(q: HeadTensor, k: HeadTensor, v: HeadTensor, mask: BlockMask, opts: AttentionOptions): Promise<HeadTensor>;
  /** See PagedAttentionInput. Reference twin: naivePagedAttention (backends/cpu/paged.ts). */
  pagedAttention(input: PagedAttentionInput): Promise<HeadTensor>;
  /** This backend's own work for `method`, or undefined when the generic path applies. */
  methodHooks?(method: SparseAttentionMethod): MethodHooks | undefined;
  dispose?(): void;
}
