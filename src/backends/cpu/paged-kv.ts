/**
 * Paged KV cache, reference form: a cache [numPages, Hkv, pageSize, D] (a BHLD HeadTensor with
 * batch = pages, length = page size) and a block table [batch, tableStride] of page indices.
 * `gatherPagedKv` copies a batch's keys into contiguous [B, Hkv, Lk, D], so any dense kernel
 * becomes the oracle of a paged kernel.
 */
import { InvalidArgumentError } from '../../core/errors.js';
import { HeadTensor } from '../../core/tensor.js';

export function gatherPagedKv(cache: HeadTensor, blockTable: Int32Array, tableStride: number, batch: number, keyLength: number): HeadTensor {
  const pageSize = cache.length;
  const out = HeadTensor.zeros({ batch, heads: cache.heads, length: keyLength, headDim: cache.headDim }, 'BHLD', cache.dtype);
  if (blockTable.length < batch * tableStride) throw new InvalidArgumentError('blockTable.length', blockTable.length, `at least ${batch * tableStride}`);
  const D = cache.headDim;
  for (let b = 0; b < batch; b++)
    for (let j = 0; j < keyLength; j++) {
      const page = blockTable[b * tableStride + Math.floor(j / pageSize)];
      if (!(page >= 0 && page < cache.batch)) throw new InvalidArgumentError(`blockTable[${b}, ${Math.floor(j / pageSize)}]`, page, `a page index in [0, ${cache.batch})`);
      for (let h = 0; h < cache.heads; h++) {
        const src = cache.offset(page, h, j % pageSize);
        out.data.set(cache.data.subarray(src, src + D), out.offset(b, h, j));
      }
    }
  return out;
}
