/**
 * bench/make-random-llama.js writes a loadable HF-layout checkpoint marked random; `sparse-attn ttft`
 * times it on WebGPU and writes JSON rows; a length whose memory exceeds the budget is refused
 * before it runs; the memory plan is the sum of the buffers the runner allocates.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { checkFits, gpuMemoryPlan } from '../src/model/gpu-memory.js';
import { LlamaModel } from '../src/model/llama.js';
import { parseLlamaConfig } from '../src/model/llama-config.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const maker = fileURLToPath(new URL('../bench/make-random-llama.js', import.meta.url));
const exec = (file: string, args: string[]) =>
  promisify(execFile)(process.execPath, [file, ...args], { timeout: 120_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );

const gpu = await acquireTestGpu();
await gpu.release();

describe('random checkpoints and sparse-attn ttft', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ttft-'));
  const model = join(dir, 'tiny');

  it('make-random-llama writes a checkpoint the loader accepts, saying its weights are random', async () => {
    const r = await exec(maker, ['--shape', 'tiny', '--out', model]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /RANDOM weights/);
    const m = LlamaModel.load(model);
    assert.equal(m.config.numLayers, 2);
    assert.equal(m.config.headDim, 16);
    assert.match(readFileSync(join(model, 'README.md'), 'utf8'), /RANDOM WEIGHTS/);
  });

  it('ttft: a row per length and method in the JSON, dense first; over the budget: refused before running', { skip: gpu.skip }, async () => {
    const out = join(dir, 'ttft.json');
    const r = await exec(cli, ['ttft', '--model', model, '--lengths', '64,160', '--methods', 'dense,tri_shape', '--chunk', '64', '--out', out,
      '--settings', '{"tri_shape":{"localWindow":16,"sinkTokens":4,"lastDenseQueries":4,"br":16,"bc":16}}']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /weights are RANDOM/);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(report.bench, 'ttft');
    assert.equal(report.model.randomWeights, true);
    assert.deepEqual(report.rows.map((x: { length: number; method: string }) => [x.length, x.method]), [[64, 'dense'], [64, 'tri_shape'], [160, 'dense'], [160, 'tri_shape']]);
    for (const row of report.rows) {
      assert.equal(row.skipped, undefined);
      assert.ok(row.medianMs > 0 && Number.isInteger(row.firstToken));
    }
    assert.ok(report.rows[3].sparsity === undefined || report.rows[3].sparsity > 0, 'tri-shape at 160 skips blocks');
    const tight = await exec(cli, ['ttft', '--model', model, '--lengths', '64', '--methods', 'dense', '--gpu-memory-gib', '0.0001', '--out', join(dir, 'tight.json')]);
    assert.equal(tight.code, 0, tight.stderr);
    const refused = JSON.parse(readFileSync(join(dir, 'tight.json'), 'utf8')).rows[0];
    assert.match(refused.skipped, /^does not fit: weights .* KV cache .* activations/);
    assert.equal(refused.ms.length, 0);
  });

  it('memory plan: Llama-3.2-1B shape at 128K in f16, and a binding limit that refuses it', () => {
    const c = parseLlamaConfig({ model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256 });
    const p = gpuMemoryPlan(c, 'f16', 131072, 4096, 1);
    assert.equal(p.cacheBytes, 2 * 16 * 131072 * 8 * 64 * 2 + 2 * 131072 * 32 * 4);
    assert.equal(p.buffers['K or V cache (one layer)'], 131072 * 8 * 64 * 2);
    assert.throws(() => checkFits(p, { maxStorageBufferBindingSize: 2 ** 27, maxBufferSize: 2 ** 32 }), /does not fit: the embed weights buffer needs 0\.49 GiB/);
    assert.doesNotThrow(() => checkFits(p, { maxStorageBufferBindingSize: 2 ** 32, maxBufferSize: 2 ** 32 }));
  });
});
