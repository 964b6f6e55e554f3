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

export function toF16Bits(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

export function fromF16Bits(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16BitsToF32(src[i]);
  return out;
}

/** The value x takes after a round trip through f16 (what an f16 kernel actually sees). */
export function roundToF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}
