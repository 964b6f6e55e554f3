/**
 * Limits are checked before any GPU work is encoded: a K/V over maxStorageBufferBindingSize on the
 * SLA / SageSLA path is a clear UnsupportedError, and Dawn sees no invalid call (an error scope
 * around the call stays empty).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { webgpuBackend } from '../src/backends/webgpu/index.js';
import { checkSlaLimits } from '../src/backends/webgpu/methods/sla/sla-limits.js';
import { describeAttention } from '../src/core/attention-shape.js';
import { UnsupportedError } from '../src/core/errors.js';
import { HeadTensor } from '../src/core/tensor.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();

describe('SLA buffer limits, no device', () => {
  const q = HeadTensor.zeros({ batch: 1, heads: 2, length: 4, headDim: 8 });
  const p = describeAttention(q, q, q);
  it('names the largest buffer and the limit it exceeds', () => {
    assert.throws(() => checkSlaLimits({ maxStorageBufferBindingSize: 100, maxBufferSize: 1000 }, p, { BLKQ: 2, BLKK: 2, linear: false }),
      /^UnsupportedError: SLA on WebGPU: buffer sla\.q needs 256 bytes, over this device's maxStorageBufferBindingSize \(100\)/);
    assert.throws(() => checkSlaLimits({ maxStorageBufferBindingSize: 1000, maxBufferSize: 300 }, p, { BLKQ: 2, BLKK: 2, linear: true }),
      /buffer sla\.(prefixSums|queryBlockSums) needs \d+ bytes, over this device's maxBufferSize \(300\)/);
    checkSlaLimits({ maxStorageBufferBindingSize: 4096, maxBufferSize: 4096 }, p, { BLKQ: 2, BLKK: 2, linear: true });
  });
});

describe('SLA on WebGPU over the binding limit', { skip: gpu.skip }, () => {
  after(() => gpu.release());
  for (const method of ['sla', 'sage_sla']) {
    it(`${method}: UnsupportedError before anything reaches Dawn`, async () => {
      const { device } = gpu.ctx!;
      const limit = device.limits.maxStorageBufferBindingSize;
      const D = 64;
      const Lk = Math.floor(limit / (D * 4)) + 1; // one K row past the limit
      const k = HeadTensor.zeros({ batch: 1, heads: 1, length: Lk, headDim: D });
      const q = HeadTensor.zeros({ batch: 1, heads: 1, length: 1, headDim: D });
      device.pushErrorScope('validation');
      device.pushErrorScope('out-of-memory');
      await assert.rejects(sparseAttention(q, k, k, { method, backend: webgpuBackend }), (err: Error) => {
        assert.ok(err instanceof UnsupportedError, String(err));
        assert.match(err.message, new RegExp(`buffer sla\\.k needs ${Lk * D * 4} bytes, over this device's maxStorageBufferBindingSize \\(${limit}\\)`));
        return true;
      });
      assert.equal(await device.popErrorScope(), null, 'no out-of-memory error');
      assert.equal(await device.popErrorScope(), null, 'no validation error');
    });
  }
});
