/**
 * safetensors files: an 8-byte little-endian header length N, N bytes of JSON
 *   { "<name>": { "dtype": "F16" | "BF16" | "F32", "shape": [...], "data_offsets": [begin, end] }, "__metadata__": {...} }
 * then the raw little-endian tensor bytes (offsets relative to the end of the header).
 * We read F16, BF16 and F32 and hand every tensor out as f32, which is what the CPU runner computes in.
 */
import { writeFileSync } from 'node:fs';
import { InvalidArgumentError, SparseAttentionError, UnsupportedError } from '../core/errors.js';
import { fromF16Bits, toF16Bits } from '../core/f16.js';
import { readBytes } from '../core/files.js';

export type SafetensorsDType = 'F16' | 'BF16' | 'F32';

const BYTES: Record<SafetensorsDType, number> = { F16: 2, BF16: 2, F32: 4 };

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range inside the file's data section. */
  begin: number;
  end: number;
}

export interface F32Tensor {
  shape: number[];
  data: Float32Array;
}

/** One safetensors file held in memory: its header parsed, tensors decoded on request. */
export class SafetensorsFile {
  readonly entries = new Map<string, TensorEntry>();
  readonly metadata: Record<string, string>;
  private readonly dataStart: number;

  constructor(
    readonly path: string,
    private readonly bytes: Uint8Array,
  ) {
    if (bytes.length < 8) throw new SparseAttentionError(`${path}: not a safetensors file (${bytes.length} bytes, need an 8-byte header length)`);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headerLength = Number(view.getBigUint64(0, true));
    if (headerLength > bytes.length - 8) throw new SparseAttentionError(`${path}: header length ${headerLength} exceeds the file (${bytes.length} bytes)`);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    } catch (err) {
      throw new SparseAttentionError(`${path}: header is not valid JSON (${(err as Error).message})`);
    }
    this.dataStart = 8 + headerLength;
    this.metadata = (header.__metadata__ as Record<string, string>) ?? {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      this.entries.set(name, parseEntry(path, name, raw, bytes.length - this.dataStart));
    }
  }

  static read(path: string): SafetensorsFile {
    // A plain Uint8Array over the Buffer: Buffer#slice would not copy, and decode relies on a copy.
    return new SafetensorsFile(path, readBytes(path));
  }

  /** The tensor as f32 (converted from F16/BF16; an aligned copy for F32). */
  tensor(name: string): F32Tensor {
    const e = this.entries.get(name);
    if (!e) throw new SparseAttentionError(`${this.path}: no tensor "${name}"`);
    const raw = this.bytes.subarray(this.dataStart + e.begin, this.dataStart + e.end);
    return { shape: e.shape, data: decode(raw, e.dtype) };
  }
}

function parseEntry(path: string, name: string, raw: unknown, dataBytes: number): TensorEntry {
  const r = raw as { dtype?: string; shape?: number[]; data_offsets?: number[] };
  if (!r || typeof r !== 'object' || !Array.isArray(r.shape) || !Array.isArray(r.data_offsets)) {
    throw new SparseAttentionError(`${path}: tensor "${name}" has a malformed header entry`);
  }
  const dtype = r.dtype as SafetensorsDType;
  if (!(dtype in BYTES)) throw new UnsupportedError(`${path}: tensor "${name}" has dtype ${r.dtype}; supported: F16, BF16, F32`);
  const [begin, end] = r.data_offsets;
  const count = r.shape.reduce((a, b) => a * b, 1);
  if (end - begin !== count * BYTES[dtype] || begin < 0 || end > dataBytes) {
    throw new SparseAttentionError(`${path}: tensor "${name}" byte range [${begin}, ${end}) does not hold shape [${r.shape}] of ${dtype} inside ${dataBytes} data bytes`);
  }
  return { name, dtype, shape: r.shape, begin, end };
}

let f16Table: Float32Array | undefined;

/** f16 → f32 through a 64K-entry table: a per-element conversion call makes a 26 MB load take ~20 s. */
function f16ToF32(bits: Uint16Array): Float32Array {
  if (!f16Table) f16Table = fromF16Bits(Uint16Array.from({ length: 65536 }, (_, i) => i));
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f16Table[bits[i]];
  return out;
}

function decode(raw: Uint8Array, dtype: SafetensorsDType): Float32Array {
  // Copy first: the data section need not be aligned for a typed-array view.
  const copy = Uint8Array.prototype.slice.call(raw);
  if (dtype === 'F32') return new Float32Array(copy.buffer, 0, copy.length / 4);
  const bits = new Uint16Array(copy.buffer, 0, copy.length / 2);
  if (dtype === 'F16') return f16ToF32(bits);
  // bf16 is the top half of an f32.
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

/** Encodes f32 values as `dtype` bytes (F16 and BF16 rounded to nearest even). */
function encode(data: Float32Array, dtype: SafetensorsDType): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(Float32Array.from(data).buffer);
  if (dtype === 'F16') return new Uint8Array(toF16Bits(data).buffer);
  const u32 = new Uint32Array(Float32Array.from(data).buffer);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = (u32[i] + 0x7fff + ((u32[i] >>> 16) & 1)) >>> 16;
  return new Uint8Array(out.buffer);
}

/** Writes tensors to a safetensors file (used to build synthetic checkpoints in tests). */
export function writeSafetensors(path: string, tensors: Record<string, F32Tensor & { dtype?: SafetensorsDType }>): void {
  const header: Record<string, unknown> = {};
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new InvalidArgumentError(`${name}.data.length`, t.data.length, `${count} (shape [${t.shape}])`);
    const dtype = t.dtype ?? 'F32';
    const bytes = encode(t.data, dtype);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  writeFileSync(path, out);
}
