/** RoPE (HF rotate-half convention) against the naive complex-rotation formula. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng } from '../src/core/rng.js';
import { RopeTable } from '../src/model/rope.js';
import { assertClose } from './helpers/compare.js';

/** Pair (d, d + D/2) as the complex number x[d] + i·x[d + D/2], turned by p·θ^(-2d/D), in f64. */
function naiveRope(x: Float32Array, tokens: number, heads: number, D: number, theta: number, start: number): Float32Array {
  const out = new Float32Array(x.length);
  const half = D / 2;
  for (let t = 0; t < tokens; t++)
    for (let h = 0; h < heads; h++)
      for (let d = 0; d < half; d++) {
        const o = (t * heads + h) * D;
        const angle = (start + t) * Math.pow(theta, (-2 * d) / D);
        const re = x[o + d], im = x[o + d + half];
        out[o + d] = re * Math.cos(angle) - im * Math.sin(angle);
        out[o + d + half] = re * Math.sin(angle) + im * Math.cos(angle);
      }
  return out;
}

for (const [D, heads, tokens, start, theta] of [[128, 2, 5, 0, 10000], [4, 3, 7, 11, 500000], [2, 1, 1, 0, 10000], [64, 1, 3, 200, 10000]]) {
  test(`RoPE D=${D} heads=${heads} tokens=${tokens} start=${start} θ=${theta} matches the complex-rotation formula`, () => {
    const x = new Rng(D + start).fillNormal(new Float32Array(tokens * heads * D));
    const want = naiveRope(x, tokens, heads, D, theta, start);
    const got = Float32Array.from(x);
    new RopeTable(D, theta).apply(got, tokens, heads, start);
    // Angles are f32 (as HF computes them): |error| ≲ position · 2⁻²⁴ rad per unit of |x|.
    assertClose(got, want, { atol: 2e-6 * (start + tokens + 1), rtol: 1e-5 }, 'rope');
  });
}

test('RoPE at position 0 is the identity and keeps pair norms at large positions', () => {
  const D = 8;
  const x = new Rng(3).fillNormal(new Float32Array(D));
  const y = Float32Array.from(x);
  const table = new RopeTable(D, 10000);
  table.apply(y, 1, 1, 0);
  assert.deepEqual(y, x);
  const z = Float32Array.from(x);
  table.apply(z, 1, 1, 8000);
  for (let d = 0; d < D / 2; d++) {
    assert.ok(Math.abs(Math.hypot(z[d], z[d + D / 2]) - Math.hypot(x[d], x[d + D / 2])) < 1e-5);
  }
  assert.notDeepEqual(z, x);
});
