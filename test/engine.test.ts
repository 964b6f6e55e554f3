/**
 * The chunked-prefill engine against dense attention over whole sequences: with sparsity off it
 * must be exact; with TRISHAPE every chunk must equal dense attention under the spec's visible-block
 * mask (computed here from the spec's formula, not from the engine), and later dense chunks and
 * decode must see the blocks that earlier chunks skipped.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { naiveAttention } from '../src/backends/cpu/naive-attention.js';
import type { SchedulerConfigInput } from '../src/config/openvino.js';
import type { HeadTensor } from '../src/core/tensor.js';
import { Engine } from '../src/engine/engine.js';
import { syntheticModel, type QkvProducer } from '../src/engine/synthetic-model.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';

const model = syntheticModel({ numLayers: 2, heads: 4, kvHeads: 2, headDim: 8, seed: 11 });

/** Dense causal attention of a whole sequence, optionally hiding key blocks from some query rows. */
function reference(m: QkvProducer, seqId: number, length: number, layer: number, hidden?: (i: number, j: number) => boolean): HeadTensor {
  const { q, k, v } = m.qkv(layer, seqId, 0, length);
  return naiveAttention(q, k, v, { causal: true, visible: hidden ? (_b, _h, i, j) => !hidden(i, j) : undefined });
}

/** The spec's tri-shape skip set (trishape.md, part B), written out independently of the engine. */
function specSkipped(promptLength: number, start: number, length: number, bs: number, lastDense: number, startTokens: number, recentTokens: number): number[] {
  if (start + length > promptLength || promptLength - (start + length) < lastDense) return [];
  const full = Math.floor(start / bs);
  const s = startTokens / bs;
  const r = recentTokens / bs;
  const out: number[] = [];
  for (let b = s; full > s + r && b < full - r; b++) out.push(b);
  return out;
}

async function runEngine(config: SchedulerConfigInput, requests: { id: number; promptLength: number; decodeTokens?: number }[], m: QkvProducer = model) {
  const engine = new Engine({ model: m, config });
  for (const r of requests) engine.addRequest(r);
  const steps = await engine.run(10_000);
  assert.ok(engine.done, 'engine finished every request');
  return { engine, steps };
}

describe('engine, sparsity off: chunked prefill + decode = dense attention over each whole sequence', () => {
  for (const bs of [16, 32] as const) {
    it(`block size ${bs}, three sequences of different lengths (one of length 1)`, async () => {
      const requests = [{ id: 0, promptLength: 70, decodeTokens: 5 }, { id: 1, promptLength: 37, decodeTokens: 3 }, { id: 2, promptLength: 1, decodeTokens: 2 }];
      const { engine } = await runEngine({ maxNumBatchedTokens: 24, numKvBlocks: 16, kvBlockSize: bs }, requests);
      for (const r of requests) {
        const st = engine.stats(r.id);
        assert.equal(st.decodeSteps, r.decodeTokens, `sequence ${r.id} decode steps`);
        assert.equal(st.skippedBlocks, 0);
        for (let layer = 0; layer < 2; layer++) {
          assertTensorsClose(engine.output(r.id, layer), reference(model, r.id, r.promptLength + r.decodeTokens, layer), TOL.f32, `seq ${r.id} layer ${layer}`);
        }
      }
      assert.ok(engine.stats(0).prefillChunks >= 3, 'the long prompt was split into chunks');
    });
  }
});

describe('engine, TRISHAPE', () => {
  const bs = 16;
  const sa = { mode: 'TRISHAPE' as const, numLastDenseTokensInPrefill: 40, numRetainedStartTokensInCache: 16, numRetainedRecentTokensInCache: 32 };
  const config = { maxNumBatchedTokens: 40, numKvBlocks: 40, kvBlockSize: bs, useSparseAttention: true, sparseAttentionConfig: sa } as const;
  const requests = [{ id: 0, promptLength: 230, decodeTokens: 4 }, { id: 1, promptLength: 200, decodeTokens: 3 }];

  it('each chunk equals dense attention with the spec\'s visible blocks; dense tail and decode see every block', async () => {
    const { engine } = await runEngine(config, requests);
    for (const r of requests) {
      const st = engine.stats(r.id);
      const total = r.promptLength + r.decodeTokens;
      assert.ok(st.skippedBlocks > 0, `sequence ${r.id} skipped some blocks (else this test proves nothing)`);
      assert.ok(st.prefillSparsity > 0 && st.prefillSparsity < 1);
      // Which blocks each query row may not see, per the spec formula on the chunk boundaries the scheduler chose.
      const hiddenFor = new Map<number, Set<number>>();
      for (const c of st.chunks) {
        const want = specSkipped(r.promptLength, c.start, c.length, bs, sa.numLastDenseTokensInPrefill, sa.numRetainedStartTokensInCache, sa.numRetainedRecentTokensInCache);
        assert.deepEqual(c.skippedBlocks, want, `sequence ${r.id} chunk at ${c.start}+${c.length}`);
        if (c.phase === 'decode') assert.deepEqual(c.skippedBlocks, []);
        for (let i = c.start; i < c.start + c.length; i++) hiddenFor.set(i, new Set(want));
      }
      assert.equal(hiddenFor.size, total, 'every position computed once');
      const lastSparse = Math.max(...st.chunks.filter((c) => c.skippedBlocks.length > 0).map((c) => c.start + c.length));
      assert.ok(lastSparse < total, 'some dense chunks follow the sparse ones');
      for (let layer = 0; layer < 2; layer++) {
        const out = engine.output(r.id, layer);
        const sparseRef = reference(model, r.id, total, layer, (i, j) => hiddenFor.get(i)!.has(Math.floor(j / bs)));
        assertTensorsClose(out, sparseRef, TOL.f32, `seq ${r.id} layer ${layer} vs spec mask`);
        // Rows after the last sparse chunk (dense tail + decode) equal plain dense attention over everything.
        const dense = reference(model, r.id, total, layer);
        assertTensorsClose(out.sliceLength(lastSparse, total), dense.sliceLength(lastSparse, total), TOL.f32, `seq ${r.id} layer ${layer} dense tail`);
        assert.throws(() => assertTensorsClose(out.sliceLength(0, lastSparse), dense.sliceLength(0, lastSparse), TOL.f32), /values outside/,
          'the sparse chunks really differ from dense');
      }
    }
  });

  it('a prompt processed in one chunk skips nothing', async () => {
    const { engine } = await runEngine({ ...config, maxNumBatchedTokens: 256 }, [{ id: 5, promptLength: 230, decodeTokens: 1 }]);
    const st = engine.stats(5);
    assert.equal(st.prefillChunks, 1);
    assert.equal(st.skippedBlocks, 0);
    assert.equal(st.prefillSparsity, 0);
    assertTensorsClose(engine.output(5, 1), reference(model, 5, 231, 1), TOL.f32, 'one-chunk prompt');
  });
});

describe('engine: a full cache holds sequences back or preempts them, and results stay exact', () => {
  it('a prompt that gets no block waits until blocks are freed', async () => {
    // 4 blocks of 16: sequence 0 takes all of them in step 0; sequence 1 waits one step.
    const requests = [{ id: 0, promptLength: 64 }, { id: 1, promptLength: 20, decodeTokens: 2 }];
    const { engine, steps } = await runEngine({ maxNumBatchedTokens: 100, numKvBlocks: 4, kvBlockSize: 16 }, requests);
    assert.deepEqual(steps[0].heldBack, [1]);
    assert.equal(engine.stats(1).heldBackSteps, 1);
    assert.equal(engine.stats(0).heldBackSteps, 0);
    assertTensorsClose(engine.output(1, 0), reference(model, 1, 22, 0), TOL.f32, 'held-back sequence');
  });

  it('a decode that needs a block preempts the lowest-priority sequence, which recomputes later', async () => {
    // 6 blocks of 16. Step 0: seq 0 prefills 64 tokens (4 blocks), seq 1 gets the other 2 blocks.
    // Step 1: seq 0 must decode into a 5th block: seq 1 is preempted and later recomputed.
    const requests = [{ id: 0, promptLength: 64, decodeTokens: 20 }, { id: 1, promptLength: 60, decodeTokens: 4 }];
    const { engine, steps } = await runEngine({ maxNumBatchedTokens: 100, numKvBlocks: 6, kvBlockSize: 16 }, requests);
    assert.deepEqual(steps[1].preempted, [1]);
    const st = engine.stats(1);
    assert.ok(st.preemptions >= 1);
    assert.ok(st.recomputedTokens >= 32);
    assert.equal(engine.stats(0).preemptions, 0);
    for (const r of requests) {
      for (let layer = 0; layer < 2; layer++) {
        assertTensorsClose(engine.output(r.id, layer), reference(model, r.id, r.promptLength + r.decodeTokens, layer), TOL.f32, `seq ${r.id} layer ${layer}`);
      }
    }
  });

  it('a request that can never fit the cache fails with a clear error', () => {
    const engine = new Engine({ model, config: { numKvBlocks: 4, kvBlockSize: 16 } });
    assert.throws(() => engine.addRequest({ id: 3, promptLength: 60, decodeTokens: 10 }),
      /request 3 KV blocks \(prompt 60 \+ 10 decode tokens at 16 tokens per block\) must be at most the cache's 4 blocks: it can never fit, got 5/);
  });

  it('sizes the cache from cacheSizeBytes when numKvBlocks is 0', () => {
    // One block: 2 layers · (K and V) · 2 KV heads · 16 tokens · 8 dims · 4 bytes = 4096 bytes.
    const engine = new Engine({ model, config: { cacheSizeBytes: 4096 * 5 + 100, kvBlockSize: 16 } });
    assert.equal(engine.cache.numBlocks, 5);
  });
});
