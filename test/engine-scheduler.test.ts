/**
 * Scheduler invariants over seeded random workloads with tight caches (no attention computed):
 * the token budget holds every step, chunks continue exactly where the sequence stopped, KV slots
 * are reserved before use and never exceed the cache, and every request finishes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSchedulerConfig } from '../src/config/openvino.js';
import { Rng } from '../src/core/rng.js';
import { PagedKvCache } from '../src/engine/paged-kv-cache.js';
import { Scheduler } from '../src/engine/scheduler.js';

describe('Scheduler invariants on random workloads', () => {
  for (let seed = 1; seed <= 12; seed++) {
    it(`seed ${seed}`, () => {
      const rng = new Rng(seed);
      const bs = rng.next() < 0.5 ? 16 : 32;
      const requests = Array.from({ length: 2 + rng.int(4) }, (_, id) => ({ id, promptLength: 1 + rng.int(150), decodeTokens: rng.int(40) }));
      const maxBlocks = Math.max(...requests.map((r) => Math.ceil((r.promptLength + r.decodeTokens) / bs)));
      const config = parseSchedulerConfig({ maxNumBatchedTokens: 8 + rng.int(100), numKvBlocks: maxBlocks + rng.int(4), kvBlockSize: bs });
      const cache = new PagedKvCache({ numLayers: 1, numBlocks: config.numKvBlocks, kvHeads: 1, headDim: 1, blockSize: bs });
      const sched = new Scheduler(config, cache);
      for (const r of requests) sched.addRequest(r);
      const processed = new Map(requests.map((r) => [r.id, 0]));
      let steps = 0;
      while (sched.hasUnfinished) {
        assert.ok(++steps < 5000, 'scheduler makes progress');
        const s = sched.schedule();
        assert.ok(s.chunks.length > 0, `step ${s.step} schedules something`);
        assert.ok(s.totalTokens <= config.maxNumBatchedTokens, `step ${s.step} within the token budget`);
        assert.equal(s.totalTokens, s.chunks.reduce((a, c) => a + c.length, 0));
        for (const id of s.preempted) processed.set(id, 0);
        const ids = s.chunks.map((c) => c.seqId);
        assert.equal(new Set(ids).size, ids.length, 'one chunk per sequence per step');
        for (const c of s.chunks) {
          assert.ok(!s.preempted.includes(c.seqId), 'a sequence preempted this step does not run in it');
          assert.equal(c.start, processed.get(c.seqId), `sequence ${c.seqId} continues where it stopped`);
          assert.ok(cache.capacity(c.seqId) >= c.start + c.length, 'slots reserved before the step');
          if (c.phase === 'decode') assert.equal(c.length, 1);
          processed.set(c.seqId, c.start + c.length);
        }
        assert.ok(cache.allocator.usedCount <= config.numKvBlocks);
        sched.finishStep(s);
      }
      for (const r of requests) assert.equal(processed.get(r.id), r.promptLength + r.decodeTokens, `request ${r.id} fully processed`);
      assert.equal(cache.freeBlocks, config.numKvBlocks, 'every block returned');
    });
  }
});
