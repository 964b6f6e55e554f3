/**
 * The engine on WebGPU with its KV cache resident on the GPU = the CPU engine: same chunk records
 * (mode, skipped blocks, threshold, kept pairs, evictions), outputs within f32 tolerance, for several
 * sequences, chunked prefill, TRISHAPE, XATTENTION, decode, preemption, freeing and eviction. The
 * GPU copy starts poisoned with NaN, so a read of a slot the cache never wrote shows; after every
 * step the GPU buffers hold exactly the host storage's written slots. And no call uploads K/V: only
 * the chunk's new rows reach the cache buffers.
 */
import { gpuTraffic as traffic } from '../src/bench/gpu-traffic.js';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { SchedulerConfigInput } from '../src/config/openvino.js';
import { createWebGpuBackend, residentKvFor, type WebGpuResidentKv } from '../src/backends/webgpu/index.js';
import { pagedAttentionOnWebGpu } from '../src/backends/webgpu/attention/paged-backend.js';
import type { AttentionBackend } from '../src/backends/backend.js';
import { Engine } from '../src/engine/engine.js';
import type { SequenceRequest } from '../src/engine/scheduler.js';
import { syntheticModel } from '../src/engine/synthetic-model.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';
import { BufferUsage } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { type DType, HeadTensor } from '../src/core/tensor.js';
import { roundToF16 } from '../src/core/f16.js';

const gpu = await acquireTestGpu();
after(() => gpu.release());
const model = syntheticModel({ numLayers: 2, heads: 2, kvHeads: 1, headDim: 16, seed: 11 });
const BS = 16 as const;
const EVICTION = { startSize: 16, recentSize: 32, maxCacheSize: 96 };
const TRISHAPE = { mode: 'TRISHAPE', numLastDenseTokensInPrefill: 40, numRetainedStartTokensInCache: 16, numRetainedRecentTokensInCache: 32 } as const;
const XATTENTION = { mode: 'XATTENTION', numLastDenseTokensInPrefill: 40, xattentionThreshold: 0.6, xattentionBlockSize: 16, xattentionStride: 4 } as const;

/** A resident copy attached before the run, every element NaN (nothing is written yet). */
function poisonedCopy(engine: Engine, dtype: DType = 'f32'): WebGpuResidentKv {
  const copy = residentKvFor(gpu.ctx!.device, engine.cache, dtype)!;
  const n = engine.cache.keys[0].length;
  const nan = dtype === 'f32' ? new Float32Array(n).fill(NaN) : new Uint16Array(n).fill(0x7e00);
  for (const b of [...copy.keys, ...copy.values]) gpu.ctx!.device.queue.writeBuffer(b, 0, nan);
  return copy;
}

/** Every written slot of every running sequence: GPU buffer = host storage, bit for bit. */
async function assertResidentEqualsHost(engine: Engine, copy: WebGpuResidentKv, ids: number[], at: string): Promise<number> {
  const { cache } = engine;
  let slots = 0;
  for (let layer = 0; layer < cache.numLayers; layer++) {
    const { k, v } = await copy.read(layer);
    for (const id of ids.filter((i) => engine.scheduler.isRunning(i))) {
      const table = cache.blockTable(id, layer);
      for (let t = 0; t < engine.scheduler.cachedTokens(id); t++) {
        for (let h = 0; h < cache.kvHeads; h++) {
          const o = cache.slotOffset(table[Math.floor(t / BS)], h, t % BS);
          for (let d = 0; d < cache.headDim; d++) {
            const [hk, hv] = [cache.keys[layer][o + d], cache.values[layer][o + d]].map((x) => (copy.dtype === 'f16' ? roundToF16(x) : x));
            if (!Object.is(k[o + d], hk) || !Object.is(v[o + d], hv)) {
              assert.fail(`${at}: sequence ${id} layer ${layer} slot ${t} head ${h} channel ${d}: GPU ${k[o + d]}/${v[o + d]}, host ${hk}/${hv}`);
            }
          }
          slots++;
        }
      }
    }
  }
  return slots;
}

async function runBoth(config: SchedulerConfigInput, requests: SequenceRequest[], dtype: DType = 'f32') {
  const cpu = new Engine({ model, config });
  const webgpu = new Engine({ model, config, backend: createWebGpuBackend(gpu.ctx, { kvCacheDtype: dtype }) });
  for (const e of [cpu, webgpu]) for (const r of requests) e.addRequest(r);
  await cpu.run(5000);
  const copy = poisonedCopy(webgpu, dtype);
  const ids = requests.map((r) => r.id);
  let checkedSlots = 0;
  for (let s = 0; s < 5000 && (await webgpu.step()); s++) checkedSlots += await assertResidentEqualsHost(webgpu, copy, ids, `after step ${s}`);
  assert.ok(webgpu.done && checkedSlots > 0, 'the GPU engine finished, and the resident cache was compared');
  assert.equal(webgpu.cache.deviceCopy, copy, 'one resident copy served the whole run');
  for (const r of requests) {
    assert.deepEqual(webgpu.stats(r.id), cpu.stats(r.id), `sequence ${r.id}: chunk records and stats`);
    for (let layer = 0; layer < model.numLayers; layer++) assertTensorsClose(webgpu.output(r.id, layer), cpu.output(r.id, layer), TOL[dtype], `sequence ${r.id} layer ${layer}`);
  }
  webgpu.dispose();
  return requests.map((r) => cpu.stats(r.id));
}

describe('engine on WebGPU with the KV cache resident on the GPU = CPU engine', { skip: gpu.skip }, () => {
  it('dense: several sequences, chunked prefill, decode, preemption and freeing', async () => {
    const config = { maxNumBatchedTokens: 48, numKvBlocks: 12, kvBlockSize: BS } as const;
    const st = await runBoth(config, [{ id: 0, promptLength: 100, decodeTokens: 30 }, { id: 1, promptLength: 60, decodeTokens: 20 }, { id: 2, promptLength: 50, decodeTokens: 4 }]);
    assert.ok(st.some((s) => s.preemptions > 0), 'the small cache forced a preemption');
    assert.ok(st.every((s) => s.prefillChunks > 1 && s.decodeSteps > 0), 'every prompt was chunked and decoded');
  });

  it('TRISHAPE: skipped blocks and outputs as on the CPU', async () => {
    const config = { maxNumBatchedTokens: 40, numKvBlocks: 40, kvBlockSize: BS, useSparseAttention: true, sparseAttentionConfig: TRISHAPE } as const;
    const st = await runBoth(config, [{ id: 0, promptLength: 230, decodeTokens: 3 }, { id: 1, promptLength: 200, decodeTokens: 2 }]);
    assert.ok(st.every((s) => s.skippedBlocks > 0), 'every sequence skipped blocks');
  });

  it('XATTENTION: masks, thresholds and outputs as on the CPU', async () => {
    const config = { maxNumBatchedTokens: 48, numKvBlocks: 40, kvBlockSize: BS, useSparseAttention: true, sparseAttentionConfig: XATTENTION } as const;
    const st = await runBoth(config, [{ id: 0, promptLength: 150, decodeTokens: 2 }, { id: 1, promptLength: 70, decodeTokens: 1 }]);
    assert.ok(st.some((s) => s.prefillSparsity > 0 && s.chunks.some((c) => c.threshold !== null)), 'a chunk was sparse with a threshold');
  });

  for (const [name, sa] of [['dense', null], ['TRISHAPE', TRISHAPE], ['XATTENTION', XATTENTION]] as const) {
    it(`cache eviction beside ${name} prefill: evicted blocks, then freed ones written again`, async () => {
      const config = {
        maxNumBatchedTokens: 48, numKvBlocks: 40, kvBlockSize: BS, useCacheEviction: true, cacheEvictionConfig: EVICTION,
        ...(sa ? { useSparseAttention: true, sparseAttentionConfig: sa } : {}),
      };
      const st = await runBoth(config, [{ id: 0, promptLength: 200, decodeTokens: 24 }, { id: 1, promptLength: 130, decodeTokens: 20 }]);
      assert.ok(st.every((s) => s.evictedTokens > 0), 'every sequence evicted');
    });
  }

  it('f16 resident cache: dense with preemption, TRISHAPE with eviction; outputs within f16 tolerance', async () => {
    const dense = { maxNumBatchedTokens: 48, numKvBlocks: 12, kvBlockSize: BS } as const;
    const st = await runBoth(dense, [{ id: 0, promptLength: 100, decodeTokens: 30 }, { id: 1, promptLength: 60, decodeTokens: 20 }, { id: 2, promptLength: 50, decodeTokens: 4 }], 'f16');
    assert.ok(st.some((s) => s.preemptions > 0), 'preempted');
    const tri = { maxNumBatchedTokens: 48, numKvBlocks: 40, kvBlockSize: BS, useCacheEviction: true, cacheEvictionConfig: EVICTION, useSparseAttention: true, sparseAttentionConfig: TRISHAPE } as const;
    const st2 = await runBoth(tri, [{ id: 0, promptLength: 200, decodeTokens: 20 }, { id: 1, promptLength: 130, decodeTokens: 12 }], 'f16');
    assert.ok(st2.some((s) => s.skippedBlocks > 0) && st2.every((s) => s.evictedTokens > 0), 'skipped blocks, and every sequence evicted');
  });

  it('eviction with preemption in a cache that only fits because of eviction', async () => {
    const config = { maxNumBatchedTokens: 48, numKvBlocks: 13, kvBlockSize: BS, useCacheEviction: true, cacheEvictionConfig: EVICTION } as const;
    const st = await runBoth(config, [{ id: 0, promptLength: 40, decodeTokens: 150 }, { id: 1, promptLength: 50, decodeTokens: 120 }]);
    assert.ok(st.some((s) => s.preemptions > 0) && st.every((s) => s.evictedTokens > 0), 'preempted and evicted');
  });
});

/** The WebGPU backend as it was before the resident cache: each paged call (and the engine's mask planning) uploads. */
function uploadingBackend(): AttentionBackend {
  const b = createWebGpuBackend(gpu.ctx);
  return {
    ...b,
    pagedAttention: (input) => pagedAttentionOnWebGpu(gpu.ctx!, input, { upload: true }),
    methodHooks: (m) => {
      const hooks = b.methodHooks?.(m);
      return hooks && { plan: hooks.plan, run: hooks.run, time: hooks.time };
    },
  };
}

describe('resident KV cache: no per-call K/V upload', { skip: gpu.skip }, () => {
  for (const [name, sa] of [['dense', null], ['XATTENTION', { ...XATTENTION, numLastDenseTokensInPrefill: 16 }]] as const) {
    it(`${name}: a step moves only its new rows into the cache buffers and uploads no cache; the upload path would`, async () => {
      const device = gpu.ctx!.device;
      const config = { maxNumBatchedTokens: 32, numKvBlocks: 64, kvBlockSize: BS, ...(sa ? { useSparseAttention: true, sparseAttentionConfig: sa } : {}) };
      const layerBytes = 64 * model.kvHeads * BS * model.headDim * 4;
      const measured: Record<string, { written: number; uploaded: number; tokens: number }[]> = {};
      for (const [path, backend] of [['resident', createWebGpuBackend(gpu.ctx)], ['upload', uploadingBackend()]] as const) {
        const engine = new Engine({ model, config, backend });
        engine.addRequest({ id: 0, promptLength: 100, decodeTokens: 2 });
        const copy = path === 'resident' ? poisonedCopy(engine) : null;
        measured[path] = [];
        while (!engine.done) {
          const before = copy ? copy.traffic.rowBytes : 0;
          let tokens = 0;
          const m = await traffic(device, async () => {
            tokens = (await engine.step())!.totalTokens;
          });
          measured[path].push({ ...m, tokens });
          // The new rows of K and V, every layer: tokens · Hkv · D · 4 bytes, twice.
          const rows = tokens * model.kvHeads * model.headDim * 4 * 2 * model.numLayers;
          if (copy) {
            assert.equal(copy.traffic.rowBytes - before, rows, 'the storage counted exactly the new rows');
            // Beside the rows, writeBuffer only fills each dispatch's Params uniform (a few hundred bytes).
            assert.ok(m.written >= rows && m.written < rows + 2048 * model.numLayers, `writeBuffer moved ${m.written} B for ${rows} B of rows`);
          }
        }
        if (sa) assert.ok(engine.stats(0).chunks.some((c) => c.kind === 'xattention'), 'a chunk planned an XAttention mask');
        engine.dispose();
      }
      assert.equal(measured.resident.length, measured.upload.length);
      // Per layer: q (for attention, and for the plan), a block table, a mask's block list.
      const callBytes = (tokens: number) => model.numLayers * (2 * model.heads * tokens * model.headDim * 4 + 2048);
      for (const m of measured.resident) assert.ok(m.uploaded <= callBytes(m.tokens), `a resident step of ${m.tokens} tokens uploaded ${m.uploaded} B (a cache layer is ${layerBytes} B)`);
      for (const m of measured.upload) assert.ok(m.uploaded >= 2 * 2 * layerBytes, `an upload step uploaded ${m.uploaded} B: both layers' K and V`);
    });
  }

  it('a lost device gets a fresh copy from the host storage; a PagedKvView without attachDeviceCopy is uploaded per call', async () => {
    const config = { maxNumBatchedTokens: 48, numKvBlocks: 20, kvBlockSize: BS } as const;
    const engine = new Engine({ model, config, backend: createWebGpuBackend(gpu.ctx) });
    engine.addRequest({ id: 0, promptLength: 60, decodeTokens: 1 });
    await engine.step();
    const first = engine.cache.deviceCopy as WebGpuResidentKv;
    assert.ok(first && first.traffic.initialBytes === 2 * 2 * 20 * BS * 16 * 4, 'one whole upload made the copy');
    // Another device (as after a loss): the copy is replaced, seeded from the host.
    const other = await (await import('../src/backends/webgpu/index.js')).createWebGpuContext();
    try {
      const fresh = residentKvFor(other.device, engine.cache)!;
      assert.notEqual(fresh, first);
      assert.equal(engine.cache.deviceCopy, fresh);
      const { k } = await fresh.read(1);
      assert.deepEqual(k, engine.cache.keys[1], 'the fresh copy holds the host storage');
      fresh.dispose();
    } finally {
      other.destroy();
    }
    const view = { ...engine.cache, keys: engine.cache.keys, values: engine.cache.values, gatherBlocks: engine.cache.gatherBlocks.bind(engine.cache), attachDeviceCopy: undefined };
    assert.equal(residentKvFor(gpu.ctx!.device, view), null);
    const input = { layer: 1, blockTable: engine.cache.blockTable(0, 1), q: HeadTensor.randn({ batch: 1, heads: 2, length: 5, headDim: 16 }, 4), contextLength: 48, visibleBlocks: [0, 1, 2] };
    const backend = createWebGpuBackend(gpu.ctx);
    assertTensorsClose(await backend.pagedAttention({ ...input, cache: view }), await backend.pagedAttention({ ...input, cache: engine.cache }), TOL.f32, 'uploaded = resident');
    engine.dispose();
  });
});
