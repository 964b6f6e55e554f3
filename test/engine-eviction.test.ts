/**
 * Cache eviction inside the engine: every chunk must equal dense attention over exactly the tokens
 * its layer's cache held at that step (taken from the engine before the step, the chunk's own tokens
 * added), eviction must keep each sequence's cache within maxCacheSize + one block per layer once the
 * prompt is done, and it must work beside TRISHAPE, XATTENTION and dense prefill, with preemption.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { naiveAttention } from '../src/backends/cpu/naive-attention.js';
import type { SchedulerConfigInput } from '../src/config/openvino.js';
import { UnsupportedError } from '../src/core/errors.js';
import { HeadTensor } from '../src/core/tensor.js';
import { Engine } from '../src/engine/engine.js';
import { syntheticModel, type QkvProducer } from '../src/engine/synthetic-model.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';

const LAYERS = 3;
const model = syntheticModel({ numLayers: LAYERS, heads: 4, kvHeads: 2, headDim: 8, seed: 5 });

/**
 * Q/K/V as seeded noise per (layer, sequence, head, position), peaky enough that each layer favours
 * its own tokens: the synthetic model's shared rotary band makes every layer rank blocks alike.
 */
const noisy: QkvProducer = {
  numLayers: LAYERS, heads: 4, kvHeads: 2, headDim: 8,
  qkv(layer, seqId, start, length) {
    const at = (kind: number, H: number, amp: number) => HeadTensor.fromFunction({ batch: 1, heads: H, length, headDim: 8 },
      (_b, h, l, d) => amp * HeadTensor.randn({ batch: 1, heads: 1, length: 1, headDim: 8 }, ((kind * 7 + layer) * 1009 + seqId) * 100_003 + (h * 65_537 + start + l)).data[d]);
    return { q: at(0, 4, 2), k: at(1, 2, 2), v: at(2, 2, 1) };
  },
};
const BS = 16;
const EVICTION = { startSize: 16, recentSize: 32, maxCacheSize: 96 };

/** Rows of a [1, H, n, D] tensor at the given positions of a sequence. */
function rowsAt(t: HeadTensor, positions: readonly number[]): HeadTensor {
  return HeadTensor.fromFunction({ batch: 1, heads: t.heads, length: positions.length, headDim: t.headDim }, (_b, h, l, d) => t.row(0, h, positions[l])[d]);
}

interface Run {
  engine: Engine;
  /** Dense chunks checked against the reference; the most blocks a sequence past its prompt held after a step. */
  checked: number;
  maxBlocksAfterStep: number;
  layersDiffered: boolean;
}

async function runChecked(config: SchedulerConfigInput, requests: { id: number; promptLength: number; decodeTokens: number }[], m: QkvProducer = model): Promise<Run> {
  const engine = new Engine({ model: m, config });
  for (const r of requests) engine.addRequest(r);
  const full = new Map(requests.map((r) => [r.id, Array.from({ length: LAYERS }, (_, l) => m.qkv(l, r.id, 0, r.promptLength + r.decodeTokens))]));
  let checked = 0, maxBlocksAfterStep = 0, layersDiffered = false;
  for (let guard = 0; !engine.done && guard < 5000; guard++) {
    // Positions each running sequence's layers hold before the step.
    const before = new Map<number, number[][]>();
    for (const r of requests) if (engine.scheduler.isRunning(r.id)) before.set(r.id, Array.from({ length: LAYERS }, (_, l) => engine.cachedPositions(r.id, l)));
    const schedule = (await engine.step())!;
    for (const c of schedule.chunks) {
      if (c.plan.kind !== 'dense') continue;
      // A preempted-and-replayed sequence starts over: its cache before the chunk is what it replayed.
      const held = before.get(c.seqId)!.map((p) => p.filter((x) => x < c.start));
      if (held.some((p) => JSON.stringify(p) !== JSON.stringify(held[0]))) layersDiffered = true;
      const own = Array.from({ length: c.length }, (_, i) => c.start + i);
      for (let l = 0; l < LAYERS; l++) {
        const { q, k, v } = full.get(c.seqId)![l];
        const keys = [...held[l], ...own];
        const ref = naiveAttention(q.sliceLength(c.start, c.start + c.length), rowsAt(k, keys), rowsAt(v, keys), { causal: true });
        assertTensorsClose(engine.output(c.seqId, l).sliceLength(c.start, c.start + c.length), ref, TOL.f32, `seq ${c.seqId} chunk ${c.start}+${c.length} layer ${l}`);
      }
      checked++;
    }
    // Once a sequence's prompt is done, each step ends with its cache trimmed.
    for (const c of schedule.chunks) {
      if (c.start + c.length >= c.promptLength && engine.scheduler.isRunning(c.seqId)) maxBlocksAfterStep = Math.max(maxBlocksAfterStep, engine.cache.capacity(c.seqId) / BS);
    }
  }
  assert.ok(engine.done, 'every request finished');
  return { engine, checked, maxBlocksAfterStep, layersDiffered };
}

const base = { maxNumBatchedTokens: 48, numKvBlocks: 40, kvBlockSize: BS, useCacheEviction: true } as const;

describe('engine with cache eviction', () => {
  for (const mode of ['NORM_SUM', 'SUM', 'ADAPTIVE_RKV'] as const) {
    it(`${mode}: every chunk equals dense attention over the tokens its layer kept; the cache stays bounded`, async () => {
      const cfg = { ...base, cacheEvictionConfig: { ...EVICTION, aggregationMode: mode } };
      const { engine, checked, maxBlocksAfterStep, layersDiffered } = await runChecked(cfg, [{ id: 0, promptLength: 200, decodeTokens: 60 }], noisy);
      const st = engine.stats(0);
      assert.ok(st.evictedTokens > 0, 'evicted something');
      assert.equal(checked, st.prefillChunks + st.decodeSteps, 'every chunk was checked');
      // After each step at most maxCacheSize + blockSize − 1 tokens remain: 96/16 + 1 blocks.
      assert.ok(maxBlocksAfterStep <= EVICTION.maxCacheSize / BS + 1, `held ${maxBlocksAfterStep} blocks after a step`);
      assert.equal(st.peakBlocks, Math.ceil(200 / BS), 'peak is the whole prompt (no eviction during prefill)');
      assert.ok(layersDiffered, 'layers chose different blocks (per-layer eviction)');
      // 200 prompt + 59 fed tokens, kept within 96 + 15 slots: the rest was evicted in whole blocks.
      assert.equal(st.evictedTokens % BS, 0);
      assert.ok(200 + 60 - 1 - st.evictedTokens <= EVICTION.maxCacheSize + BS - 1);
    });
  }

  it('a prompt prefilled in one chunk is evicted right after that chunk', async () => {
    const cfg = { ...base, maxNumBatchedTokens: 256, cacheEvictionConfig: EVICTION };
    const { engine, maxBlocksAfterStep } = await runChecked(cfg, [{ id: 0, promptLength: 200, decodeTokens: 8 }], noisy);
    const st = engine.stats(0);
    assert.equal(st.prefillChunks, 1);
    assert.equal(st.chunks[0].evictedTokens, 200 - 96 - 8, 'down to maxCacheSize plus the partial block right after prefill');
    assert.ok(maxBlocksAfterStep <= EVICTION.maxCacheSize / BS + 1);
  });

  for (const [mode, sa] of [
    ['TRISHAPE', { mode: 'TRISHAPE', numLastDenseTokensInPrefill: 40, numRetainedStartTokensInCache: 16, numRetainedRecentTokensInCache: 32 }],
    ['XATTENTION', { mode: 'XATTENTION', numLastDenseTokensInPrefill: 40, xattentionThreshold: 0.6, xattentionBlockSize: 16, xattentionStride: 4 }],
  ] as const) {
    it(`beside ${mode} sparse prefill: prefill stays sparse, generation evicts, dense chunks match the reference`, async () => {
      const cfg = { ...base, useSparseAttention: true, sparseAttentionConfig: sa, cacheEvictionConfig: EVICTION };
      const { engine, checked, maxBlocksAfterStep } = await runChecked(cfg, [{ id: 0, promptLength: 240, decodeTokens: 40 }, { id: 1, promptLength: 200, decodeTokens: 30 }]);
      for (const id of [0, 1]) {
        const st = engine.stats(id);
        assert.ok(st.prefillSparsity > 0, `sequence ${id} prefill was sparse`);
        assert.ok(st.evictedTokens > 0, `sequence ${id} evicted`);
        // Eviction happens only from the step that ends the prompt on.
        const firstEviction = st.chunks.find((c) => c.evictedTokens > 0)!;
        assert.ok(firstEviction.start + firstEviction.length >= st.promptLength);
      }
      assert.ok(checked > 0);
      assert.ok(maxBlocksAfterStep <= EVICTION.maxCacheSize / BS + 1);
    });
  }

  it('admits a request that only fits because of eviction, and preempts and replays correctly', async () => {
    const requests = [{ id: 0, promptLength: 40, decodeTokens: 250 }, { id: 1, promptLength: 50, decodeTokens: 200 }];
    assert.throws(() => new Engine({ model, config: { ...base, useCacheEviction: false, numKvBlocks: 13 } }).addRequest(requests[0]), /can never fit/);
    const { engine, checked } = await runChecked({ ...base, numKvBlocks: 13, cacheEvictionConfig: EVICTION }, requests);
    const st = [engine.stats(0), engine.stats(1)];
    assert.ok(st.some((s) => s.preemptions > 0), 'the small cache forced a preemption');
    assert.ok(st.every((s) => s.evictedTokens > 0));
    assert.equal(checked, st.reduce((a, s) => a + s.prefillChunks + s.decodeSteps, 0));
  });

  it('refuses settings it does not implement', () => {
    assert.throws(() => new Engine({ model, config: { ...base, cacheEvictionConfig: { ...EVICTION, applyRotation: true } } }), (e: unknown) => e instanceof UnsupportedError && /applyRotation/.test((e as Error).message));
    assert.throws(() => new Engine({ model, config: { ...base, dynamicSplitFuse: false } }), /dynamicSplitFuse false/);
    assert.throws(() => new Engine({ model, config: { ...base, enablePrefixCaching: true } }), /enablePrefixCaching is not implemented/);
  });

  it('checks eviction areas against the block size', () => {
    assert.throws(() => new Engine({ model, config: { ...base, cacheEvictionConfig: { startSize: 8, recentSize: 32, maxCacheSize: 96 } } }),
      /SchedulerConfig\.cacheEvictionConfig\.startSize must be a multiple of the KV block size \(16\), got 8/);
  });
});
