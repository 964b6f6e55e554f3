/**
 * Attention of one sequence's query chunk over its paged KV cache: the call the engine makes per
 * (sequence, chunk, layer), and the interface a backend implements (CPU here; WebGPU later reads
 * the same block table and storage layout, [numBlocks, Hkv, blockSize, D] per layer).
 *
 *   q [1, H, n, D]: tokens [start, start + n) of the sequence, start + n = contextLength
 *   keys: the tokens of `visibleBlocks` (logical blocks, ascending) below contextLength, gathered
 *     in position order; the chunk's own blocks are always visible, so the queries are the last n
 *     gathered keys and a causal mask with right-aligned queries is exactly "key position <= query position".
 *   mask (optional): a method's block mask over (n queries × gathered keys), causal; default every block.
 *   → out [1, H, n, Dv]
 */
import type { BackendName } from '../backends/backend.js';
import { flashAttention } from '../backends/cpu/flash-attention.js';
import { naiveAttention } from '../backends/cpu/naive-attention.js';
import { BlockMask } from '../core/block-mask.js';
import type { XAttentionParams } from '../methods/xattention-estimate.js';
import { InvalidArgumentError } from '../core/errors.js';
import type { HeadTensor } from '../core/tensor.js';
import type { PagedKvCache } from './paged-kv-cache.js';

export interface PagedAttentionInput {
  cache: PagedKvCache;
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

export interface PagedAttentionBackend {
  readonly name: BackendName;
  pagedAttention(input: PagedAttentionInput): Promise<HeadTensor>;
  /**
   * XAttention's block mask for a chunk's queries q [1, H, Lq, D] against every cached key
   * k [1, Hkv, Lk, D] (queries right-aligned, causal). A backend that can estimate it where it
   * attends (the GPU) offers this; otherwise the engine plans on the CPU with the method.
   */
  xattentionMask?(q: HeadTensor, k: HeadTensor, params: XAttentionParams): Promise<BlockMask>;
}

/** Gathers the visible blocks, then the flash loop over a full (or the method's) block mask. */
export const cpuPagedBackend: PagedAttentionBackend = {
  name: 'cpu',
  async pagedAttention(input) {
    checkInput(input);
    const { cache, layer, blockTable, q, contextLength, visibleBlocks } = input;
    const { k, v } = cache.gatherBlocks(layer, blockTable, visibleBlocks, contextLength);
    const mask = input.mask ?? BlockMask.full({
      batch: 1, heads: q.heads, queryLength: q.length, keyLength: k.length,
      blockRows: cache.blockSize, blockCols: cache.blockSize, causal: true,
    });
    return flashAttention(q, k, v, { causal: true, scale: input.scale, mask });
  },
};

/**
 * The reference twin: no gathering, no block-sparse kernel. Reads every token of the sequence
 * through the block table and runs naive attention over positions [0, contextLength) with token
 * visibility "causal, key's block visible, and (with a mask) kept by the mask".
 */
export function naivePagedAttention(input: PagedAttentionInput): HeadTensor {
  checkInput(input);
  const { cache, layer, blockTable, q, contextLength, visibleBlocks, mask } = input;
  const bs = cache.blockSize;
  const all = Array.from({ length: Math.ceil(contextLength / bs) }, (_, b) => b);
  const { k, v } = cache.gatherBlocks(layer, blockTable, all, contextLength);
  const visible = new Set(visibleBlocks);
  // Index of each position among the gathered visible tokens, which is how `mask` counts keys.
  const gatheredIndex = new Int32Array(contextLength).fill(-1);
  let g = 0;
  for (let t = 0; t < contextLength; t++) if (visible.has(Math.floor(t / bs))) gatheredIndex[t] = g++;
  return naiveAttention(q, k, v, {
    causal: true,
    scale: input.scale,
    visible: (_b, h, i, j) => gatheredIndex[j] >= 0 && (!mask || mask.visible(0, h, i, gatheredIndex[j])),
  });
}

function checkInput(input: PagedAttentionInput): void {
  const { cache, q, contextLength, visibleBlocks, blockTable } = input;
  if (q.batch !== 1) throw new InvalidArgumentError('q.batch', q.batch, '1 (one sequence per paged call)');
  if (q.length > contextLength) throw new InvalidArgumentError('q.length', q.length, `at most contextLength (${contextLength})`);
  if (contextLength > blockTable.length * cache.blockSize) {
    throw new InvalidArgumentError('contextLength', contextLength, `at most the ${blockTable.length * cache.blockSize} slots of the block table`);
  }
  const firstChunkBlock = Math.floor((contextLength - q.length) / cache.blockSize);
  const lastBlock = Math.ceil(contextLength / cache.blockSize) - 1;
  const visible = new Set(visibleBlocks);
  for (let b = firstChunkBlock; b <= lastBlock; b++) {
    if (!visible.has(b)) throw new InvalidArgumentError('visibleBlocks', [...visibleBlocks], `a list that includes the chunk's own block ${b}`);
  }
}
