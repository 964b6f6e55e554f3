/**
 * Paged attention on the CPU (the engine's call, see PagedAttentionInput in backends/backend.ts):
 * gather the visible blocks, then the flash loop over a full (or the method's) block mask; and its
 * reference twin, naivePagedAttention.
 */
import type { PagedAttentionInput } from '../backend.js';
import { flashAttention } from './flash-attention.js';
import { naiveAttention } from './naive-attention.js';
import { BlockMask } from '../../core/block-mask.js';
import { InvalidArgumentError } from '../../core/errors.js';
import type { HeadTensor } from '../../core/tensor.js';

/** Gathers the visible blocks, then the flash loop over a full (or the method's) block mask. */
export async function cpuPagedAttention(input: PagedAttentionInput): Promise<HeadTensor> {
  checkInput(input);
  const { cache, layer, blockTable, q, contextLength, visibleBlocks } = input;
  const { k, v } = cache.gatherBlocks(layer, blockTable, visibleBlocks, contextLength);
  const mask = input.mask ?? BlockMask.full({
    batch: 1, heads: q.heads, queryLength: q.length, keyLength: k.length,
    blockRows: cache.blockSize, blockCols: cache.blockSize, causal: true,
  });
  return flashAttention(q, k, v, { causal: true, scale: input.scale, mask });
}

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
