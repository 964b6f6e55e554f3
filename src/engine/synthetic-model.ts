/**
 * The "model" the engine runs in tests and the CLI: per layer, each token's Q, K and V are seeded
 * functions of (sequence seed, layer, head, position, channel), so recomputing a token after
 * preemption gives bit-identical values and a reference can rebuild any sequence's whole Q/K/V.
 * Keys carry their position (rotary-style features, as RoPE does before caching), which gives the
 * attention a local band, plus a sink on the first tokens and hashed noise, so sparsity matters.
 */
import { requireInteger } from '../core/errors.js';
import { HeadTensor } from '../core/tensor.js';

export interface QkvChunk {
  /** [1, H, n, D] */
  q: HeadTensor;
  /** [1, Hkv, n, D] */
  k: HeadTensor;
  v: HeadTensor;
}

/** Produces one layer's Q/K/V for tokens [start, start + length) of a sequence. */
export interface QkvProducer {
  readonly numLayers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  qkv(layer: number, seqId: number, start: number, length: number): QkvChunk;
}

export interface SyntheticModelShape {
  numLayers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  seed: number;
}

export function syntheticModel(shape: SyntheticModelShape): QkvProducer {
  const numLayers = requireInteger('numLayers', shape.numLayers, 1);
  const heads = requireInteger('heads', shape.heads, 1);
  const kvHeads = requireInteger('kvHeads', shape.kvHeads, 1);
  const headDim = requireInteger('headDim', shape.headDim, 2);
  const seed = shape.seed >>> 0;
  const noise = (...xs: number[]) => hashUnit(seed, ...xs) * 2 - 1;
  // Channel d < 2·nf carries rotary features of the position; the rest is seeded noise.
  const nf = Math.max(1, Math.floor(headDim / 4));
  const rotary = (pos: number, d: number) => {
    const a = pos / (4 * Math.pow(32, (d >> 1) / nf));
    return (d & 1 ? Math.sin(a) : Math.cos(a)) * 2;
  };
  const feature = (kind: number, layer: number, seqId: number, h: number, pos: number, d: number) => {
    if (d === 0) return kind === 1 ? (pos < 4 ? 3 : 0) : 1; // sink: every query likes the first keys
    if (d < 2 * nf + 1) return rotary(pos, d - 1) + 0.3 * noise(kind, layer, seqId, h, pos, d);
    return noise(kind, layer, seqId, h, pos, d);
  };
  return {
    numLayers, heads, kvHeads, headDim,
    qkv(layer, seqId, start, length) {
      requireInteger('layer', layer, 0, numLayers - 1);
      const at = (kind: number, H: number) => HeadTensor.fromFunction(
        { batch: 1, heads: H, length, headDim },
        (_b, h, l, d) => (kind === 2 ? noise(kind, layer, seqId, h, start + l, d) : feature(kind, layer, seqId, h, start + l, d)),
      );
      return { q: at(0, heads), k: at(1, kvHeads), v: at(2, kvHeads) };
    },
  };
}

/** A deterministic hash of integers to [0, 1) (murmur3-style mixing). */
function hashUnit(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x | 0), 0x85ebca6b);
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35);
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h / 4294967296;
}
