/** The engine's WebGPU paged backend = the naive paged reference twin (skipped blocks, decode, masks). */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BlockMask } from '../src/core/block-mask.js';
import { Rng } from '../src/core/rng.js';
import { HeadTensor } from '../src/core/tensor.js';
import { naivePagedAttention } from '../src/backends/cpu/paged.js';
import { PagedKvCache } from '../src/engine/paged-kv-cache.js';
import { createWebGpuBackend } from '../src/backends/webgpu/index.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { Engine } from '../src/engine/engine.js';
import { syntheticModel } from '../src/engine/synthetic-model.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
const kv = (heads: number, length: number, D: number, seed: number) => HeadTensor.randn({ batch: 1, heads, length, headDim: D }, seed);

describe('engine paged attention: WebGPU backend = naive reference twin', { skip: gpu.skip }, () => {
  after(() => gpu.release());
  // [name, H, Hkv, D, blockSize, contextLength, chunk length, visible-block rule, random method mask]
  const cases: [string, number, number, number, number, number, number, (b: number) => boolean, boolean][] = [
    ['dense chunk, GQA 2:1, odd sizes', 4, 2, 64, 16, 93, 27, () => true, false],
    ['skipped middle blocks', 2, 1, 64, 16, 150, 37, (b) => b < 1 || b >= 5, false],
    ['decode (length 1) over skipped blocks', 2, 2, 128, 16, 120, 1, (b) => b !== 2 && b !== 3, false],
    ['random method mask over the gathered keys', 4, 1, 64, 16, 117, 45, (b) => b !== 1, true],
  ];
  for (const [name, H, Hkv, D, bs, ctx, n, rule, withMask] of cases) {
    it(name, async () => {
      const cache = new PagedKvCache({ numLayers: 2, numBlocks: 24, kvHeads: Hkv, headDim: D, blockSize: bs });
      cache.reserve(99, 20); // another sequence first, so block ids are not the identity
      cache.reserve(1, ctx);
      cache.write(1, 1, 0, kv(Hkv, ctx, D, 1), kv(Hkv, ctx, D, 2));
      const nb = Math.ceil(ctx / bs);
      const firstChunkBlock = Math.floor((ctx - n) / bs);
      const visibleBlocks = Array.from({ length: nb }, (_, b) => b).filter((b) => b >= firstChunkBlock || rule(b));
      const gathered = visibleBlocks.reduce((a, b) => a + Math.min(bs, ctx - b * bs), 0);
      const rng = new Rng(5);
      const mask = withMask
        ? BlockMask.fromPredicate({ batch: 1, heads: H, queryLength: n, keyLength: gathered, blockRows: 16, blockCols: 16, causal: true }, () => rng.next() < 0.6)
        : undefined;
      const input = { cache, layer: 1, blockTable: cache.blockTable(1), q: kv(H, n, D, 3), contextLength: ctx, visibleBlocks, mask };
      assertTensorsClose(await createWebGpuBackend(gpu.ctx).pagedAttention(input), naivePagedAttention(input), TOL.f32, name);
    });
  }

  it('XATTENTION mode: masks estimated on the GPU give the CPU engine\'s chunks and outputs', async () => {
    const model = syntheticModel({ numLayers: 2, heads: 2, kvHeads: 1, headDim: 16, seed: 3 });
    const config = {
      maxNumBatchedTokens: 48, numKvBlocks: 40, kvBlockSize: 16, useSparseAttention: true,
      sparseAttentionConfig: { mode: 'XATTENTION', xattentionThreshold: 0.6, xattentionBlockSize: 16, xattentionStride: 4, numLastDenseTokensInPrefill: 40 },
    } as const;
    const requests = [{ id: 0, promptLength: 150, decodeTokens: 2 }, { id: 1, promptLength: 70, decodeTokens: 1 }];
    const engines = [new Engine({ model, config }), new Engine({ model, config, backend: createWebGpuBackend(gpu.ctx) })];
    for (const e of engines) {
      for (const r of requests) e.addRequest(r);
      await e.run(1000);
    }
    const [cpu, webgpu] = engines;
    for (const r of requests) {
      const pairs = (e: Engine) => e.stats(r.id).chunks.map((c) => [c.start, c.length, c.threshold, c.keptPairs]);
      assert.deepEqual(pairs(webgpu), pairs(cpu), `sequence ${r.id}: chunks and kept pairs`);
      assert.ok(cpu.stats(r.id).prefillSparsity > 0, `sequence ${r.id} is sparse somewhere`);
      for (let layer = 0; layer < 2; layer++) assertTensorsClose(webgpu.output(r.id, layer), cpu.output(r.id, layer), TOL.f32, `sequence ${r.id} layer ${layer}`);
    }
  });

  it("refuses a plan that hides the chunk's own blocks", async () => {
    const cache = new PagedKvCache({ numLayers: 1, numBlocks: 4, kvHeads: 1, headDim: 64, blockSize: 4 });
    cache.reserve(1, 10);
    const input = { cache, layer: 0, blockTable: cache.blockTable(1), q: kv(1, 3, 64, 1), contextLength: 10, visibleBlocks: [0, 2] };
    await assert.rejects(createWebGpuBackend(gpu.ctx).pagedAttention(input), /visibleBlocks must be a list that includes the chunk's own block 1/);
  });
});
