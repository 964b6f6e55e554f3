import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { f16BitsToF32, f32ToF16Bits, fromF16Bits, toF16Bits } from '../src/core/f16.js';
import { Rng } from '../src/core/rng.js';

/** The polyfill, element by element: the oracle of the bulk bit-level conversions. */
const slowTo = (xs: Float32Array) => Uint16Array.from(xs, (x) => f32ToF16Bits(x));

function assertSameBits(got: Uint16Array, want: Uint16Array, inputs: Float32Array, label: string): void {
  const bad: string[] = [];
  for (let i = 0; i < want.length && bad.length < 8; i++) {
    if (got[i] !== want[i]) bad.push(`  [${i}] ${inputs[i]} (f32 bits ${new Uint32Array(Float32Array.of(inputs[i]).buffer)[0].toString(16)}): got ${got[i].toString(16)}, want ${want[i].toString(16)}`);
  }
  assert.equal(bad.length, 0, `${label}:\n${bad.join('\n')}`);
}

describe('f16 bulk conversions = the polyfill', () => {
  it('fromF16Bits: every one of the 65536 f16 patterns', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const got = fromF16Bits(all);
    for (let h = 0; h < 65536; h++) {
      const want = f16BitsToF32(h);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got[h]), `pattern ${h.toString(16)} should be NaN`);
      else assert.ok(Object.is(got[h], want), `pattern ${h.toString(16)}: got ${got[h]}, want ${want}`);
    }
  });

  it('toF16Bits: every f16 value, every midpoint between neighbours and one f32 ulp either side of it', () => {
    const values = fromF16Bits(Uint16Array.from({ length: 0x7c00 }, (_, i) => i)); // +0 .. 65504
    const xs: number[] = [];
    for (let i = 0; i < values.length; i++) {
      xs.push(values[i], -values[i]);
      const mid = i + 1 < values.length ? (values[i] + values[i + 1]) / 2 : 65520; // 65520: the tie to Inf
      const f = Float32Array.of(mid);
      const u = new Uint32Array(f.buffer);
      for (const d of [-1, 0, 1]) {
        const v = new Float32Array(new Uint32Array([u[0] + d]).buffer)[0];
        xs.push(v, -v);
      }
    }
    const inputs = Float32Array.from(xs);
    assertSameBits(toF16Bits(inputs), slowTo(inputs), inputs, 'values and midpoints');
  });

  it('toF16Bits: specials and random f32 bit patterns (subnormals, overflow, NaN)', () => {
    const rng = new Rng(5);
    const bits = new Uint32Array(200000);
    for (let i = 0; i < bits.length; i++) bits[i] = Math.floor(rng.next() * 2 ** 32) >>> 0;
    const random = new Float32Array(bits.buffer);
    const specials = Float32Array.of(0, -0, Infinity, -Infinity, NaN, 65504, 65519.99, 65520, 1e9, -1e9, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 2 ** -26, 1e-30, -1e-45, 2 ** -14, 2 ** -14 - 2 ** -25);
    const inputs = new Float32Array(random.length + specials.length);
    inputs.set(random);
    inputs.set(specials, random.length);
    assertSameBits(toF16Bits(inputs), slowTo(inputs), inputs, 'random bits and specials');
  });

  it('a non-Float32Array source keeps f64 rounding (no double rounding through f32)', () => {
    const x = 1 + 2 ** -11 + 2 ** -40; // just above the midpoint in f64, exactly on it in f32
    assert.equal(toF16Bits([x])[0], f32ToF16Bits(x));
    assert.equal(toF16Bits([x])[0], 0x3c01);
    assert.equal(toF16Bits(Float32Array.of(x))[0], 0x3c00); // the f32 value is the tie: to even
  });

  it('a view into a larger buffer converts only its own elements', () => {
    const big = Float32Array.of(1, 2, 3, 4, 5);
    assert.deepEqual([...toF16Bits(big.subarray(1, 3))], [f32ToF16Bits(2), f32ToF16Bits(3)]);
  });
});
