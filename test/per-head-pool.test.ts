/**
 * Per-head grid measurement over worker threads gives the very points the serial measurer gives
 * (same HeadProblem, same inputs), in job order; a worker's failure is an error naming the head.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headGridJobs, serialGridMeasurer } from '../src/calibration/per-head-grid.js';
import { workerGridMeasurer } from '../src/calibration/per-head-pool.js';
import { HeadTensor } from '../src/core/tensor.js';

function capture(seed: number, layout: 'BHLD' | 'BLHD') {
  const shape = (heads: number) => ({ batch: 1, heads, length: 83, headDim: 16 });
  return [0, 1].map((l) => ({
    module: `model.layers.${l}.self_attn`,
    q: HeadTensor.randn(shape(4), seed + l, { layout }),
    k: HeadTensor.randn(shape(2), seed + 10 + l, { layout }),
    v: HeadTensor.randn(shape(2), seed + 20 + l, { layout }),
  }));
}

describe('per-head grid measurement on worker threads', () => {
  for (const [method, base, grid] of [
    ['xattention', { blockSize: 16, stride: 4 }, [0.5, 0.8, 0.95]],
    ['flash_skip_softmax', { br: 16, bc: 16 }, [1e-4, 1e-2, 0.2]],
  ] as const) {
    it(`${method}: 3 workers = serial, point for point, in job order`, async () => {
      const jobs = headGridJobs(capture(5, method === 'xattention' ? 'BHLD' : 'BLHD'));
      assert.equal(jobs.length, 8);
      const request = { method, base: { ...base }, run: { causal: true }, grid: [...grid] };
      const want = await serialGridMeasurer(request, jobs);
      const seen: number[] = [];
      const got = await workerGridMeasurer(3)(request, jobs, (done) => seen.push(done));
      assert.deepEqual(got, want);
      assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.ok(want.flat().some((p) => p.sparsity > 0), 'the grid makes some head sparse (the comparison is not of empty points)');
    });
  }

  it('a head the worker cannot measure fails the call, naming the module and head', async () => {
    const jobs = headGridJobs(capture(7, 'BHLD'));
    const request = { method: 'xattention', base: { blockSize: 16, stride: 5 }, run: { causal: true }, grid: [0.9] };
    await assert.rejects(workerGridMeasurer(2)(request, jobs), /model\.layers\.\d\.self_attn head \d: .*stride/);
  });
});
