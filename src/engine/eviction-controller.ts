/**
 * Cache eviction in the engine, the way OpenVINO GenAI's pipeline drives it
 * (ContinuousBatchingImpl::_maybe_evict_cache_blocks), one CacheEvictionAlgorithm per sequence:
 *   - every step, each scheduled chunk that attended to all of its cache (no skipped blocks: sparse
 *     prefill's dense stages and decode) registers its scores, the attention its last N queries paid to
 *     each cached token, N from the SnapKV window (snapkvScoresToAggregate);
 *   - once the sequence's prompt is done (the step that finishes the prompt included), the algorithm
 *     picks blocks per layer and the cache frees them; the scheduler is told the evicted token count.
 * It also keeps, per layer, the position of the token in each cache slot, for references and reports.
 */
import { AggregationMode, type CacheEvictionConfig } from '../config/cache-eviction-config.js';
import type { SchedulerConfig } from '../config/openvino.js';
import { adaptiveRkvDiversity } from './adaptive-rkv.js';
import { CacheEvictionAlgorithm } from './cache-eviction.js';
import { snapkvScoresToAggregate } from './eviction-scores.js';
import type { PagedKvCache } from './paged-kv-cache.js';

/** OpenVINO's pipeline max-pools new scores over 7 following tokens (MAX_POOL_WINDOW_SIZE). */
export const EVICTION_MAX_POOL_WINDOW = 7;

/**
 * KV blocks (per layer) a sequence may need at once with eviction on: the whole prompt (no eviction
 * during prefill), or maxCacheSize + one block during generation, never more than its total length.
 */
export function evictionBlockBound(c: CacheEvictionConfig, blockSize: number, promptLength: number, totalLength: number): number {
  return Math.ceil(Math.min(totalLength, Math.max(promptLength, c.maxCacheSize + blockSize)) / blockSize);
}

interface SequenceEviction {
  algo: CacheEvictionAlgorithm;
  /** Per layer, the position of the token in each cache slot. */
  positions: number[][];
}

export interface ChunkWhere {
  seqId: number;
  promptLength: number;
  /** Position of the chunk's first token. */
  start: number;
  length: number;
}

export class EvictionController {
  private readonly seqs = new Map<number, SequenceEviction>();

  constructor(readonly config: SchedulerConfig, readonly cache: PagedKvCache) {}

  /** Queries of the chunk whose attention is scored (0: none this step). */
  scoredQueries(c: ChunkWhere): number {
    return snapkvScoresToAggregate(this.config.cacheEvictionConfig.snapkvWindowSize, c.promptLength, c.length, c.start);
  }

  /** Records the chunk's tokens in the slots after the sequence's cached ones. */
  appendTokens(c: ChunkWhere): void {
    const s = this.sequence(c.seqId);
    for (const p of s.positions) for (let i = 0; i < c.length; i++) p.push(c.start + i);
  }

  /** Per layer, the scores of the chunk's scored queries over every cached token. */
  registerScores(c: ChunkWhere, layerScores: readonly ArrayLike<number>[], scoredQueries: number): void {
    this.sequence(c.seqId).algo.registerTokenScores(layerScores, [], scoredQueries);
  }

  /**
   * After the step: evicts if the prompt is done. Returns the tokens evicted (per layer; every layer
   * evicts as many).
   */
  evictAfterStep(c: ChunkWhere): number {
    if (c.start + c.length < c.promptLength) return 0;
    const s = this.sequence(c.seqId);
    if (this.config.cacheEvictionConfig.aggregationMode === AggregationMode.ADAPTIVE_RKV) this.registerDiversity(c.seqId, s);
    const perLayer = s.algo.evictLogicalBlocks();
    if (perLayer[0].length === 0) return 0;
    const bs = this.cache.blockSize;
    this.cache.evictBlocks(c.seqId, perLayer, s.positions[0].length);
    perLayer.forEach((blocks, layer) => {
      const gone = new Set(blocks);
      s.positions[layer] = s.positions[layer].filter((_, slot) => !gone.has(Math.floor(slot / bs)));
    });
    return perLayer[0].length * bs;
  }

  /** Positions of the tokens a layer's cache holds for the sequence, in slot order. */
  cachedPositions(seqId: number, layer: number): number[] {
    return [...(this.seqs.get(seqId)?.positions[layer] ?? [])];
  }

  /** Forgets a sequence (finished, or preempted: its replay starts a fresh algorithm). */
  drop(seqId: number): void {
    this.seqs.delete(seqId);
  }

  private sequence(seqId: number): SequenceEviction {
    let s = this.seqs.get(seqId);
    if (!s) {
      const algo = new CacheEvictionAlgorithm(this.config.cacheEvictionConfig, this.cache.blockSize, this.cache.numLayers, EVICTION_MAX_POOL_WINDOW);
      s = { algo, positions: Array.from({ length: this.cache.numLayers }, () => []) };
      this.seqs.set(seqId, s);
    }
    return s;
  }

  /** The kernel's Adaptive R-KV diversity of each layer's evictable area, when an eviction is due. */
  private registerDiversity(seqId: number, s: SequenceEviction): void {
    const [first, end] = s.algo.evictableBlockRange();
    if (end <= first) return;
    const blocks = Array.from({ length: end - first }, (_, i) => first + i);
    const length = s.positions[0].length;
    const perLayer = Array.from({ length: this.cache.numLayers }, (_, layer) => {
      const { k } = this.cache.gatherBlocks(layer, this.cache.blockTable(seqId, layer), blocks, length);
      return adaptiveRkvDiversity(k.toFloat32Array(), k.heads, k.length, k.headDim, this.cache.blockSize);
    });
    s.algo.registerBlockDiversity(perLayer);
  }
}
