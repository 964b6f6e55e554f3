/**
 * Attention operands: 4-D tensors of per-head vectors over typed arrays.
 *
 * Two layouts, both with the head dimension D innermost (so one (b, h, l) row is D contiguous
 * elements in either):
 *   'BHLD' = [batch, heads, length, headDim]   (PyTorch SDPA, OpenVINO)
 *   'BLHD' = [batch, length, heads, headDim]   (FastVideo / SLA, and what a projection writes)
 * Storage is f32 (Float32Array) or f16 (IEEE binary16 bits in a Uint16Array, see f16.ts).
 */
import { InvalidArgumentError, requireInteger } from './errors.js';
import { fromF16Bits, toF16Bits } from './f16.js';
import { Rng } from './rng.js';
import { tensorStorage } from './validate.js';

export type DType = 'f32' | 'f16';
export type Layout = 'BHLD' | 'BLHD';

export interface HeadTensorShape {
  batch: number;
  heads: number;
  length: number;
  headDim: number;
}

export class HeadTensor {
  readonly batch: number;
  readonly heads: number;
  readonly length: number;
  readonly headDim: number;
  /** Element strides of the batch, head and position axes (the D stride is 1). */
  readonly strideB: number;
  readonly strideH: number;
  readonly strideL: number;

  readonly data: Float32Array | Uint16Array;

  /** `data`: Float32Array (f32), or f16 as a Uint16Array of bits or a Float16Array; any other kind throws. */
  constructor(
    shape: HeadTensorShape,
    data: Float32Array | Uint16Array,
    readonly layout: Layout = 'BHLD',
  ) {
    this.data = tensorStorage('HeadTensor data', data);
    this.batch = requireInteger('batch', shape.batch, 1);
    this.heads = requireInteger('heads', shape.heads, 1);
    this.length = requireInteger('length', shape.length, 0);
    this.headDim = requireInteger('headDim', shape.headDim, 1);
    if (layout !== 'BHLD' && layout !== 'BLHD') throw new InvalidArgumentError('layout', layout, '"BHLD" or "BLHD"');
    const n = this.batch * this.heads * this.length * this.headDim;
    if (this.data.length !== n) {
      throw new InvalidArgumentError('data.length', this.data.length, `${n} (= ${this.batch}·${this.heads}·${this.length}·${this.headDim})`);
    }
    const D = this.headDim;
    if (layout === 'BHLD') {
      this.strideL = D;
      this.strideH = this.length * D;
      this.strideB = this.heads * this.length * D;
    } else {
      this.strideH = D;
      this.strideL = this.heads * D;
      this.strideB = this.length * this.heads * D;
    }
  }

  get dtype(): DType {
    return this.data instanceof Float32Array ? 'f32' : 'f16';
  }

  get shape(): HeadTensorShape {
    return { batch: this.batch, heads: this.heads, length: this.length, headDim: this.headDim };
  }

  /** The dims in this tensor's layout order, e.g. [B, H, L, D] for 'BHLD'. */
  get dims(): [number, number, number, number] {
    return this.layout === 'BHLD'
      ? [this.batch, this.heads, this.length, this.headDim]
      : [this.batch, this.length, this.heads, this.headDim];
  }

  get size(): number {
    return this.data.length;
  }

  /** Element offset of (b, h, l, 0). */
  offset(b: number, h: number, l: number): number {
    return b * this.strideB + h * this.strideH + l * this.strideL;
  }

  /** One row of D values as f32; a view (no copy) when the storage is f32. */
  row(b: number, h: number, l: number): Float32Array {
    const o = this.offset(b, h, l);
    if (this.data instanceof Float32Array) return this.data.subarray(o, o + this.headDim);
    return fromF16Bits(this.data.subarray(o, o + this.headDim));
  }

  static zeros(shape: HeadTensorShape, layout: Layout = 'BHLD', dtype: DType = 'f32'): HeadTensor {
    const n = shape.batch * shape.heads * shape.length * shape.headDim;
    return new HeadTensor(shape, dtype === 'f32' ? new Float32Array(n) : new Uint16Array(n), layout);
  }

  /** Standard-normal entries times `std`, reproducible from `seed`. */
  static randn(shape: HeadTensorShape, seed: number, opts: { layout?: Layout; dtype?: DType; std?: number } = {}): HeadTensor {
    const n = shape.batch * shape.heads * shape.length * shape.headDim;
    const f32 = new Rng(seed).fillNormal(new Float32Array(n), opts.std ?? 1);
    const t = new HeadTensor(shape, f32, opts.layout ?? 'BHLD');
    return opts.dtype === 'f16' ? t.toDType('f16') : t;
  }

  /** Builds a tensor from a function of (b, h, l, d). */
  static fromFunction(shape: HeadTensorShape, fn: (b: number, h: number, l: number, d: number) => number, layout: Layout = 'BHLD'): HeadTensor {
    const t = HeadTensor.zeros(shape, layout);
    const data = t.data as Float32Array;
    for (let b = 0; b < shape.batch; b++)
      for (let h = 0; h < shape.heads; h++)
        for (let l = 0; l < shape.length; l++) {
          const o = t.offset(b, h, l);
          for (let d = 0; d < shape.headDim; d++) data[o + d] = fn(b, h, l, d);
        }
    return t;
  }

  /** f32 values (a copy for f16 storage, the same array for f32). */
  toFloat32Array(): Float32Array {
    return this.data instanceof Float32Array ? this.data : fromF16Bits(this.data);
  }

  toDType(dtype: DType): HeadTensor {
    if (dtype === this.dtype) return this;
    const data = dtype === 'f32' ? fromF16Bits(this.data as Uint16Array) : toF16Bits(this.data);
    return new HeadTensor(this.shape, data, this.layout);
  }

  toLayout(layout: Layout): HeadTensor {
    if (layout === this.layout) return this;
    const out = new HeadTensor(this.shape, this.data instanceof Float32Array ? new Float32Array(this.size) : new Uint16Array(this.size), layout);
    const D = this.headDim;
    for (let b = 0; b < this.batch; b++)
      for (let h = 0; h < this.heads; h++)
        for (let l = 0; l < this.length; l++) {
          const src = this.offset(b, h, l);
          out.data.set(this.data.subarray(src, src + D), out.offset(b, h, l));
        }
    return out;
  }

  /** Positions [start, end) of every head, same layout and dtype (a copy). */
  sliceLength(start: number, end: number): HeadTensor {
    requireInteger('start', start, 0, this.length);
    requireInteger('end', end, start, this.length);
    const shape = { ...this.shape, length: end - start };
    const out = HeadTensor.zeros(shape, this.layout, this.dtype);
    const D = this.headDim;
    for (let b = 0; b < this.batch; b++)
      for (let h = 0; h < this.heads; h++)
        for (let l = start; l < end; l++) {
          const src = this.offset(b, h, l);
          out.data.set(this.data.subarray(src, src + D), out.offset(b, h, l - start));
        }
    return out;
  }

  /** Throws if any entry is NaN or infinite, naming the tensor and the first bad index. */
  assertFinite(name: string): void {
    const f = this.toFloat32Array();
    for (let i = 0; i < f.length; i++) {
      if (!Number.isFinite(f[i])) {
        const [d0, d1, d2, d3] = this.dims;
        const idx = [Math.floor(i / (d1 * d2 * d3)), Math.floor(i / (d2 * d3)) % d1, Math.floor(i / d3) % d2, i % d3];
        throw new InvalidArgumentError(`${name}[${idx.join(', ')}] (layout ${this.layout})`, f[i], 'a finite number');
      }
    }
  }
}
