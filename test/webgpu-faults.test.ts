/**
 * GPU faults: a device lost mid-call (injected with device.destroy(), as Dawn allows) is a named
 * DeviceLostError, and the next call runs on a fresh device with the right result.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { DeviceLostError, GpuOutOfMemoryError, webgpuBackend, withDeviceFaults } from '../src/backends/webgpu/index.js';
import { Engine } from '../src/engine/engine.js';
import { syntheticModel } from '../src/engine/synthetic-model.js';
import { HeadTensor } from '../src/core/tensor.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();

describe('WebGPU device lost mid-call', { skip: gpu.skip }, () => {
  after(() => gpu.release());
  const q = HeadTensor.randn({ batch: 1, heads: 4, length: 384, headDim: 64 }, 1);
  const k = HeadTensor.randn({ batch: 1, heads: 2, length: 384, headDim: 64 }, 2);

  for (const method of ['dense', 'xattention']) {
    it(`${method}: a named error, then a fresh device for the next call`, async () => {
      const before = await webgpuBackend.context();
      const call = sparseAttention(q, k, k, { method, causal: true, backend: webgpuBackend });
      // Lose the device while the call is in flight (after it has started uploading and encoding).
      setTimeout(() => before.device.destroy(), 1);
      await assert.rejects(call, (err: Error) => {
        assert.ok(err instanceof DeviceLostError, `${err.name}: ${err.message}`);
        assert.match(err.message, /^WebGPU device lost during .+ \(destroyed.*\); the call's result is gone, the next call gets a fresh device$/);
        return true;
      });
      const next = await sparseAttention(q, k, k, { method, causal: true, backend: webgpuBackend });
      assert.notEqual(await webgpuBackend.context(), before, 'a fresh context');
      const cpu = await sparseAttention(q, k, k, { method, causal: true });
      assertTensorsClose(next.output, cpu.output, TOL.f32, `${method} after the loss`);
    });
  }
});

describe('GPU allocation failures are named', () => {
  /** A device whose out-of-memory scope reports `error` (what Dawn does when an allocation fails). */
  const deviceReporting = (error: { message: string } | null) => ({
    pushErrorScope() {},
    popErrorScope: async () => error,
    lost: new Promise(() => {}),
  }) as unknown as GPUDevice;

  it('an out-of-memory error reported to the scope becomes GpuOutOfMemoryError naming the operation', async () => {
    await assert.rejects(withDeviceFaults(deviceReporting({ message: 'injected: cannot allocate 8 GiB' }), 'dense attention', async () => 1), (err: Error) => {
      assert.ok(err instanceof GpuOutOfMemoryError, `${err.name}: ${err.message}`);
      assert.equal(err.message, "WebGPU ran out of memory during dense attention (injected: cannot allocate 8 GiB); the call's result is gone: free GPU memory or run a smaller shape");
      return true;
    });
  });

  it('a mapped-at-creation allocation that throws RangeError becomes GpuOutOfMemoryError', async () => {
    const fail = async () => {
      throw new RangeError('Failed to allocate memory for buffer mapping');
    };
    await assert.rejects(withDeviceFaults(deviceReporting(null), 'upload', fail), GpuOutOfMemoryError);
  });

  it('no error: the result passes through; other errors pass through unchanged', async () => {
    assert.equal(await withDeviceFaults(deviceReporting(null), 'x', async () => 42), 42);
    await assert.rejects(withDeviceFaults(deviceReporting(null), 'x', async () => {
      throw new TypeError('not a fault');
    }), TypeError);
  });
});

describe('the engine after a lost device', { skip: gpu.skip }, () => {
  after(() => gpu.release());
  it('the failed step leaves block tables and CPU-side K/V usable: the engine resumes on a fresh device and ends equal to the CPU engine', async () => {
    const model = syntheticModel({ numLayers: 2, heads: 2, kvHeads: 1, headDim: 16, seed: 5 });
    const config = { maxNumBatchedTokens: 48, numKvBlocks: 40, kvBlockSize: 16 } as const;
    const requests = [{ id: 0, promptLength: 130, decodeTokens: 2 }, { id: 1, promptLength: 60, decodeTokens: 1 }];
    const cpu = new Engine({ model, config });
    const gpuEngine = new Engine({ model, config, backend: webgpuBackend });
    for (const e of [cpu, gpuEngine]) for (const r of requests) e.addRequest(r);
    await cpu.run(1000);
    await gpuEngine.step();
    const tablesBefore = requests.map((r) => [...gpuEngine.cache.blockTable(r.id)]);
    const lostCtx = await webgpuBackend.context();
    const failing = gpuEngine.step();
    setTimeout(() => lostCtx.device.destroy(), 1);
    await assert.rejects(failing, DeviceLostError);
    // The failed step reserved its blocks but computed nothing: the tables only grew, in place.
    requests.forEach((r, i) => assert.deepEqual(gpuEngine.cache.blockTable(r.id).slice(0, tablesBefore[i].length), tablesBefore[i], `sequence ${r.id}: block table kept`));
    await gpuEngine.run(1000);
    assert.notEqual(await webgpuBackend.context(), lostCtx, 'a fresh device');
    for (const r of requests) {
      const chunks = (e: Engine) => e.stats(r.id).chunks.map((c) => [c.start, c.length, c.phase, c.keptPairs]);
      assert.deepEqual(chunks(gpuEngine), chunks(cpu), `sequence ${r.id}: chunks`);
      for (let layer = 0; layer < 2; layer++) assertTensorsClose(gpuEngine.output(r.id, layer), cpu.output(r.id, layer), TOL.f32, `sequence ${r.id} layer ${layer}`);
    }
  });
});
