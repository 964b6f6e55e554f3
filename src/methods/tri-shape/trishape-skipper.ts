/**
 * OpenVINO GenAI's tri-shape rule for chunked prefill over a paged cache
 * (TriShapeSparseAttentionTokenSkipper): which logical KV blocks one prompt chunk does not attend to.
 *
 * For a chunk of `scheduled` tokens after `processed` tokens of a prompt of `promptLength`:
 *   sparse phase iff promptLength - (processed + scheduled) >= numLastDenseTokensInPrefill;
 *   then full = floor(cached / bs), s = start / bs, r = recent / bs, and if full > s + r the
 *   chunk skips logical blocks [s, full - r). Otherwise (the dense tail) it skips nothing.
 * `cached` counts tokens already in the cache before this chunk (processed - evicted), so a block
 * that the chunk itself finishes filling is never skipped, and a one-chunk prompt skips nothing.
 * The same set applies to every layer and head.
 */
import { InvalidArgumentError, requireInteger } from '../../core/errors.js';

export interface ChunkPosition {
  promptLength: number;
  /** Prompt tokens processed before this chunk. */
  processed: number;
  /** Tokens in this chunk. */
  scheduled: number;
  /** Tokens in the cache before this chunk; defaults to `processed` (no eviction). */
  cached?: number;
}

export class TriShapeTokenSkipper {
  constructor(
    readonly blockSize: number,
    readonly numLastDenseTokensInPrefill: number,
    readonly numRetainedStartTokensInCache: number,
    readonly numRetainedRecentTokensInCache: number,
  ) {
    requireInteger('blockSize', blockSize, 1);
    requireInteger('numLastDenseTokensInPrefill', numLastDenseTokensInPrefill, 0);
    for (const [name, v] of [['numRetainedStartTokensInCache', numRetainedStartTokensInCache], ['numRetainedRecentTokensInCache', numRetainedRecentTokensInCache]] as const) {
      requireInteger(name, v, 0);
      if (v % blockSize !== 0) throw new InvalidArgumentError(name, v, `a multiple of the KV block size (${blockSize})`);
    }
  }

  /** Skipped logical block ids, ascending. */
  skippedBlocks(chunk: ChunkPosition): number[] {
    const { promptLength, processed, scheduled } = chunk;
    const after = processed + scheduled;
    if (after > promptLength) {
      throw new InvalidArgumentError('processed + scheduled', after, `at most promptLength (${promptLength}): the skipper applies to prompt chunks only`);
    }
    if (promptLength - after < this.numLastDenseTokensInPrefill) return [];
    const full = Math.floor((chunk.cached ?? processed) / this.blockSize);
    const s = this.numRetainedStartTokensInCache / this.blockSize;
    const r = this.numRetainedRecentTokensInCache / this.blockSize;
    const skipped: number[] = [];
    for (let b = s; b < full - r; b++) skipped.push(b);
    return skipped;
  }
}
