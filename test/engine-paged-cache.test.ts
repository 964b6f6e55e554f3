import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockMask } from '../src/core/block-mask.js';
import { Rng } from '../src/core/rng.js';
import { HeadTensor } from '../src/core/tensor.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { naivePagedAttention } from '../src/backends/cpu/paged.js';
import { BlockAllocator, PagedKvCache } from '../src/engine/paged-kv-cache.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';

const kv = (heads: number, length: number, D: number, seed: number) => HeadTensor.randn({ batch: 1, heads, length, headDim: D }, seed);

describe('BlockAllocator', () => {
  it('allocates distinct blocks, counts free ones, refuses when empty and on double free', () => {
    const a = new BlockAllocator(3);
    const ids = [a.allocate(), a.allocate(), a.allocate()];
    assert.equal(new Set(ids).size, 3);
    assert.equal(a.freeCount, 0);
    assert.throws(() => a.allocate(), /KV cache is full: all 3 blocks are in use/);
    a.free(ids[1]);
    assert.equal(a.freeCount, 1);
    assert.throws(() => a.free(ids[1]), /block id must be a block that is currently allocated \(double free\), got/);
    assert.equal(a.allocate(), ids[1]);
  });
});

describe('PagedKvCache', () => {
  it('interleaved writes of two sequences never overwrite each other, and freed blocks are reused safely', () => {
    const cache = new PagedKvCache({ numLayers: 2, numBlocks: 8, kvHeads: 2, headDim: 4, blockSize: 4 });
    const kA = kv(2, 11, 4, 1), vA = kv(2, 11, 4, 2), kB = kv(2, 9, 4, 3), vB = kv(2, 9, 4, 4);
    // A and B grow in alternating pieces so their blocks interleave physically.
    for (const [a0, a1, b0, b1] of [[0, 3, 0, 5], [3, 11, 5, 9]]) {
      cache.reserve(1, a1);
      cache.reserve(2, b1);
      for (let layer = 0; layer < 2; layer++) {
        cache.write(layer, 1, a0, kA.sliceLength(a0, a1), vA.sliceLength(a0, a1));
        cache.write(layer, 2, b0, kB.sliceLength(b0, b1), vB.sliceLength(b0, b1));
      }
    }
    const tA = cache.blockTable(1), tB = cache.blockTable(2);
    assert.equal(tA.filter((b) => tB.includes(b)).length, 0, 'no physical block shared');
    assert.equal(cache.freeBlocks, 8 - 3 - 3);
    const all = (n: number) => Array.from({ length: Math.ceil(n / 4) }, (_, i) => i);
    for (let layer = 0; layer < 2; layer++) {
      assertTensorsClose(cache.gather(layer, 1, all(11), 11).k, kA, TOL.f32, 'A keys');
      assertTensorsClose(cache.gather(layer, 2, all(9), 9).v, vB, TOL.f32, 'B values');
    }
    // B finishes; C takes B's blocks and writes garbage everywhere it may: A is untouched.
    cache.freeSequence(2);
    cache.reserve(3, 20);
    const kC = kv(2, 20, 4, 9);
    for (let layer = 0; layer < 2; layer++) cache.write(layer, 3, 0, kC, kC);
    for (let layer = 0; layer < 2; layer++) assertTensorsClose(cache.gather(layer, 1, all(11), 11).v, vA, TOL.f32, 'A values after reuse');
    // Writing past the sequence's own reserved slots is refused instead of spilling into a neighbour.
    assert.throws(() => cache.write(0, 1, 10, kv(2, 3, 4, 5), kv(2, 3, 4, 6)), /start \+ k\.length must be at most the 12 token slots reserved for sequence 1, got 13/);
    assert.throws(() => cache.reserve(4, 40), /needs 10 more blocks, 0 free/);
  });

  it('gathers a subset of logical blocks with their positions, the last one partial', () => {
    const cache = new PagedKvCache({ numLayers: 1, numBlocks: 5, kvHeads: 1, headDim: 3, blockSize: 4 });
    const k = HeadTensor.fromFunction({ batch: 1, heads: 1, length: 14, headDim: 3 }, (_b, _h, l, d) => l * 10 + d);
    cache.reserve(7, 14);
    cache.write(0, 7, 0, k, k);
    const g = cache.gather(0, 7, [0, 2, 3], 14);
    assert.deepEqual([...g.positions], [0, 1, 2, 3, 8, 9, 10, 11, 12, 13]);
    assert.deepEqual([...g.k.row(0, 0, 4)], [80, 81, 82]);
    assert.throws(() => cache.gather(0, 7, [2, 1], 14), /logicalBlocks must be strictly ascending/);
    const view = cache.blockViews(0, 7, 2);
    assert.equal(view.k.length, 4 * 3);
    assert.deepEqual([...view.k.subarray(3, 6)], [90, 91, 92], 'slot 1 of logical block 2 is token 9');
    view.k[0] = -1; // a view, not a copy
    assert.equal(cache.gather(0, 7, [2], 14).k.row(0, 0, 0)[0], -1);
  });
});

describe('paged attention: CPU backend = naive reference twin', () => {
  // [name, H, Hkv, D, blockSize, contextLength, chunk length, visible-block rule, random method mask]
  const cases: [string, number, number, number, number, number, number, (b: number, nb: number) => boolean, boolean][] = [
    ['dense chunk, GQA 2:1, odd sizes', 4, 2, 8, 4, 23, 7, () => true, false],
    ['skipped middle blocks', 2, 1, 8, 4, 37, 9, (b) => b < 1 || b >= 5, false],
    ['decode (length 1) over skipped blocks', 2, 2, 4, 4, 30, 1, (b) => b !== 2 && b !== 3, false],
    ['whole sequence in one chunk', 2, 1, 6, 16, 19, 19, () => true, false],
    ['random method mask over the gathered keys', 4, 1, 8, 4, 29, 11, (b) => b !== 1, true],
  ];
  for (const [name, H, Hkv, D, bs, ctx, n, rule, withMask] of cases) {
    it(name, async () => {
      const cache = new PagedKvCache({ numLayers: 1, numBlocks: 16, kvHeads: Hkv, headDim: D, blockSize: bs });
      cache.reserve(99, 5); // another sequence first, so block ids are not the identity
      cache.reserve(1, ctx);
      cache.write(0, 1, 0, kv(Hkv, ctx, D, 1), kv(Hkv, ctx, D, 2));
      const nb = Math.ceil(ctx / bs);
      const firstChunkBlock = Math.floor((ctx - n) / bs);
      const visibleBlocks = Array.from({ length: nb }, (_, b) => b).filter((b) => b >= firstChunkBlock || rule(b, nb));
      const q = kv(H, n, D, 3);
      const gathered = visibleBlocks.reduce((a, b) => a + Math.min(bs, ctx - b * bs), 0);
      const rng = new Rng(5);
      const mask = withMask
        ? BlockMask.fromPredicate({ batch: 1, heads: H, queryLength: n, keyLength: gathered, blockRows: 4, blockCols: 4, causal: true }, () => rng.next() < 0.6)
        : undefined;
      const input = { cache, layer: 0, blockTable: cache.blockTable(1), q, contextLength: ctx, visibleBlocks, mask };
      assertTensorsClose(await cpuBackend.pagedAttention(input), naivePagedAttention(input), TOL.f32, name);
    });
  }

  it('refuses a plan that hides the chunk\'s own blocks', async () => {
    const cache = new PagedKvCache({ numLayers: 1, numBlocks: 4, kvHeads: 1, headDim: 4, blockSize: 4 });
    cache.reserve(1, 10);
    const input = { cache, layer: 0, blockTable: cache.blockTable(1), q: kv(1, 3, 4, 1), contextLength: 10, visibleBlocks: [0, 2] };
    await assert.rejects(cpuBackend.pagedAttention(input), /visibleBlocks must be a list that includes the chunk's own block 1/);
  });
});
