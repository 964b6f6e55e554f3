/**
 * Block-granular KV cache eviction (OpenVINO GenAI's CacheEvictionAlgorithm; its table-driven C++
 * tests are reproduced in test/cache-eviction.test.ts). A sequence's logical cache is
 *
 *   | start area | evictable area ............ | recent area |
 *     startSize    maxCacheSize - start - recent  recentSize      (tokens, whole blocks)
 *
 * Start and recent tokens are never evicted. Once the cache holds at least one full block past
 * maxCacheSize, every layer evicts the lowest-scored whole blocks of the evictable range (all blocks
 * between the start area and the last recentSize tokens) until start + evictable + recent blocks
 * remain, so a sequence keeps at most maxCacheSize + blockSize - 1 tokens after each eviction. Ties
 * go to the lower block index. Layers choose their blocks independently (same count in each).
 *
 * Block score = Σ over the block's tokens of the running score (SUM), of score / lifetime
 * (NORM_SUM); ADAPTIVE_RKV keeps the blocks holding `attentionMass` of the evictable area's score and
 * fills the rest of the kept budget with the most diverse of the others (adaptive-rkv.ts).
 */
import { AggregationMode, type CacheEvictionConfig, evictableSize } from '../config/cache-eviction-config.js';
import { InvalidArgumentError, requireInteger, SparseAttentionError, UnsupportedError } from '../core/errors.js';
import { AdaptiveRKVBlockCalculator } from './adaptive-rkv.js';
import { EvictionScoreManager } from './eviction-scores.js';

/** Logical block range [first, end) that may be evicted now; [0, 0) before the cache overflows. */
export type EvictableRange = readonly [number, number];

export class CacheEvictionAlgorithm {
  readonly blockSize: number;
  readonly numLayers: number;
  readonly scoreManager: EvictionScoreManager;
  private evictedTokens = 0;
  private blockDiversity: number[][] | null = null;

  constructor(readonly config: CacheEvictionConfig, blockSize: number, numLayers: number, maxPoolWindow: number) {
    this.blockSize = requireInteger('blockSize', blockSize, 1);
    this.numLayers = requireInteger('num_decoder_layers', numLayers, 1);
    for (const field of ['startSize', 'recentSize', 'maxCacheSize'] as const) {
      if (config[field] % blockSize !== 0) throw new InvalidArgumentError(`CacheEvictionConfig.${field}`, config[field], `a multiple of the KV block size (${blockSize})`);
    }
    if (evictableSize(config) <= 0) throw new InvalidArgumentError('CacheEvictionConfig.maxCacheSize', config.maxCacheSize, `larger than startSize + recentSize (${config.startSize + config.recentSize})`);
    if (config.kvcrushConfig.budget > 0 && config.aggregationMode !== AggregationMode.ADAPTIVE_RKV) {
      throw new UnsupportedError(`KVCrush (kvcrushConfig.budget ${config.kvcrushConfig.budget}) is not implemented; set budget 0`);
    }
    this.scoreManager = new EvictionScoreManager({
      blockSize, numLayers, maxPoolWindow, mode: config.aggregationMode, ignoreFirstNBlocks: config.startSize / blockSize,
      snapkvWindowSize: config.snapkvWindowSize, adaptiveRkvWindowSize: config.adaptiveRkvConfig.windowSize,
    });
  }

  /** The most tokens a sequence keeps after an eviction step. */
  get maxCacheSizeAfterEviction(): number {
    return this.config.maxCacheSize + this.blockSize - 1;
  }

  /** Tokens evicted so far (whole blocks, counted once per sequence, not per layer). */
  get numEvictedTokens(): number {
    return this.evictedTokens;
  }

  evictableBlockRange(layer = 0): EvictableRange {
    const length = this.config.startSize + this.scoreManager.scores[layer].length;
    if (length <= this.maxCacheSizeAfterEviction) return [0, 0];
    return [this.config.startSize / this.blockSize, Math.floor(length / this.blockSize) - this.config.recentSize / this.blockSize];
  }

  /** See EvictionScoreManager.register. */
  registerTokenScores(layerScores: readonly ArrayLike<number>[], skippedBlocks: Iterable<number> = [], numSnapkvScores = 0): void {
    this.scoreManager.register(layerScores, skippedBlocks, numSnapkvScores);
  }

  /**
   * ADAPTIVE_RKV: per layer, the diversity of the evictable area as the kernel gives it,
   * [evictable blocks, evictable tokens] row-major (adaptiveRkvDiversity). Needed before each
   * eviction that removes blocks.
   */
  registerBlockDiversity(perLayer: readonly ArrayLike<number>[]): void {
    if (this.blockDiversity) throw new SparseAttentionError('block diversity is already registered; evict before registering new diversity');
    if (perLayer.length !== this.numLayers) throw new InvalidArgumentError('diversity per layer', perLayer.length, `${this.numLayers} (one per layer)`);
    this.blockDiversity = perLayer.map((d) => {
      if (d.length % this.blockSize !== 0) throw new InvalidArgumentError('diversity values', d.length, `a multiple of the block size ${this.blockSize}`);
      return Array.from(d);
    });
  }

  /**
   * Per layer, the logical block ids to evict now (ascending, counted over the whole cache, start
   * area included); forgets their scores. Empty lists while the cache has not overflowed.
   */
  evictLogicalBlocks(): number[][] {
    const out: number[][] = [];
    const startBlocks = Math.ceil(this.config.startSize / this.blockSize);
    let evictedBlocks = 0;
    for (let layer = 0; layer < this.numLayers; layer++) {
      if (this.config.startSize + this.scoreManager.scores[layer].length <= this.maxCacheSizeAfterEviction) {
        out.push([]);
        continue;
      }
      const blockScores = this.evictableBlockScores(layer);
      const evicted = this.config.aggregationMode === AggregationMode.ADAPTIVE_RKV
        ? this.adaptiveRkvEvictions(layer, blockScores)
        : lowestScored(blockScores, this.numBlocksToEvict(layer));
      evictedBlocks = evicted.length;
      this.scoreManager.removeScores(evicted, layer);
      out.push(evicted.map((b) => b + startBlocks));
    }
    this.evictedTokens += evictedBlocks * this.blockSize;
    this.blockDiversity = null;
    return out;
  }

  private numBlocksToEvict(layer: number): number {
    const [first, end] = this.evictableBlockRange(layer);
    const keep = Math.ceil(evictableSize(this.config) / this.blockSize);
    return Math.max(0, end - first - keep);
  }

  private evictableBlockScores(layer: number): number[] {
    const scores = this.scoreManager.scores[layer];
    const counters = this.scoreManager.counters[layer];
    const [first, end] = this.evictableBlockRange(layer);
    const norm = this.config.aggregationMode === AggregationMode.NORM_SUM;
    const out: number[] = [];
    for (let b = 0; b < end - first; b++) {
      let s = 0;
      for (let j = 0; j < this.blockSize; j++) {
        const t = b * this.blockSize + j;
        s += norm ? scores[t] / counters[t] : scores[t];
      }
      out.push(s);
    }
    return out;
  }

  private adaptiveRkvEvictions(layer: number, blockScores: number[]): number[] {
    if (!this.blockDiversity) throw new SparseAttentionError('ADAPTIVE_RKV: block diversity must be registered before each eviction');
    const n = blockScores.length;
    const diversity = this.blockDiversity[layer];
    if (diversity.length !== n * n * this.blockSize) {
      throw new InvalidArgumentError('registered diversity values', diversity.length, `${n}·${n}·${this.blockSize} = ${n * n * this.blockSize} for ${n} evictable blocks`);
    }
    const calc = new AdaptiveRKVBlockCalculator(this.config.adaptiveRkvConfig.attentionMass, this.blockSize);
    const maxKept = Math.floor(evictableSize(this.config) / this.blockSize);
    const { diversityBlocks, keptForMass } = calc.diversityBlockSet(maxKept, blockScores);
    const toFill = maxKept - keptForMass;
    if (toFill === 0) return [...diversityBlocks].sort((a, b) => a - b);
    const filtered = calc.filteredBlockDiversity(diversity, n * this.blockSize, diversityBlocks);
    const diverse = calc.mostDiverseBlocks(toFill, diversityBlocks, filtered);
    return [...diversityBlocks].filter((b) => !diverse.has(b)).sort((a, b) => a - b);
  }
}

/** Indices of the `count` lowest scores, ties to the lower index, ascending. */
export function lowestScored(scores: readonly number[], count: number): number[] {
  if (count > scores.length) throw new InvalidArgumentError('blocks to evict', count, `at most the ${scores.length} evictable blocks`);
  const order = scores.map((s, i) => [s, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return order.slice(0, count).map(([, i]) => i).sort((a, b) => a - b);
}
