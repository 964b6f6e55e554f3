/**
 * Per-token importance scores for cache eviction, kept per layer over a sequence's cached tokens
 * (OpenVINO GenAI's EvictionScoreManager and SnapKVScoreAggregationCalculator, same rules and test
 * tables: test/cache-eviction-scores.test.ts).
 *
 * Each registration brings, per layer, one score per cached token (the attention probabilities the
 * token received, summed over query heads and the step's scored queries). Scores of the first
 * `ignoreFirstNBlocks` blocks (the start area, never evicted) are dropped; the rest are max-pooled over
 * `maxPoolWindow` following tokens and then:
 *   SUM / NORM_SUM  added to the running sums (NORM_SUM also counts, per token, the queries that scored
 *                   it, its "lifetime", to divide by when blocks are ranked);
 *   ADAPTIVE_RKV    kept in a queue of the last `adaptiveRkvWindowSize` registrations; the score is the
 *                   mean over the queue, max-pooled again.
 * Registered scores may lack whole blocks (a sparse prefill chunk skipped them); those keep their sums.
 *
 * SnapKV: with `snapkvWindowSize` S > 0 only the last S prompt positions score the prompt, and the
 * lifetime counters start at S (S, ..., S, S-1, ..., 1 over the last S tokens) instead of L, L-1, ..., 1.
 */
import { AggregationMode } from '../config/cache-eviction-config.js';
import { InvalidArgumentError, requireInteger, SparseAttentionError } from '../core/errors.js';

export interface EvictionScoreManagerOptions {
  blockSize: number;
  numLayers: number;
  /** Window of the max-pooling of new scores (OpenVINO's pipeline uses 7; 0 and 1 mean none). */
  maxPoolWindow: number;
  mode: AggregationMode;
  /** Leading blocks whose scores are never tracked (the start area). */
  ignoreFirstNBlocks?: number;
  snapkvWindowSize?: number;
  adaptiveRkvWindowSize?: number;
}

interface ScoreRecord {
  score: number[];
  skips: ReadonlySet<number>;
}

/** dst[i] = max(src[i .. i + window)), the window cut at the end. */
export function maxPool(src: ArrayLike<number>, window: number): number[] {
  const out = new Array<number>(src.length);
  for (let i = 0; i < src.length; i++) {
    let m = src[i];
    for (let j = 1; j < window && i + j < src.length; j++) m = Math.max(m, src[i + j]);
    out[i] = m;
  }
  return out;
}

export class EvictionScoreManager {
  readonly blockSize: number;
  readonly numLayers: number;
  readonly maxPoolWindow: number;
  readonly mode: AggregationMode;
  readonly ignoreFirstNBlocks: number;
  readonly snapkvWindowSize: number;
  readonly adaptiveRkvWindowSize: number;
  /** Per layer, one running score per tracked token (tokens past the start area). */
  readonly scores: number[][];
  /** Per layer, NORM_SUM lifetimes (empty in the other modes). */
  readonly counters: number[][];
  private registeredSnapkvScores = 0;
  private readonly queues: ScoreRecord[][];

  constructor(o: EvictionScoreManagerOptions) {
    this.blockSize = requireInteger('blockSize', o.blockSize, 1);
    this.numLayers = requireInteger('numLayers', o.numLayers, 1);
    this.maxPoolWindow = requireInteger('maxPoolWindow', o.maxPoolWindow, 0);
    this.mode = o.mode;
    this.ignoreFirstNBlocks = requireInteger('ignoreFirstNBlocks', o.ignoreFirstNBlocks ?? 0, 0);
    this.snapkvWindowSize = requireInteger('snapkvWindowSize', o.snapkvWindowSize ?? 0, 0);
    this.adaptiveRkvWindowSize = requireInteger('adaptiveRkvWindowSize', o.adaptiveRkvWindowSize ?? 8, 1);
    this.scores = Array.from({ length: this.numLayers }, () => []);
    this.counters = Array.from({ length: this.numLayers }, () => []);
    this.queues = Array.from({ length: this.numLayers }, () => []);
  }

  /**
   * Registers one step's scores: `layerScores[layer][i]` for the i-th cached token that the step
   * attended to (tokens of `skippedBlocks`, logical block ids, are absent). `numSnapkvScores`: how many
   * query positions were summed into these scores while the SnapKV window fills (0 when SnapKV is off).
   */
  register(layerScores: readonly ArrayLike<number>[], skippedBlocks: Iterable<number> = [], numSnapkvScores = 0): void {
    if (layerScores.length !== this.numLayers) throw new InvalidArgumentError('scores per layer', layerScores.length, `${this.numLayers} (one per layer)`);
    const skipped = new Set(skippedBlocks);
    if (this.registeredSnapkvScores < this.snapkvWindowSize) {
      if (numSnapkvScores + this.registeredSnapkvScores > this.snapkvWindowSize) {
        throw new InvalidArgumentError('numSnapkvScores', numSnapkvScores, `at most the ${this.snapkvWindowSize - this.registeredSnapkvScores} positions left in the SnapKV window`);
      }
      this.registeredSnapkvScores += numSnapkvScores;
    }
    // Skipped blocks past the start area, renumbered from the first tracked block.
    const tracked = new Set([...skipped].filter((b) => b >= this.ignoreFirstNBlocks).map((b) => b - this.ignoreFirstNBlocks));
    const skippedInStart = skipped.size - tracked.size;
    for (let layer = 0; layer < this.numLayers; layer++) {
      const raw = layerScores[layer];
      if (raw.length <= this.ignoreFirstNBlocks * this.blockSize) return;
      const offset = (this.ignoreFirstNBlocks - skippedInStart) * this.blockSize;
      const window = this.mode === AggregationMode.ADAPTIVE_RKV ? 1 : this.maxPoolWindow;
      const pooled = maxPool(Array.prototype.slice.call(raw, offset) as number[], window);
      if (this.scores[layer].length === 0) this.initial(layer, pooled, numSnapkvScores, tracked);
      else this.accumulate(layer, pooled, tracked);
    }
  }

  /** Drops the tracked tokens of evicted blocks (indices counted from the first tracked block, ascending). */
  removeScores(evictedBlocks: readonly number[], layer: number): void {
    if (evictedBlocks.length === 0) return;
    const gone = new Set(evictedBlocks);
    const keep = (_: number, i: number) => !gone.has(Math.floor(i / this.blockSize));
    this.scores[layer] = this.scores[layer].filter(keep);
    if (this.mode === AggregationMode.NORM_SUM) this.counters[layer] = this.counters[layer].filter(keep);
    this.queues[layer] = [];
  }

  /**
   * dst += src, where src lacks the tokens of `skippedBlocks` (block ids of dst): those entries of
   * dst stay as they are. dst.length must be src.length + blockSize · |skippedBlocks|.
   */
  addWithSkips(dst: number[], src: readonly number[], skippedBlocks: ReadonlySet<number>): void {
    if (skippedBlocks.size * this.blockSize + src.length !== dst.length) {
      throw new InvalidArgumentError('dst.length', dst.length, `src.length + blockSize · skipped blocks (${src.length} + ${this.blockSize} · ${skippedBlocks.size})`);
    }
    let s = 0;
    for (let d = 0; d < dst.length; d++) {
      if (skippedBlocks.has(Math.floor(d / this.blockSize))) {
        d = (Math.floor(d / this.blockSize) + 1) * this.blockSize - 1;
        continue;
      }
      dst[d] += src[s++];
    }
  }

  private initial(layer: number, pooled: number[], numSnapkvScores: number, skipped: ReadonlySet<number>): void {
    // Before the SnapKV window the prompt's scores carry no meaning yet.
    if (this.snapkvWindowSize !== 0 && numSnapkvScores === 0) return;
    this.queues[layer] = [{ score: pooled, skips: skipped }];
    this.scores[layer] = this.withSkips(pooled, skipped);
    if (this.mode !== AggregationMode.NORM_SUM) return;
    const n = pooled.length;
    if (this.snapkvWindowSize === 0) {
      // As if the tokens had arrived one by one: token i was scored by the n - i queries from itself on.
      this.counters[layer] = Array.from({ length: n }, (_, i) => n - i);
    } else {
      if (numSnapkvScores > n) throw new SparseAttentionError(`internal error: ${numSnapkvScores} SnapKV scores for ${n} tokens`);
      this.counters[layer] = Array.from({ length: n }, (_, i) => Math.min(numSnapkvScores, n - i));
    }
  }

  private accumulate(layer: number, pooled: number[], skipped: ReadonlySet<number>): void {
    if (this.mode === AggregationMode.ADAPTIVE_RKV) {
      const queue = this.queues[layer];
      if (queue.length >= this.adaptiveRkvWindowSize) queue.shift();
      queue.push({ score: pooled, skips: skipped });
      const sum = this.withSkips(queue[0].score, queue[0].skips);
      for (const r of queue.slice(1)) this.addGrowing(sum, r.score, r.skips);
      this.scores[layer] = maxPool(sum.map((x) => x / queue.length), this.maxPoolWindow);
      return;
    }
    const before = this.scores[layer].length;
    this.addGrowing(this.scores[layer], pooled, skipped);
    if (this.mode === AggregationMode.NORM_SUM) this.adjustCounters(layer, before, this.scores[layer].length);
  }

  /** dst grown to the new sequence length (src plus its skipped blocks), then dst += src. */
  private addGrowing(dst: number[], src: readonly number[], skipped: ReadonlySet<number>): void {
    const size = src.length + this.blockSize * skipped.size;
    if (size < dst.length) throw new InvalidArgumentError('registered scores', size, `at least the ${dst.length} tokens already tracked (the cache only grows between evictions)`);
    while (dst.length < size) dst.push(0);
    this.addWithSkips(dst, src, skipped);
  }

  private adjustCounters(layer: number, before: number, after: number): void {
    const added = after - before;
    const c = this.counters[layer];
    if (this.snapkvWindowSize === 0 || this.registeredSnapkvScores === this.snapkvWindowSize) {
      for (let i = 0; i < before; i++) c[i] += added;
      for (let i = 0; i < added; i++) c[before + i] = added - i;
    } else {
      // Still inside the window: every token has been scored by the window's positions so far.
      const w = this.registeredSnapkvScores;
      for (let i = 0; i < after; i++) c[i] = Math.min(w, after - i);
    }
  }

  private withSkips(src: readonly number[], skipped: ReadonlySet<number>): number[] {
    const dst = new Array<number>(src.length + this.blockSize * skipped.size).fill(0);
    this.addWithSkips(dst, src, skipped);
    return dst;
  }
}

/**
 * How many of a chunk's query positions score the cache (OpenVINO's score aggregation window): with
 * SnapKV off, all of them; with window S, those among the prompt's last S positions, and every
 * position after the prompt.
 */
export function snapkvScoresToAggregate(windowSize: number, promptLength: number, scheduled: number, processed: number): number {
  if (windowSize === 0) return scheduled;
  const firstScored = windowSize > promptLength ? 0 : promptLength - windowSize;
  const after = processed + scheduled;
  if (after <= firstScored) return 0;
  return processed > firstScored ? scheduled : after - firstScored;
}
