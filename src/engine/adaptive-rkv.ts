/**
 * Adaptive R-KV (https://arxiv.org/abs/2505.24133) as OpenVINO implements it: the block selection of
 * openvino.genai's AdaptiveRKVBlockCalculator and the key-diversity computation of OpenVINO's
 * reference kernel (ov::reference::AdaptiveRKVDiversityCalculator). Test tables of both:
 * test/cache-eviction-arkv.test.ts.
 *
 * Diversity of the evictable area's keys, per layer (E evictable tokens, whole blocks):
 *   1. keys L2-normalised per KV head (x / sqrt(Σx² + ε), ε = f32 epsilon);
 *   2. cosine similarity S[h] = K̂ K̂ᵀ over the evictable tokens, diagonal set to 0;
 *   3. in each row, entries below the row's mean (diagonal included) set to 0;
 *   4. mean over KV heads → [E, E];
 *   5. rows summed per block and negated → [E / bs, E] (more negative: more similar, less diverse).
 * The last reduction (over the columns of the blocks still in question) happens at selection time,
 * once the blocks kept for their attention mass are known.
 */
import { InvalidArgumentError, requireInteger } from '../core/errors.js';

/** 2^-23, the f32 machine epsilon OpenVINO's normalize_l2 adds under the square root. */
const F32_EPSILON = 1.1920928955078125e-7;

/** Larger first; equal values by lower index first, so a selection never depends on sort stability. */
function byValueDescending(values: readonly number[], indices: Iterable<number>): number[] {
  return [...indices].sort((a, b) => values[b] - values[a] || a - b);
}

export class AdaptiveRKVBlockCalculator {
  constructor(readonly attentionMass: number, readonly blockSize: number) {
    requireInteger('blockSize', blockSize, 1);
  }

  /**
   * Keeps the highest-scored evictable blocks (at most `maxKept`) until they hold `attentionMass` of
   * the area's total score; the others are the candidates for diversity-based keeping.
   */
  diversityBlockSet(maxKept: number, blockScores: readonly number[]): { diversityBlocks: Set<number>; keptForMass: number } {
    const total = blockScores.reduce((a, b) => a + b, 0);
    const target = total * this.attentionMass;
    const order = byValueDescending(blockScores, blockScores.keys());
    let sum = 0;
    let kept = 0;
    while (sum < target && kept < order.length && kept < maxKept) sum += blockScores[order[kept++]];
    return { diversityBlocks: new Set(order.slice(kept)), keptForMass: kept };
  }

  /**
   * Per evictable block, its mean diversity against the tokens of the candidate blocks:
   * unfiltered is [evictionSize / bs, evictionSize] row-major as the kernel gives it.
   */
  filteredBlockDiversity(unfiltered: ArrayLike<number>, evictionSize: number, candidates: ReadonlySet<number>): number[] {
    const bs = this.blockSize;
    if (evictionSize % bs !== 0) throw new InvalidArgumentError('evictionSize', evictionSize, `a multiple of the block size ${bs}`);
    const rows = evictionSize / bs;
    if (unfiltered.length !== rows * evictionSize) throw new InvalidArgumentError('diversity values', unfiltered.length, `${rows}·${evictionSize}`);
    const out: number[] = [];
    for (let r = 0; r < rows; r++) {
      let acc = 0;
      for (const b of candidates) for (let t = b * bs; t < (b + 1) * bs; t++) acc += unfiltered[r * evictionSize + t];
      out.push(acc / (candidates.size * bs));
    }
    return out;
  }

  /** The `count` candidates of highest diversity, kept besides the attention-mass blocks. */
  mostDiverseBlocks(count: number, candidates: ReadonlySet<number>, diversity: readonly number[]): Set<number> {
    if (count > candidates.size) throw new InvalidArgumentError('blocks left to fill', count, `at most the ${candidates.size} candidate blocks`);
    return new Set(byValueDescending(diversity, candidates).slice(0, count));
  }
}

/**
 * The kernel's diversity output for one layer: keys [Hkv, n, D] (row-major Float32Array) of the
 * evictable tokens only (n = E, whole blocks) → [E / bs, E] row-major.
 */
export function adaptiveRkvDiversity(keys: Float32Array, kvHeads: number, n: number, headDim: number, blockSize: number): Float64Array {
  if (n % blockSize !== 0) throw new InvalidArgumentError('evictable tokens', n, `a multiple of the block size ${blockSize}`);
  if (keys.length !== kvHeads * n * headDim) throw new InvalidArgumentError('keys.length', keys.length, `${kvHeads}·${n}·${headDim}`);
  const sim = new Float64Array(n * n);
  const norm = new Float64Array(n * headDim);
  for (let h = 0; h < kvHeads; h++) {
    for (let i = 0; i < n; i++) {
      let ss = 0;
      for (let d = 0; d < headDim; d++) ss += keys[(h * n + i) * headDim + d] ** 2;
      const inv = 1 / Math.sqrt(ss + F32_EPSILON);
      for (let d = 0; d < headDim; d++) norm[i * headDim + d] = keys[(h * n + i) * headDim + d] * inv;
    }
    const row = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let mean = 0;
      for (let j = 0; j < n; j++) {
        let dot = 0;
        if (j !== i) for (let d = 0; d < headDim; d++) dot += norm[i * headDim + d] * norm[j * headDim + d];
        row[j] = dot;
        mean += dot;
      }
      mean /= n;
      for (let j = 0; j < n; j++) if (row[j] >= mean) sim[i * n + j] += row[j] / kvHeads;
    }
  }
  return blockSumDiversity(sim, n, blockSize);
}

/** out[b][t] = −Σ_{i in block b} m[i][t] for a square n×n matrix. */
export function blockSumDiversity(m: ArrayLike<number>, n: number, blockSize: number): Float64Array {
  const out = new Float64Array((n / blockSize) * n);
  for (let i = 0; i < n; i++) {
    const b = Math.floor(i / blockSize);
    for (let t = 0; t < n; t++) out[b * n + t] -= m[i * n + t];
  }
  return out;
}
