/**
 * ADAPTIVE_RKV against OpenVINO's tables: score aggregation and block selection from openvino.genai
 * tests/cpp/cache_eviction.cpp (da1db864: ADAPTIVE_RKV_REGISTER_SCORES_TEST_CASES,
 * ADAPTIVE_RKV_LOW_SCORE_AND_SIMILARITY_EVICTION_TEST_CASES, ThrowsIfEvictingWithoutSimilarityData),
 * and the key-diversity reference of OpenVINO core (adaptive_rkv_diversity.hpp and its GPU plugin
 * reference tests: block sums of ones), plus hand-computed cases. That suite's diversity_reflects_similarity
 * expects identical tokens to score higher than varied ones, the opposite of −similarity; its
 * "varied" tokens are one direction at different norms, so it rests on rounding, and is not copied.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregationMode } from '../src/config/cache-eviction-config.js';
import { parseCacheEvictionConfig } from '../src/config/openvino.js';
import { adaptiveRkvDiversity, blockSumDiversity } from '../src/engine/adaptive-rkv.js';
import { CacheEvictionAlgorithm } from '../src/engine/cache-eviction.js';
import { EvictionScoreManager } from '../src/engine/eviction-scores.js';

function assertNear(actual: ArrayLike<number>, expected: readonly number[], what: string, tol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

describe('ADAPTIVE_RKV score aggregation: mean of the last window registrations, max-pooled', () => {
  const cases: [string, number, [number[][], number[]][], number[][]][] = [
    ['within_adaptive_rkv_window', 8, [
      [[[1.5, -0.8, 4.1, 7.7, 3.6, -7.4], [-0.9, 1.4, 6.4, -9.0, 8.1, 2.6]], []],
      [[[-7.4, 2.6, 8.9], [-3.1, -8.2, 5.9]], [1, 2]],
    ], [[2.05, 3.85, 3.85, 3.85, 4.45, 4.45, 4.45], [3.2, 3.2, 4.05, 4.05, 4.05, 2.95, 2.95]]],
    ['exceeding_adaptive_rkv_window', 3, [
      [[[1.5, -0.8, 4.1, 7.7, 3.6, -7.4], [-0.9, 1.4, 6.4, -9.0, 8.1, 2.6]], []],
      [[[-7.4, 2.6, 8.9], [-3.1, -8.2, 5.9]], [1, 2]],
      [[[4.3, -4.1, -2.7, 8.3, -3.8, 4.9, 7.2, -6.2], [-2.2, 5.8, 7.0, 7.6, -9.8, -3.7, 1.4, -1.0]], []],
      [[[9.8, -3.8, 1.0, -1.9, 6.2, 3.0, 0.7, -4.5, 6.7, -4.7], [4.9, -7.6, 6.5, -6.7, 0.5, 6.7, 8.8, -7.5, 8.9, -0.5]], []],
    ], [[2.233333, 2.133333, 2.1333333, 2.633333, 5.6, 5.6, 5.6, 2.233333, 2.233333, -1.566666],
      [4.5, 4.5, 4.5, 1.0, 5.366666, 5.3666666, 5.366666, 2.966666, 2.966666, -0.1666666]]],
  ];
  for (const [id, window, regs, expected] of cases) {
    it(id, () => {
      const mgr = new EvictionScoreManager({ blockSize: 2, numLayers: 2, maxPoolWindow: 3, mode: AggregationMode.ADAPTIVE_RKV, adaptiveRkvWindowSize: window });
      for (const [s, skips] of regs) mgr.register(s, skips);
      expected.forEach((e, l) => assertNear(mgr.scores[l], e, `layer ${l}`));
    });
  }
});

/** Each block row of the kernel's [blocks, tokens] diversity filled with that block's value. */
const unfiltered = (blockDiversity: number[], bs: number) => blockDiversity.flatMap((d) => new Array<number>(blockDiversity.length * bs).fill(d));

describe('ADAPTIVE_RKV eviction: attention-mass blocks, then the most diverse', () => {
  // start 2, recent 2, max 10 tokens, block 2 (3 evictable blocks kept); attention mass 0.9, window 1.
  const cases: [string, number, number[], number[], number[]][] = [
    ['three_blocks_overflow_one_hiscore_two_diverse_to_keep', 2 * 2 + 1, [999, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [10.5, 0.3, 18.5, 0.3, 23.65, 19.25], [2, 3, 4]],
    ['two_blocks_overflow_two_hiscore_one_diverse_to_keep', 2 * 2, [0.1, 0.2, 0.3, 0.4, 0.1, 8.3, 11.0, 0, 0, 0], [2.15, 2.3, -20.2, 4.3, 1.15], [1, 5]],
  ];
  for (const [id, over, evictableScores, blockDiversity, expected] of cases) {
    it(id, () => {
      const cfg = parseCacheEvictionConfig({ startSize: 2, recentSize: 2, maxCacheSize: 10, aggregationMode: 'ADAPTIVE_RKV', snapkvWindowSize: 0, adaptiveRkvConfig: { attentionMass: 0.9, windowSize: 1 } });
      const a = new CacheEvictionAlgorithm(cfg, 2, 2, 1);
      const n = a.maxCacheSizeAfterEviction + over;
      const scores = [0, 1].map(() => {
        const s = new Array<number>(n).fill(1);
        evictableScores.forEach((v, i) => (s[2 + i] = v));
        return s;
      });
      a.registerTokenScores(scores);
      a.registerBlockDiversity([unfiltered(blockDiversity, 2), unfiltered(blockDiversity, 2)]);
      assert.deepEqual(a.evictLogicalBlocks(), [expected, expected]);
    });
  }

  it('refuses to evict without diversity, then evicts once it is registered', () => {
    const cfg = parseCacheEvictionConfig({ startSize: 4, recentSize: 4, maxCacheSize: 12, aggregationMode: 'ADAPTIVE_RKV', snapkvWindowSize: 0 });
    const a = new CacheEvictionAlgorithm(cfg, 4, 2, 8);
    a.registerTokenScores([new Array(16).fill(0), new Array(16).fill(0)]);
    assert.throws(() => a.evictLogicalBlocks(), /ADAPTIVE_RKV: block diversity must be registered before each eviction/);
    a.registerBlockDiversity([new Array(16).fill(0), new Array(16).fill(0)]);
    assert.doesNotThrow(() => a.evictLogicalBlocks());
  });
});

describe('Adaptive R-KV key diversity (OpenVINO reference calculator)', () => {
  it('a hand-computed case: diagonal zeroed, below-mean similarities dropped, rows summed per block and negated', () => {
    // 1 head, 4 tokens, D 2: k0 = k1 = (1, 0), k2 = (0, 1), k3 = (−1, 0); block 2.
    const d = adaptiveRkvDiversity(Float32Array.from([1, 0, 1, 0, 0, 1, -1, 0]), 1, 4, 2, 2);
    assertNear(d, [-1, -1, 0, 0, 0, 0, 0, 0], 'diversity', 1e-6);
  });

  it('block sums of an all-ones matrix are −blockSize', () => {
    assertNear(blockSumDiversity(new Array(32 * 32).fill(1), 32, 16), new Array(2 * 32).fill(-16), 'block sums');
  });

  it('a block of mutually orthogonal tokens scores higher (more diverse) than a block of identical ones', () => {
    // Block 0: four copies of e0; block 1: e4..e7. Diversity is −similarity, and selection keeps the highest.
    const n = 8, D = 8;
    const keys = new Float32Array(n * D);
    for (let t = 0; t < 4; t++) keys[t * D] = 1;
    for (let t = 4; t < 8; t++) keys[t * D + t] = 1;
    const d = adaptiveRkvDiversity(keys, 1, n, D, 4);
    const expected = [-3, -3, -3, -3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assertNear(d, expected, 'diversity', 1e-6);
  });

  it('averages over KV heads', () => {
    const one = Float32Array.from([1, 0, 1, 0, 0, 1, -1, 0]);
    const two = new Float32Array(16);
    two.set(one, 0);
    two.set(Float32Array.from([0, 1, 0, 1, 0, 1, 0, 1]), 8); // second head: four identical keys
    const d = adaptiveRkvDiversity(two, 2, 4, 2, 2);
    // Head 2: off-diagonal similarities 1, row mean 0.75, all kept: block rows sum to −(1+1) except own-diagonal columns.
    const head2 = [[0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]];
    const head1 = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]];
    const expected: number[] = [];
    for (let b = 0; b < 2; b++) for (let t = 0; t < 4; t++) expected.push(-((head1[2 * b][t] + head1[2 * b + 1][t]) + (head2[2 * b][t] + head2[2 * b + 1][t])) / 2);
    assertNear(d, expected, 'diversity', 1e-6);
  });
});
