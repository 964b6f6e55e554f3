/**
 * f16 storage. Node 20 has no Float16Array, so f16 tensors hold IEEE binary16 bit patterns in a
 * Uint16Array (what WebGPU buffers take as-is); the conversions come from @petamoriken/float16,
 * which rounds to nearest-even like the hardware does.
 */
import { getFloat16, setFloat16 } from '@petamoriken/float16';

const view = new DataView(new ArrayBuffer(2));

export function f32ToF16Bits(x: number): number {
  setFloat16(view, 0, x, true);
  return view.getUint16(0, true);
}

export function f16BitsToF32(bits: number): number {
  view.setUint16(0, bits, true);
  return getFloat16(view, 0, true);
}

/**
 * Bulk conversions run on bits: the polyfill costs ~1 µs an element, which made an f16 benchmark
 * input of 4K tokens × 32 heads take 17 s (128K: 9 minutes). A Float32Array source is rounded
 * from its f32 bits (round to nearest even, exactly the polyfill's result: test/f16.test.ts checks
 * every f16 value, every midpoint and random bits); any other source may hold f64 values, which
 * must not be rounded to f32 first (double rounding), so those keep the polyfill.
 */

function f32BitsToF16Bits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00; // NaN: quiet, top payload bits kept (as the polyfill); ±Inf
  const e = exp - 112; // f16 biased exponent (127 - 15)
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: ±0
    const m = mant | 0x800000;
    const shift = 14 - e; // f16 subnormal h = m · 2^(e - 14)
    const half = 1 << (shift - 1);
    const rem = m & ((1 << shift) - 1);
    let h = m >>> shift;
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  const rem = mant & 0x1fff;
  let h = (e << 10) | (mant >>> 13);
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is right (up to Inf)
  return sign | h;
}

export function toF16Bits(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  if (src instanceof Float32Array) {
    const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
    for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  } else {
    for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  }
  return out;
}

/** Every f16 value as f32, built once on first use (65536 entries, exact). */
let f16Table: Float32Array | undefined;

function table(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) f16Table[h] = sign * m * 2 ** -24;
    else if (e === 0x1f) f16Table[h] = m ? NaN : sign * Infinity;
    else f16Table[h] = sign * (1024 + m) * 2 ** (e - 25);
  }
  return f16Table;
}

export function fromF16Bits(src: Uint16Array): Float32Array {
  const t = table();
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

/** The value x takes after a round trip through f16 (what an f16 kernel actually sees). */
export function roundToF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}
