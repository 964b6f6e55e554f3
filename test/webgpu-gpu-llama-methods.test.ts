/**
 * Every method on the GPU forward pass (model/gpu-attention.ts) = the CPU LlamaModel with the same
 * method (also with per-head knob values, PerHeadMethod), on bytes-llama-dev (head dim 128, GQA 4:2) in f32: all logits of a 45-byte prompt
 * prefilled in chunks of 19 (so later chunks attend to the cache with a query offset, and the last
 * chunk is short), then two decode steps; per-layer statistics (kept/total blocks) equal to the CPU's.
 * Bound: the dense GPU-vs-CPU bound of webgpu-gpu-llama.test.ts (2e-3) — a block the GPU decided
 * differently would move logits by far more than that. SageSLA quantizes Q/K to int8 per block:
 * the GPU quantizes like the CPU, but a rare one-unit difference at a rounding boundary, carried
 * through 4 layers, moves logits by ~1e-2; its bound is 0.05 and, so that the test still tells the
 * int8 path from the float one, under a fifth of the distance between CPU SageSLA and CPU SLA.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { StatsAggregator } from '../src/core/stats.js';
import { createSparseMethod } from '../src/methods/index.js';
import type { SparseAttentionMethod } from '../src/methods/method.js';
import { PerHeadMethod } from '../src/methods/per-head.js';
import { prefillGpu } from '../src/model/gpu-generate.js';
import { GpuLlamaModel } from '../src/model/gpu-llama.js';
import { LlamaModel, prefill } from '../src/model/llama.js';
import { acquireTestGpu, type TestGpu } from './helpers/webgpu.js';

const FIXTURES = new URL('../../test/fixtures/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('golden-bytes-llama-dev.json', FIXTURES), 'utf8')) as { cases: { name: string; tokens: number[] }[] };
const model = LlamaModel.load(new URL('bytes-llama-dev', FIXTURES).pathname);
const tokens = golden.cases.find((c) => c.name === 'py64')!.tokens.slice(0, 45);
const CHUNK = 19;
const DECODE = [101, 32];

let gpu: TestGpu;
before(async () => {
  gpu = await acquireTestGpu();
});
after(async () => gpu?.release());

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

type Make = (method?: string) => SparseAttentionMethod;
const plain = (name: string, settings: Record<string, unknown>): [string, string, Make] =>
  [name, JSON.stringify(settings), (method = name) => createSparseMethod(method, settings)];
// Per-head values (4 query heads), each head its own instance, as PerHeadMethod on the CPU.
const perHead = (name: string, shared: Record<string, unknown>, values: Record<string, number[]>): [string, string, Make] =>
  [name, `per head ${JSON.stringify(values)} ${JSON.stringify(shared)}`, (method = name) => new PerHeadMethod(method, shared, values)];
const METHODS: [string, string, Make][] = [
  plain('flash_skip_softmax', { threshold: 0.3, br: 8, bc: 8 }),
  plain('flash_skip_softmax', { threshold: 0.2, br: 5, bc: 7, variant: 'sequential' }),
  // The middle chunk [19, 38) holds 3 of the prompt's 10 last dense rows; the last [38, 45) is planned dense.
  plain('tri_shape', { sinkTokens: 2, localWindow: 6, lastDenseQueries: 10, br: 4, bc: 4 }),
  plain('sla', { topkRatio: 0.3, BLKQ: 8, BLKK: 8 }),
  plain('sla', { topkRatio: 0.4, BLKQ: 5, BLKK: 7, proj: 'identity' }),
  plain('sage_sla', { topkRatio: 0.3, BLKQ: 8, BLKK: 8, proj: 'identity' }),
  perHead('xattention', { blockSize: 8, stride: 4 }, { threshold: [0.2, 0.9, 0.5, 0.99] }),
  perHead('flash_skip_softmax', { br: 8, bc: 8 }, { threshold: [0.5, 0.3, 0.9, 0.05] }),
  perHead('sla', { BLKQ: 8, BLKK: 8, proj: 'identity' }, { topkRatio: [0.2, 0.6, 0.4, 1] }),
];

describe('every method on the GPU forward pass = the CPU model with the same method', { skip: (await acquireTestGpu()).skip }, () => {
  for (const [name, what, make] of METHODS) {
    it(`${name} ${what}: logits of chunked prefill and decode, per-layer statistics`, async () => {
      const sparse = (stats: StatsAggregator, method = name) => {
        const m = new LlamaModel(model.config, model.weights);
        for (const a of m.attention) a.method = make(method);
        m.stats = stats;
        return m;
      };
      const cpuRun = async (method: string, stats: StatsAggregator) => {
        const cpu = sparse(stats, method);
        const cpuCache = cpu.newCache(tokens.length + DECODE.length);
        const out = [await prefill(cpu, tokens, cpuCache, CHUNK, 'all')];
        for (const t of DECODE) out.push((await cpu.forward([t], cpuCache)).logits);
        return out;
      };
      const cpuStats = new StatsAggregator();
      const cpuLogits = await cpuRun(name, cpuStats);

      const gpuStats = new StatsAggregator();
      const runner = new GpuLlamaModel(sparse(gpuStats), gpu.ctx!, { dtype: 'f32' });
      const cache = runner.newCache(tokens.length + DECODE.length);
      try {
        const gpuLogits = [await prefillGpu(runner, tokens, cache, CHUNK, 'all')];
        for (const t of DECODE) gpuLogits.push((await runner.forward([t], cache)).logits);
        const diffs = gpuLogits.map((g, i) => maxAbsDiff(g, cpuLogits[i]));
        console.log(`# ${name}: max |Δlogit| prefill ${diffs[0].toExponential(2)}, decode ${diffs.slice(1).map((d) => d.toExponential(2)).join(', ')}`);
        const bound = name === 'sage_sla' ? 0.05 : 2e-3;
        diffs.forEach((d, i) => assert.ok(d <= bound, `step ${i}: max |Δlogit| ${d} > ${bound}`));
        if (name === 'sage_sla') {
          const float = maxAbsDiff((await cpuRun('sla', new StatsAggregator()))[0], cpuLogits[0]);
          console.log(`# CPU sage_sla vs CPU sla: max |Δlogit| ${float.toExponential(2)}`);
          assert.ok(diffs[0] < float / 5, `GPU-CPU ${diffs[0]} must be well under the int8-vs-float distance ${float}`);
        }
        assert.deepEqual(gpuStats.modules, cpuStats.modules);
        let sparsest = 0;
        for (const m of cpuStats.modules) {
          const c = cpuStats.calls(m);
          const g = gpuStats.calls(m);
          assert.deepEqual(g.map((s) => [s.phase, s.keptBlocks, s.totalBlocks]), c.map((s) => [s.phase, s.keptBlocks, s.totalBlocks]), m);
          sparsest = Math.max(sparsest, ...c.filter((s) => s.phase === 'prefill').map((s) => s.sparsity));
        }
        assert.ok(sparsest > 0.1, `the settings must skip blocks somewhere (largest prefill sparsity ${sparsest})`);
      } finally {
        cache.destroy();
        runner.destroy();
      }
    });
  }

  it('model.onAttention on the GPU: each layer\'s q after RoPE and the cache K/V equal the CPU operands', async () => {
    const seen = (m: LlamaModel) => {
      const out: { name: string; q: Float32Array; k: Float32Array; v: Float32Array; shape: number[] }[] = [];
      m.onAttention = (mod, q, k, v, place) => out.push({ name: mod.name, q: q.toLayout('BHLD').toFloat32Array(), k: k.toLayout('BHLD').toFloat32Array(), v: v.toLayout('BHLD').toFloat32Array(), shape: [q.heads, q.length, k.heads, k.length, place?.promptRowsAfter ?? -1] });
      return out;
    };
    const cpu = new LlamaModel(model.config, model.weights);
    const cpuSeen = seen(cpu);
    await prefill(cpu, tokens, cpu.newCache(tokens.length), CHUNK, 'last');
    const m = new LlamaModel(model.config, model.weights);
    const gpuSeen = seen(m);
    const runner = new GpuLlamaModel(m, gpu.ctx!, { dtype: 'f32' });
    const cache = runner.newCache(tokens.length);
    try {
      await prefillGpu(runner, tokens, cache, CHUNK, 'last');
      assert.deepEqual(gpuSeen.map((x) => [x.name, x.shape]), cpuSeen.map((x) => [x.name, x.shape]));
      // Each chunk's place in the prompt (the last number of shape): 45 tokens in chunks of 19.
      assert.deepEqual([...new Set(gpuSeen.map((x) => x.shape[4]))], [26, 7, 0]);
      gpuSeen.forEach((g, i) => {
        for (const key of ['q', 'k', 'v'] as const) assert.ok(maxAbsDiff(g[key], cpuSeen[i][key]) < 1e-3, `${g.name} call ${i} ${key}: ${maxAbsDiff(g[key], cpuSeen[i][key])}`);
      });
    } finally {
      cache.destroy();
      runner.destroy();
    }
  });

  it('a method without GPU kernels is refused, naming the ones that run', async () => {
    const m = new LlamaModel(model.config, model.weights);
    m.attention[1].method = { ...createSparseMethod('tri_shape', {}), name: 'made_up' } as never;
    const runner = new GpuLlamaModel(m, gpu.ctx!, { dtype: 'f32' });
    const cache = runner.newCache(8);
    try {
      await assert.rejects(runner.forward([1, 2, 3], cache), /no GPU kernels for method "made_up" \(it runs: xattention, tri_shape, flash_skip_softmax, sla, sage_sla\)/);
      await assert.rejects(runner.forward([1, 2, 3], cache, { tokensAfter: -1 }), /tokensAfter must be an integer >= 0, got -1/);
    } finally {
      cache.destroy();
      runner.destroy();
    }
  });
});
