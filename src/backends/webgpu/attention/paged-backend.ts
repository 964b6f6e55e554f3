/**
 * Paged attention on WebGPU (the engine's call, see PagedAttentionInput in backends/backend.ts): the
 * paged variant of the attention skeleton reads K/V straight from the cache layout
 * [numBlocks, Hkv, blockSize, D] through a block table holding the physical ids of the *visible*
 * logical blocks, in order. The gathered key sequence the CPU backend builds is exactly that table's
 * pages (only the sequence's last block can be partial, and it is always visible), so the same
 * causal, right-aligned call and the same method mask apply unchanged. Reference twin:
 * naivePagedAttention.
 *
 * The engine's cache is resident (resident-kv.ts): the call binds the layer's K and V buffers, which
 * the cache wrote the chunk's rows into, and uploads only q, the block table and the mask's block
 * list. `upload: true` (or a PagedKvView that cannot hold a resident copy) uploads the layer's whole
 * cache for the call instead: the path before the resident cache, kept for benchmarks.
 */
import { InvalidArgumentError } from '../../../core/errors.js';
import { type DType, HeadTensor } from '../../../core/tensor.js';
import type { PagedAttentionInput } from '../../backend.js';
import { pagedAttentionWebGpu } from './block-sparse-attention.js';
import type { WebGpuContext } from '../runtime/webgpu-device.js';
import { residentKvFor } from './resident-kv.js';

export interface PagedCallOptions {
  /** Upload the layer's cache for the call (the path before the resident cache). */
  upload?: boolean;
  /** Element type of the resident cache (default f32); the query attends in it. */
  kvDtype?: DType;
}

export async function pagedAttentionOnWebGpu(ctx: WebGpuContext, input: PagedAttentionInput, opts: PagedCallOptions = {}): Promise<HeadTensor> {
  const { cache, layer, blockTable, q, contextLength, visibleBlocks } = input;
  const bs = cache.blockSize;
  const lastBlock = Math.ceil(contextLength / bs) - 1;
  if (q.batch !== 1) throw new InvalidArgumentError('q.batch', q.batch, '1 (one sequence per paged call)');
  if (contextLength > blockTable.length * bs) throw new InvalidArgumentError('contextLength', contextLength, `at most the ${blockTable.length * bs} slots of the block table`);
  const firstChunkBlock = Math.floor((contextLength - q.length) / bs);
  for (let b = firstChunkBlock; b <= lastBlock; b++) {
    if (!visibleBlocks.includes(b)) throw new InvalidArgumentError('visibleBlocks', [...visibleBlocks], `a list that includes the chunk's own block ${b}`);
  }
  visibleBlocks.forEach((lb, i) => {
    if (!Number.isInteger(lb) || lb > lastBlock || (i > 0 && lb <= visibleBlocks[i - 1])) {
      throw new InvalidArgumentError('visibleBlocks', [...visibleBlocks], `strictly ascending block indices below ${lastBlock + 1}`);
    }
  });
  const keyLength = (visibleBlocks.length - 1) * bs + (contextLength - lastBlock * bs);
  const table = Int32Array.from(visibleBlocks, (lb) => blockTable[lb]);
  const call = { keyLength, blockTable: table, tableStride: table.length, causal: true, scale: input.scale, mask: input.mask };
  const resident = opts.upload ? null : residentKvFor(ctx.device, cache, opts.kvDtype);
  if (resident) {
    // The query attends in the cache's dtype and gets its output back in its own.
    const { k, v } = resident.views(layer);
    const out = await pagedAttentionWebGpu(ctx, q.toDType(resident.dtype), k, v, call);
    return out.toDType(q.dtype);
  }
  const cacheShape = { batch: cache.numBlocks, heads: cache.kvHeads, length: bs, headDim: cache.headDim };
  return pagedAttentionWebGpu(ctx, q, new HeadTensor(cacheShape, cache.keys[layer]), new HeadTensor(cacheShape, cache.values[layer]), call);
}
