/**
 * Paged-KV attention on WebGPU: K/V read through a block table from a cache
 * [numPages, Hkv, pageSize, D] equal the CPU reference on the gathered, contiguous K/V.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { gatherPagedKv } from '../src/backends/cpu/paged-kv.js';
import { pagedAttentionWebGpu } from '../src/backends/webgpu/attention/block-sparse-attention.js';
import { BlockMask } from '../src/core/block-mask.js';
import { Rng } from '../src/core/rng.js';
import { type DType, HeadTensor } from '../src/core/tensor.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

describe('gatherPagedKv (the reference twin, no device needed)', () => {
  it('row j of sequence b comes from page table[b, j / pageSize], slot j % pageSize', () => {
    const cache = HeadTensor.fromFunction({ batch: 5, heads: 2, length: 4, headDim: 4 }, (page, h, slot, d) => page * 1000 + h * 100 + slot * 10 + d);
    const table = new Int32Array([3, 0, 4, -1, 1, 2, 0, -1]);
    const k = gatherPagedKv(cache, table, 4, 2, 10);
    assert.deepEqual([...k.row(0, 1, 9)], [4110, 4111, 4112, 4113]);
    assert.deepEqual([...k.row(1, 0, 5)], [2010, 2011, 2012, 2013]);
    assert.throws(() => gatherPagedKv(cache, table, 4, 2, 13), /blockTable\[0, 3\] must be a page index in \[0, 5\), got -1/);
  });
});

const gpu = await acquireTestGpu();

interface Case {
  name: string;
  D: number;
  H: number;
  Hkv: number;
  batch: number;
  Lq: number;
  Lk: number;
  pageSize: number;
  causal: boolean;
  dtype: DType;
  /** Block-sparse with this block size and density; dense when absent. */
  blocks?: { br: number; bc: number; density: number; trishape?: boolean };
}

const CASES: Case[] = [
  { name: 'prefill, pages not dividing Lk', D: 64, H: 4, Hkv: 2, batch: 2, Lq: 75, Lk: 75, pageSize: 16, causal: true, dtype: 'f32' },
  { name: 'chunked prefill after cached tokens', D: 128, H: 4, Hkv: 1, batch: 1, Lq: 30, Lk: 101, pageSize: 32, causal: true, dtype: 'f16' },
  { name: 'decode (Lq = 1)', D: 64, H: 2, Hkv: 2, batch: 3, Lq: 1, Lk: 57, pageSize: 8, causal: true, dtype: 'f32' },
  { name: 'block-sparse through the table', D: 64, H: 4, Hkv: 2, batch: 2, Lq: 64, Lk: 96, pageSize: 16, causal: true, dtype: 'f32', blocks: { br: 16, bc: 16, density: 0.5 } },
  { name: 'tri-shape, non-causal, f16', D: 128, H: 2, Hkv: 1, batch: 1, Lq: 50, Lk: 50, pageSize: 16, causal: false, dtype: 'f16', blocks: { br: 32, bc: 24, density: 0.8, trishape: true } },
];

/** A cache with more pages than needed, and per-sequence tables in a shuffled page order. */
function pagedSetup(c: Case, seed: number) {
  const rng = new Rng(seed);
  const pages = Math.ceil(c.Lk / c.pageSize);
  const numPages = c.batch * pages + 3;
  const tableStride = pages + 1; // a spare slot, as an engine's table has room to grow
  const order = Array.from({ length: numPages }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const blockTable = new Int32Array(c.batch * tableStride).fill(-1);
  for (let b = 0; b < c.batch; b++) for (let n = 0; n < pages; n++) blockTable[b * tableStride + n] = order[b * pages + n];
  const cacheShape = { batch: numPages, heads: c.Hkv, length: c.pageSize, headDim: c.D };
  const kCache = HeadTensor.randn(cacheShape, seed + 1, { dtype: c.dtype });
  const vCache = HeadTensor.randn(cacheShape, seed + 2, { dtype: c.dtype });
  const q = HeadTensor.randn({ batch: c.batch, heads: c.H, length: c.Lq, headDim: c.D }, seed + 3, { dtype: c.dtype, layout: seed % 2 ? 'BLHD' : 'BHLD' });
  return { q, kCache, vCache, blockTable, tableStride };
}

describe('WebGPU paged-KV attention = CPU reference on gathered K/V', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  CASES.forEach((c, n) => {
    it(`${c.name}: D=${c.D} H=${c.H}/${c.Hkv} B=${c.batch} Lq=${c.Lq} Lk=${c.Lk} page ${c.pageSize} ${c.dtype}`, async () => {
      const { q, kCache, vCache, blockTable, tableStride } = pagedSetup(c, 7 * n + 1);
      const k = gatherPagedKv(kCache, blockTable, tableStride, c.batch, c.Lk);
      const v = gatherPagedKv(vCache, blockTable, tableStride, c.batch, c.Lk);
      let mask: BlockMask | undefined;
      if (c.blocks) {
        const rng = new Rng(99 + n);
        const dims = { batch: c.batch, heads: c.H, queryLength: c.Lq, keyLength: c.Lk, blockRows: c.blocks.br, blockCols: c.blocks.bc, causal: c.causal };
        const rule = c.blocks.trishape ? { kind: 'trishape' as const, sinkTokens: 4, localWindow: 11, lastDenseQueries: 5 } : undefined;
        mask = BlockMask.fromPredicate(dims, () => rng.next() < c.blocks!.density, rule);
      }
      const out = await pagedAttentionWebGpu(gpu.ctx!, q, kCache, vCache, { keyLength: c.Lk, blockTable, tableStride, causal: c.causal, mask });
      assertTensorsClose(out.toDType('f32'), flashAttention(q, k, v, { causal: c.causal, mask }), TOL[c.dtype], c.name);
    });
  });

  it('refuses a block table entry outside the cache, naming it', async () => {
    const c = CASES[0];
    const { q, kCache, vCache, blockTable, tableStride } = pagedSetup(c, 5);
    blockTable[tableStride + 2] = kCache.batch;
    await assert.rejects(
      pagedAttentionWebGpu(gpu.ctx!, q, kCache, vCache, { keyLength: c.Lk, blockTable, tableStride, causal: true }),
      new RegExp(`blockTable\\[1, 2\\] must be a page index in \\[0, ${kCache.batch}\\), got ${kCache.batch}`),
    );
  });
});
