/**
 * A contiguous KV cache for one sequence: per layer, keys and values [capacity, kvHeads, headDim]
 * (BLHD with batch 1). Positions [0, length) are a prefix of the buffer, so the attention call
 * gets them as a HeadTensor view without a copy.
 */
import { InvalidArgumentError, requireInteger } from '../core/errors.js';
import { HeadTensor } from '../core/tensor.js';

export class KvCache {
  readonly keys: Float32Array[] = [];
  readonly values: Float32Array[] = [];
  /** Positions written so far (the next token's position). */
  length = 0;

  constructor(
    readonly numLayers: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly capacity: number,
  ) {
    requireInteger('capacity', capacity, 1);
    const n = capacity * kvHeads * headDim;
    for (let l = 0; l < numLayers; l++) {
      this.keys.push(new Float32Array(n));
      this.values.push(new Float32Array(n));
    }
  }

  /** Stores `tokens` positions of layer `layer` starting at `start` (rows [tokens, kvHeads·D]). */
  write(layer: number, start: number, tokens: number, k: Float32Array, v: Float32Array): void {
    if (start + tokens > this.capacity) {
      throw new InvalidArgumentError('KV cache position', start + tokens, `at most the cache capacity (${this.capacity}); make the cache larger`);
    }
    const row = this.kvHeads * this.headDim;
    this.keys[layer].set(k.subarray(0, tokens * row), start * row);
    this.values[layer].set(v.subarray(0, tokens * row), start * row);
  }

  /** Keys and values of positions [0, end) of one layer, as BLHD views. */
  view(layer: number, end: number): { k: HeadTensor; v: HeadTensor } {
    const shape = { batch: 1, heads: this.kvHeads, length: end, headDim: this.headDim };
    const n = end * this.kvHeads * this.headDim;
    return {
      k: new HeadTensor(shape, this.keys[layer].subarray(0, n), 'BLHD'),
      v: new HeadTensor(shape, this.values[layer].subarray(0, n), 'BLHD'),
    };
  }

  /** Forgets positions from `length` on (e.g. to score another continuation of the same prompt). */
  truncate(length: number): void {
    this.length = requireInteger('length', length, 0, this.length);
  }
}
