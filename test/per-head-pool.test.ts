/**
 * Per-head grid measurement over worker threads gives the very points the serial measurer gives
 * (same HeadProblem, same inputs), in job order; a worker's failure is an error naming the head.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { headGridJobs, serialGridMeasurer } from '../src/calibration/per-head-grid.js';
import { workerGridMeasurer } from '../src/calibration/per-head-pool.js';
import { HeadTensor } from '../src/core/tensor.js';
import { calibratePerHead } from '../src/calibration/per-head.js';
import { calibrationCalls } from '../src/model/eval-variants.js';
import { createSparseMethod } from '../src/methods/index.js';

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

describe('calibration windows (calibrationCalls)', () => {
  it('centres a window in each quarter of the call, each with the keys up to its end; short calls stay whole', () => {
    const c = capture(3, 'BHLD')[0];
    const windows = calibrationCalls(c, 20);
    assert.deepEqual(windows.map((w) => [w.q.length, w.k.length, w.v.length]), [[5, 13, 13], [5, 34, 34], [5, 54, 54], [5, 75, 75]]);
    // Window 2's last query row is row 33 of the call, its keys rows 0..33.
    assert.deepEqual(Array.from(windows[1].q.row(0, 1, 4)), Array.from(c.q.row(0, 1, 33)));
    assert.deepEqual(Array.from(windows[1].k.row(0, 1, 33)), Array.from(c.k.row(0, 1, 33)));
    // Rows of the call after each window, for rules about a call's last rows (tri-shape).
    assert.deepEqual(windows.map((w) => w.rowsAfter), [70, 49, 29, 8]);
    assert.deepEqual(calibrationCalls(c, 83), [c]);
    assert.deepEqual(calibrationCalls(c, 0), [c]);
  });

  it('tri_shape: a window is planned as those rows inside the whole call (rows in the call’s dense tail stay dense, others do not)', () => {
    const c = capture(6, 'BHLD')[0];
    const settings = { sinkTokens: 4, localWindow: 9, lastDenseQueries: 12, br: 4, bc: 4 };
    const whole = createSparseMethod('tri_shape', settings).planBlockMask(c.q, c.k, { causal: true }).mask;
    for (const w of calibrationCalls(c, 40)) {
      const start = c.q.length - w.rowsAfter! - w.q.length;
      const part = createSparseMethod('tri_shape', settings).planBlockMask(w.q, w.k, { causal: true, rowsAfter: w.rowsAfter }).mask;
      for (let h = 0; h < 4; h++)
        // The rule keeps a call's first row sparse, so a window wholly inside the dense tail
        // differs from the whole call in its first row; the test starts after it there.
        for (let i = w.rowsAfter! + w.q.length <= settings.lastDenseQueries ? 1 : 0; i < w.q.length; i++)
          for (let j = 0; j < w.k.length; j++) {
            assert.equal(part.visible(0, h, i, j), whole.visible(0, h, start + i, j), `window at ${start}, head ${h}, row ${i}, key ${j}`);
          }
    }
    // Without rowsAfter a 10-row window would be dense but its first row (lastDenseQueries 12).
    const w0 = calibrationCalls(c, 40)[2];
    const alone = createSparseMethod('tri_shape', settings).planBlockMask(w0.q, w0.k, { causal: true }).mask;
    assert.ok(alone.keptValidBlocks > createSparseMethod('tri_shape', settings).planBlockMask(w0.q, w0.k, { causal: true, rowsAfter: w0.rowsAfter }).mask.keptValidBlocks);
  });

  it('tri_shape: per-head calibration on the windows reaches its target', () => {
    const windows = capture(7, 'BHLD').flatMap((c) => calibrationCalls(c, 40));
    const r = calibratePerHead(windows, 'tri_shape', { target: 0.3, baseSettings: { sinkTokens: 4, lastDenseQueries: 12, br: 4, bc: 4 }, grid: 6 });
    assert.ok(r.sparsity >= 0.3, `planned sparsity ${r.sparsity}`);
  });

  for (const method of ['xattention', 'sla', 'flash_skip_softmax'] as const) {
    it(`${method}: per-head calibration runs on the windows (causal, fewer queries than keys)`, () => {
      const base = method === 'xattention' ? { blockSize: 16, stride: 4 } : method === 'sla' ? { BLKQ: 16, BLKK: 16 } : { br: 16, bc: 16 };
      const windows = capture(4, 'BHLD').flatMap((c) => calibrationCalls(c, 40));
      const r = calibratePerHead(windows, method, { target: 0.5, baseSettings: base, grid: 4 });
      assert.equal(r.heads.length, 8);
      for (const h of r.heads) assert.ok(Number.isFinite(h.error) && h.sparsity >= 0 && h.sparsity <= 1, JSON.stringify(h));
    });
  }
});
