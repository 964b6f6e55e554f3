/// <reference types="@webgpu/types" />
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { attentionFlops, benchCase, denseFlops, tflopsOf } from '../src/bench/cases.js';
import { BenchValidationError, checkOutput, checkSameBlocks, checkSameValues } from '../src/bench/check.js';
import { cpuDeviceInfo, machineTag } from '../src/bench/device-info.js';
import { GPU_WARM_MS, timeOnDevice, timerRuns } from '../src/bench/gpu-timing.js';
import { timedOnce } from '../src/bench/harness.js';
import { emitReport, scriptReport, shellWords } from '../src/bench/report.js';
import { defaultResultPath, resultsFolder } from '../src/bench/results.js';
import { BlockMask } from '../src/core/block-mask.js';
import { HeadTensor } from '../src/core/tensor.js';

const NO_ENV = {};

describe('bench results folders', () => {
  it('name the machine: cpu for the CPU reference and software adapters, the GPU model number otherwise', () => {
    assert.equal(machineTag(cpuDeviceInfo(), NO_ENV), 'cpu');
    assert.equal(machineTag({ name: 'llvmpipe', backend: 'webgpu', softwareAdapter: true }, NO_ENV), 'cpu');
    const h100 = { name: 'NVIDIA: 580.159.04 580.159.4.0', backend: 'webgpu', adapter: 'nvidia  (dawn-node)', model: 'nvidia-h100-80gb-hbm3', softwareAdapter: false };
    assert.equal(machineTag(h100, NO_ENV), 'h100');
    assert.equal(machineTag({ ...h100, model: 'nvidia-geforce-rtx-4090' }, NO_ENV), 'rtx-4090');
    assert.equal(machineTag({ ...h100, model: 'apple-m2', name: 'Apple M2', adapter: 'apple metal-3 (dawn-node)' }, NO_ENV), 'apple');
    assert.equal(machineTag(h100, { SPARSE_ATTN_MACHINE: 'H200 node 3' }), 'h200-node-3');
  });

  it('put a day of one machine in bench/results/<date>-<machine>/', () => {
    const day = new Date('2026-11-23T15:00:00Z');
    assert.equal(resultsFolder('h100', day), 'bench/results/2026-11-23-h100');
    const saved = process.env.SPARSE_ATTN_MACHINE;
    delete process.env.SPARSE_ATTN_MACHINE;
    try {
      assert.equal(defaultResultPath('sla.json', cpuDeviceInfo(), day), 'bench/results/2026-11-23-cpu/sla.json');
    } finally {
      if (saved !== undefined) process.env.SPARSE_ATTN_MACHINE = saved;
    }
  });
});

describe('bench checks against the CPU reference', () => {
  const e = new Float32Array([1, -2, 3, 4]);

  it('pass within the relative L2 limit and report the error', () => {
    const a = new Float32Array([1, -2, 3, 4.01]);
    const c = checkOutput('near', a, e, 1e-2);
    const d = Math.fround(4.01) - 4;
    assert.ok(Math.abs(c.relativeL2 - d / Math.sqrt(30)) < 1e-12);
    assert.equal(c.maxAbsError, d);
    assert.equal(c.limit, 1e-2);
  });

  it('throw above the limit, on NaN and on a length mismatch', () => {
    assert.throws(() => checkOutput('far', new Float32Array([1, -2, 3, 5]), e, 1e-2), BenchValidationError);
    assert.throws(() => checkOutput('nan', new Float32Array([1, -2, 3, NaN]), e, 1), /validation failed: nan/);
    assert.throws(() => checkOutput('short', new Float32Array([1, -2, 3]), e, 1), /3 values, the reference has 4/);
  });

  it('compare tensors in the actual tensor\'s layout', () => {
    const t = HeadTensor.randn({ batch: 1, heads: 2, length: 5, headDim: 8 }, 1);
    assert.equal(checkOutput('same', t.toLayout('BLHD'), t, 0).relativeL2, 0);
  });

  it('require the same kept blocks and the same integer values', () => {
    const dims = { batch: 1, heads: 1, queryLength: 64, keyLength: 64, blockRows: 16, blockCols: 16, causal: true };
    const full = BlockMask.full(dims);
    checkSameBlocks('full', full, BlockMask.full(dims));
    assert.throws(() => checkSameBlocks('one off', BlockMask.fromPredicate(dims, (_b, _h, qb, kb) => kb <= qb && !(qb === 3 && kb === 1)), full), /1 blocks differ/);
    checkSameValues('lut', [1, 2, 3], new Int32Array([1, 2, 3]));
    assert.throws(() => checkSameValues('lut', [1, 2, 3], [1, 2, 4]), BenchValidationError);
    assert.throws(() => checkSameValues('lut', [1, 2], [1, 2, 3]), BenchValidationError);
  });
});

describe('bench timing and reports', () => {
  it('warm a GPU up before timing, not a software adapter', () => {
    assert.deepEqual(timerRuns({ report: { softwareAdapter: true } }, 5), { iterations: 5, warmMs: 0, warmRuns: 1, profile: true });
    assert.equal(timerRuns({ report: { softwareAdapter: false } }, 3, false).warmMs, GPU_WARM_MS);
  });

  it('time fenced runs: one warm-up, the timed runs, each run\'s products destroyed once, the median', async () => {
    let submitted = 0;
    const device = {
      features: new Set<string>(),
      createCommandEncoder: () => ({ finish: () => ({}) }),
      queue: { submit: () => void submitted++, onSubmittedWorkDone: async () => undefined },
    } as unknown as GPUDevice;
    let made = 0;
    let destroyed = 0;
    const t = await timeOnDevice(device, async () => {
      made++;
      return [{ destroy: () => void destroyed++ }, { destroy: () => void destroyed++ }];
    }, { iterations: 3, warmRuns: 1, warmMs: 0, profile: true });
    assert.equal(made, 4);
    assert.equal(submitted, 4);
    assert.equal(destroyed, 8);
    assert.equal(t.runs.length, 3);
    assert.equal(t.ms, [...t.runs].sort((a, b) => a - b)[1]);
    assert.equal(t.minMs, Math.min(...t.runs));
    assert.equal(t.kernelMs, undefined); // no timestamp-query on this device
  });

  it('warm up with runs queued back to back under one fence, each run\'s products destroyed once', async () => {
    const submits: number[] = [];
    const device = {
      features: new Set<string>(),
      createCommandEncoder: () => ({ finish: () => ({}) }),
      // Runs take no time, so each warm-up batch is the most runs one submit takes.
      queue: { submit: (cmds: unknown[]) => void submits.push(cmds.length), onSubmittedWorkDone: async () => undefined },
    } as unknown as GPUDevice;
    for (const warmBatch of [undefined, 1]) {
      submits.length = 0;
      let made = 0;
      let destroyed = 0;
      const t = await timeOnDevice(device, async () => {
        made++;
        return [{ destroy: () => void destroyed++ }];
      }, { iterations: 2, warmRuns: 1, warmMs: 100, profile: false, ...(warmBatch ? { warmBatch } : {}) });
      assert.equal(t.runs.length, 2);
      assert.equal(submits[0], 1, 'the first run (it compiles) alone');
      const warm = submits.slice(1, -2);
      assert.ok(warm.length > 0, 'some warm-up ran');
      if (warmBatch) assert.ok(warm.every((n) => n === 1), `warm-up submits: ${warm.join(',')}`);
      else assert.ok(warm.every((n) => n === 16), `warm-up submits: ${warm.join(',')}`);
      assert.deepEqual(submits.slice(-2), [1, 1], 'timed runs alone');
      assert.equal(made, submits.reduce((a, b) => a + b, 0));
      assert.equal(destroyed, made);
    }
  });

  it('count FLOPs by one rule for cases and plain shapes', async () => {
    const c = benchCase({ method: 'dense', heads: 32, kvHeads: 8, headDim: 128, queryLength: 4096 });
    assert.equal(attentionFlops({ batch: 1, heads: 32, queryLength: 4096, keyLength: 4096, headDim: 128, causal: true }), denseFlops(c));
    assert.equal(tflopsOf(2e12, 1000), 2);
    const once = await timedOnce(() => 42);
    assert.equal(once.result, 42);
    assert.ok(once.ms >= 0);
  });

  it('write a script report with what ran, when, on what, and the command', () => {
    const r = scriptReport('demo', cpuDeviceInfo(), { rows: [{ ms: 1 }] }, new Date('2026-11-23T00:00:00Z'));
    assert.equal(r.tool, 'sparse-attention bench');
    assert.equal(r.benchmark, 'demo');
    assert.equal(r.date, '2026-11-23T00:00:00.000Z');
    assert.equal(r.device.backend, 'cpu');
    assert.match(r.command, /^node /);
    const out = join(mkdtempSync(join(tmpdir(), 'bench-shared-')), 'a', 'b', 'r.json');
    emitReport(r, { out });
    const text = readFileSync(out, 'utf8');
    assert.ok(text.endsWith('}\n'));
    assert.deepEqual(JSON.parse(text), r);
  });

  it('quote command words only where the shell needs it', () => {
    assert.equal(shellWords(['npx', 'sparse-attn', 'bench', '--lengths', '4096,8192', '--out', 'bench/results/x.json']), 'npx sparse-attn bench --lengths 4096,8192 --out bench/results/x.json');
    assert.equal(shellWords(['echo', 'a b', "it's"]), "echo 'a b' 'it'\\''s'");
  });
});
