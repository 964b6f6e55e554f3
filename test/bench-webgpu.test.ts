import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { benchCase } from '../src/bench/cases.js';
import { runBench } from '../src/bench/harness.js';
import { smokeSweep } from '../src/bench/sweeps.js';
import { benchTarget } from '../src/bench/targets.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
const FAST = { warmup: 0, minIters: 2, maxIters: 2, targetMs: 0 };

describe('bench harness on the WebGPU target', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  it('validates on the GPU, plans XAttention and tri-shape there (same masks as the CPU), times with a queue fence', async () => {
    const target = await benchTarget('webgpu');
    const cases = smokeSweep({ lengths: [150], kvHeads: [2], methods: ['dense', 'xattention', 'tri_shape'] });
    const records = await runBench(target, cases, { timing: FAST });
    const device = await target.describe();
    assert.equal(device.backend, 'webgpu');
    assert.ok(Array.isArray(device.features));
    for (const r of records) {
      assert.equal(r.status, 'ok', `${r.name}: ${r.reason}`);
      assert.equal(r.timing, 'gpu-fence');
      assert.equal(r.iters, 2);
      assert.ok(r.ms! > 0 && r.estimationMs! >= 0);
    }
    for (const r of records.filter((x) => x.case.method !== 'dense')) {
      assert.equal(r.validation!.planBlocksDifferingFromCpu, 0, `${r.name}: GPU plan = CPU plan on the twin`);
    }
    // With timestamp queries, one extra profiled run splits the plan and the call into kernels.
    if ((device.features as string[]).includes('timestamp-query')) {
      const xattn = records.find((r) => r.case.method === 'xattention')!;
      assert.deepEqual(Object.keys(xattn.planKernelMs!), ['xattention-estimate', 'xattention-select', 'block-list-scan', 'block-list-compact']);
      assert.deepEqual(Object.keys(records.find((r) => r.case.method === 'tri_shape')!.planKernelMs!), ['trishape-blocks', 'block-list-scan', 'block-list-compact']);
      for (const r of records) {
        assert.deepEqual(Object.keys(r.kernelMs!), ['attention'], r.name);
        assert.ok(Object.values({ ...r.kernelMs, ...r.planKernelMs }).every((ms) => ms >= 0 && ms < 60_000), r.name);
      }
    }
  });

  it('msByProgram sums passes per program name, in first-seen order', async () => {
    const { msByProgram } = await import('../src/backends/webgpu/runtime/pass-profiler.js');
    assert.deepEqual(msByProgram([{ label: 'a{x=1}', ms: 1 }, { label: 'b{y=2}', ms: 2 }, { label: 'a{x=3}', ms: 0.5 }]), { a: 1.5, b: 2 });
  });

  it('runs SLA through the backend\'s whole-method runner, validated against the CPU method, timed on device inputs', async () => {
    const target = await benchTarget('webgpu');
    const c = benchCase({ method: 'sla', heads: 4, headDim: 32, queryLength: 200, causal: false, dtype: 'f32' });
    const [r] = await runBench(target, [c], { timing: FAST });
    assert.equal(r.status, 'ok', r.reason);
    assert.equal(r.validation!.oracle, 'sla.attention on the CPU');
    assert.equal(r.timing, 'gpu-fence');
    assert.equal(r.iters, FAST.minIters);
    assert.ok(r.density! < 1);
  });

  it('runs flash-skip-softmax as its in-loop kernel: validated on the tiles it kept, timed on device inputs', async () => {
    const target = await benchTarget('webgpu');
    const c = benchCase({ method: 'flash_skip_softmax', settings: { threshold: 0.2, br: 32, bc: 32 }, heads: 4, kvHeads: 2, headDim: 32, queryLength: 150, causal: true, dtype: 'f32', input: 'random' });
    const [r] = await runBench(target, [c], { timing: FAST });
    assert.equal(r.status, 'ok', r.reason);
    assert.equal(r.validation!.oracle, "naive attention with the kernel's kept tiles expanded to tokens");
    assert.equal(r.validation!.planBlocksDifferingFromCpu, 0);
    assert.equal(r.timing, 'gpu-fence');
    assert.ok(r.density! > 0 && r.density! <= 1);
  });

  it('refuses what the adapter cannot hold, with the limit named', async () => {
    const target = await benchTarget('webgpu');
    const huge = benchCase({ method: 'dense', heads: 64, headDim: 256, queryLength: 1 << 20, dtype: 'f32' });
    assert.match(target.supports!(huge)!, /exceeds maxStorageBufferBindingSize|beyond its reach/);
  });
});
