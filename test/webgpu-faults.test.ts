/**
 * GPU faults: a device lost mid-call (injected with device.destroy(), as Dawn allows) is a named
 * DeviceLostError, and the next call runs on a fresh device with the right result.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { DeviceLostError, webgpuBackend } from '../src/backends/webgpu/index.js';
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
