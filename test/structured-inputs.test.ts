/** The seeded input generators the tests and benchmarks share. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { peakedQKV, structuredQKV } from '../src/core/structured-inputs.js';

describe('peakedQKV', () => {
  const opts = { heads: 2, kvHeads: 1, length: 640, queryLength: 128, headDim: 16, seed: 3, blockSize: 64, bumps: 0.5 };

  it('is the same for the same seed and differs for another', () => {
    const a = peakedQKV(opts);
    const b = peakedQKV(opts);
    const c = peakedQKV({ ...opts, seed: 4 });
    assert.deepEqual(a.k.data, b.k.data);
    assert.deepEqual(a.q.data, b.q.data);
    assert.notDeepEqual(a.k.data, c.k.data);
  });

  it('puts the sinks first on channel 0, at most one bump per later block, and the rest low', () => {
    const { q, k } = peakedQKV({ ...opts, bumps: 1 });
    const at = (j: number) => k.data[k.offset(0, 0, j)];
    for (let j = 0; j < 8; j++) assert.equal(at(j), 1);
    for (let kb = 0; kb < 10; kb++) {
      const vals = Array.from({ length: 64 }, (_, c) => at(kb * 64 + c));
      const bumps = vals.filter((x) => Math.abs(x - 0.9) < 1e-6).length;
      assert.equal(bumps, kb === 0 ? 0 : 1, `block ${kb}`);
      for (const x of vals) assert.ok(x === 1 || Math.abs(x - 0.9) < 1e-6 || (x >= 0 && x < 0.1), `block ${kb}: ${x}`);
    }
    assert.equal(q.data[q.offset(0, 1, 5)], 40);
    const none = peakedQKV({ ...opts, bumps: 0 });
    for (let j = 8; j < 640; j++) assert.ok(none.k.data[none.k.offset(0, 0, j)] < 0.1);
  });

  it('names a bad argument', () => {
    assert.throws(() => peakedQKV({ ...opts, blockSize: 0 }), /blockSize/);
    assert.throws(() => structuredQKV({ heads: 0, length: 8, headDim: 8, seed: 1 }), /heads/);
  });
});
