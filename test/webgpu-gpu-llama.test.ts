/**
 * GPU forward (model/gpu-llama.ts) = CPU forward (model/llama.ts) on bytes-llama-dev.
 *
 * f32 run: same arithmetic in a different summation order, so the bound is the CPU golden test's
 * (atol 2e-4 + rtol 1e-5) loosened 10× for the GPU's fused multiply-adds and attention's exp2.
 * f16 run: weights and activations rounded to f16 (relative step 2⁻¹¹ ≈ 4.9e-4) through 4 layers
 * of 512–1536-term sums; logits up to |16|, so 0.1 absolute leaves room for the rounding while a
 * wrong RoPE row, norm or GQA mapping moves logits by whole units. Greedy continuations must be
 * equal in both: the smallest top-2 margin along them is printed and must exceed the logit error.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { StatsAggregator } from '../src/core/stats.js';
import { createSparseMethod } from '../src/methods/index.js';
import type { SparseAttentionMethod } from '../src/methods/method.js';
import { TriShapeMethod } from '../src/methods/tri-shape/tri-shape.js';
import { generateGreedyGpu, prefillGpu } from '../src/model/gpu-generate.js';
import { type GpuKvCache, GpuLlamaModel } from '../src/model/gpu-llama.js';
import { argmax, generateGreedy, LlamaModel, prefill } from '../src/model/llama.js';
import { acquireTestGpu, type TestGpu } from './helpers/webgpu.js';

interface GoldenCase { name: string; tokens: number[]; greedy: number[] }

const FIXTURES = new URL('../../test/fixtures/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('golden-bytes-llama-dev.json', FIXTURES), 'utf8')) as { cases: GoldenCase[] };
const model = LlamaModel.load(new URL('bytes-llama-dev', FIXTURES).pathname);
const V = model.config.vocabSize;

function compare(gpu: Float32Array, cpu: Float32Array): { maxAbs: number; minMargin: number } {
  assert.equal(gpu.length, cpu.length);
  let maxAbs = 0;
  let minMargin = Infinity;
  for (let r = 0; r < cpu.length / V; r++) {
    const row = Array.from(cpu.subarray(r * V, (r + 1) * V)).sort((a, b) => b - a);
    minMargin = Math.min(minMargin, row[0] - row[1]);
    for (let i = r * V; i < (r + 1) * V; i++) maxAbs = Math.max(maxAbs, Math.abs(gpu[i] - cpu[i]));
  }
  return { maxAbs, minMargin };
}

let gpu: TestGpu;
before(async () => {
  gpu = await acquireTestGpu();
});
after(async () => gpu?.release());

describe('GPU Llama forward = CPU forward on bytes-llama-dev', { skip: (await acquireTestGpu()).skip }, () => {
  // py64 keeps the lavapipe run short; its golden continuation is 16 tokens.
  const py64 = golden.cases.find((c) => c.name === 'py64')!;
  const n = py64.tokens.length;
  let cpuLogits: Float32Array;
  before(async () => {
    cpuLogits = await prefill(model, py64.tokens, model.newCache(n), n, 'all');
  });

  /** Greedy tokens decoded from a cache that holds the prompt, starting from its last logits row. */
  async function decode(runner: GpuLlamaModel, cache: GpuKvCache, last: Float32Array, count: number): Promise<number[]> {
    const out = [argmax(last, V)];
    while (out.length < count) out.push(argmax((await runner.forward([out[out.length - 1]], cache)).logits, V));
    return out;
  }

  for (const [dtype, atol, chunk] of [['f32', 2e-3, 23], ['f16', 0.1, n]] as const) {
    it(`${dtype}: all logits of the 64-byte prompt (chunks of ${chunk}); greedy continuation equal to transformers'`, async () => {
      const runner = new GpuLlamaModel(model, gpu.ctx!, { dtype });
      const cache = runner.newCache(n + py64.greedy.length);
      try {
        const logits = await prefillGpu(runner, py64.tokens, cache, chunk, 'all');
        const d = compare(logits, cpuLogits);
        const greedy = await decode(runner, cache, logits.subarray((n - 1) * V), py64.greedy.length);
        console.log(`# ${dtype}: max |Δlogit| ${d.maxAbs.toExponential(2)}; smallest top-2 margin of the CPU logits ${d.minMargin.toFixed(3)} over ${n} rows`);
        assert.ok(d.maxAbs <= atol, `max |Δlogit| ${d.maxAbs} > ${atol}`);
        assert.deepEqual(greedy, py64.greedy);
      } finally {
        cache.destroy();
        runner.destroy();
      }
    });
  }

  const SPARSE: [string, () => SparseAttentionMethod][] = [
    ['tri_shape', () => new TriShapeMethod({ sinkTokens: 4, localWindow: 8, lastDenseQueries: 4, br: 8, bc: 8 })],
    ['xattention', () => createSparseMethod('xattention', { threshold: 0.6, blockSize: 16, stride: 4 })],
  ];
  for (const [name, make] of SPARSE) {
    it(`${name} on the GPU: its plan per layer (stats equal to the CPU run's), continuation equal to the CPU sparse run`, async () => {
      const sparse = (stats: StatsAggregator) => {
        const m = new LlamaModel(model.config, model.weights);
        for (const a of m.attention) a.method = make();
        m.stats = stats;
        return m;
      };
      const cpuStats = new StatsAggregator();
      const cpuGreedy = await generateGreedy(sparse(cpuStats), py64.tokens, { maxNewTokens: 3 });
      const gpuStats = new StatsAggregator();
      const runner = new GpuLlamaModel(sparse(gpuStats), gpu.ctx!, { dtype: 'f32' });
      try {
        assert.deepEqual(await generateGreedyGpu(runner, py64.tokens, { maxNewTokens: 3 }), cpuGreedy);
        assert.deepEqual(gpuStats.modules, cpuStats.modules);
        for (const m of cpuStats.modules) {
          const cpuPrefill = cpuStats.calls(m).filter((s) => s.phase === 'prefill');
          const gpuPrefill = gpuStats.calls(m).filter((s) => s.phase === 'prefill');
          assert.deepEqual(gpuPrefill.map((s) => [s.keptBlocks, s.totalBlocks]), cpuPrefill.map((s) => [s.keptBlocks, s.totalBlocks]), m);
          assert.ok(cpuPrefill[0].sparsity > 0.1, `${m}: sparsity ${cpuPrefill[0].sparsity}`);
        }
      } finally {
        runner.destroy();
      }
    });
  }
});
