/**
 * EvictionScoreManager and the SnapKV window count against OpenVINO GenAI's own test tables
 * (tests/cpp/cache_eviction.cpp, openvino.genai da1db864: ADD_WITH_SKIPS_TEST_CASES,
 * REGISTER_SCORES_TEST_CASES, SNAPKV_COUNTER_TEST_CASES, REMOVE_SCORES_TEST_CASES,
 * SNAPKV_SCORE_AGGREGATOR_TEST_CASES), copied value for value. Their fixtures: 2 decoder layers,
 * max-pool window 8 unless the case says otherwise, block size 4 for the counter cases.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregationMode } from '../src/config/cache-eviction-config.js';
import { EvictionScoreManager, snapkvScoresToAggregate } from '../src/engine/eviction-scores.js';

const { SUM, NORM_SUM } = AggregationMode;
const LAYERS = 2;

function assertNear(actual: readonly number[], expected: readonly number[], what: string, tol = 1e-6): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs ${expected.length} (${JSON.stringify(actual)})`);
  actual.forEach((x, i) => assert.ok(Math.abs(x - expected[i]) <= tol, `${what}[${i}]: ${x} vs ${expected[i]} (${JSON.stringify(actual)})`));
}

describe('EvictionScoreManager.addWithSkips (OpenVINO ADD_WITH_SKIPS_TEST_CASES)', () => {
  const cases: [string, number, number[], number[], number[], number[]][] = [
    ['basic case', 2, [0, 1, 2, 3], [1], [0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 2, 3]],
    ['another block size', 3, [-1, 1.5, 12.8, 3, -9.4, 0.1], [1], [1, 1, 1, 2, 2, 2, -3, -3, -3], [0, 2.5, 13.8, 2, 2, 2, 0, -12.4, -2.9]],
    ['corner case skipped blocks', 3, [-1, 1.5, 12.8, 3, -9.4, 0.1], [0, 3], [1, 1, 1, 2, 2, 2, -3, -3, -3, 12.5, -7.2, 9.6], [1, 1, 1, 1, 3.5, 14.8, 0, -12.4, -2.9, 12.5, -7.2, 9.6]],
    ['non-contiguous skipped blocks', 2, [-1, 1.5, 12.8, 3, -13, -87], [1, 2, 4], [1, 1, 1, 2, 2, 2, -3, -3, -3, 12.5, 42, -1337], [0, 2.5, 1, 2, 2, 2, 9.8, 0, -3, 12.5, 29, -1424]],
    ['no blocks skipped', 2, [5.9, 0.3, -1, 1.5, 12.8, 3, -13, -87], [], [1, 1, 1, 2, 2, 2, -3, -3], [6.9, 1.3, 0, 3.5, 14.8, 5, -16, -90]],
    ['all blocks skipped', 2, [], [0, 1, 2, 3], [1, 1, 1, 2, 2, 2, -3, -3], [1, 1, 1, 2, 2, 2, -3, -3]],
    ['non-block aligned values', 2, [5.9, 0.3, 12.8, 3, -13], [1], [1, 1, 1, 2, 2, 2, -3], [6.9, 1.3, 1, 2, 14.8, 5, -16]],
  ];
  for (const [name, bs, src, skips, before, after] of cases) {
    it(name, () => {
      const mgr = new EvictionScoreManager({ blockSize: bs, numLayers: LAYERS, maxPoolWindow: 8, mode: NORM_SUM });
      const dst = [...before];
      mgr.addWithSkips(dst, src, new Set(skips));
      assertNear(dst, after, 'dst');
    });
  }

  it('refuses a source whose length does not fit the skipped blocks', () => {
    const mgr = new EvictionScoreManager({ blockSize: 2, numLayers: 1, maxPoolWindow: 1, mode: SUM });
    assert.throws(() => mgr.addWithSkips([0, 0, 0, 0], [1, 2, 3], new Set([1])), /dst\.length must be src\.length \+ blockSize · skipped blocks \(3 \+ 2 · 1\), got 4/);
  });
});

type Registration = [number[][], number[]];
interface RegisterCase {
  id: string;
  blockSize: number;
  mode: AggregationMode;
  maxPool: number;
  ignore: number;
  snapkv: number;
  regs: Registration[];
  scores: number[][];
  counters: number[][];
}

const A: number[][] = [[1.5, -0.8, 4.1, 7.7], [-0.9, 1.4, 6.4, -9.0]];
const A6: number[][] = [[1.5, -0.8, 4.1, 7.7, 3.6, -7.4], [-0.9, 1.4, 6.4, -9.0, 8.1, 2.6]];
const B3: number[][] = [[-7.4, 2.6, 8.9], [-3.1, -8.2, 5.9]];
const B6: number[][] = [[-7.4, 2.6, 8.9, 3.5, 7.4, -3.8], [-3.1, -8.2, 5.9, -7.9, -5.8, 1.7]];
const B7: number[][] = [[-7.4, 2.6, 8.9, 3.5, 7.4, -3.8, 0.1], [-3.1, -8.2, 5.9, -7.9, -5.8, 1.7, -0.2]];

const REGISTER_CASES: RegisterCase[] = [
  { id: 'basic_case_sum', blockSize: 2, mode: SUM, maxPool: 0, ignore: 0, snapkv: 0, regs: [[A, []]], scores: A, counters: [[], []] },
  { id: 'basic_case_norm_sum', blockSize: 2, mode: NORM_SUM, maxPool: 0, ignore: 0, snapkv: 0, regs: [[A, []]], scores: A, counters: [[4, 3, 2, 1], [4, 3, 2, 1]] },
  {
    id: 'two_scores_sum', blockSize: 2, mode: SUM, maxPool: 0, ignore: 0, snapkv: 0, regs: [[A, []], [[[-7.4, 2.6, 8.9, -0.1], [-3.1, -8.2, 5.9, 7.6]], []]],
    scores: [[-5.9, 1.8, 13.0, 7.6], [-4.0, -6.8, 12.3, -1.4]], counters: [[], []],
  },
  {
    id: 'two_scores_norm_sum', blockSize: 2, mode: NORM_SUM, maxPool: 0, ignore: 0, snapkv: 0, regs: [[A, []], [[[-7.4, 2.6, 8.9, -0.1], [-3.1, -8.2, 5.9, 7.6]], []]],
    scores: [[-5.9, 1.8, 13.0, 7.6], [-4.0, -6.8, 12.3, -1.4]], counters: [[4, 3, 2, 1], [4, 3, 2, 1]],
  },
  {
    id: 'more_scores_second_time', blockSize: 2, mode: NORM_SUM, maxPool: 0, ignore: 0, snapkv: 0, regs: [[A, []], [[[-7.4, 2.6, 8.9, -0.1, 3.5], [-3.1, -8.2, 5.9, 7.6, -1.0]], []]],
    scores: [[-5.9, 1.8, 13.0, 7.6, 3.5], [-4.0, -6.8, 12.3, -1.4, -1.0]], counters: [[5, 4, 3, 2, 1], [5, 4, 3, 2, 1]],
  },
  {
    id: 'less_scores_second_time_with_skips', blockSize: 2, mode: NORM_SUM, maxPool: 0, ignore: 0, snapkv: 0, regs: [[A6, []], [B3, [1, 2]]],
    scores: [[-5.9, 1.8, 4.1, 7.7, 3.6, -7.4, 8.9], [-4.0, -6.8, 6.4, -9.0, 8.1, 2.6, 5.9]], counters: [[7, 6, 5, 4, 3, 2, 1], [7, 6, 5, 4, 3, 2, 1]],
  },
  {
    id: 'with_ignore_first_n_blocks_base', blockSize: 2, mode: NORM_SUM, maxPool: 0, ignore: 1, snapkv: 0, regs: [[A6, []], [B6, []]],
    scores: [[13.0, 11.2, 11.0, -11.2], [12.3, -16.9, 2.3, 4.3]], counters: [[4, 3, 2, 1], [4, 3, 2, 1]],
  },
  {
    id: 'with_ignore_first_n_blocks_more_scores_second_time', blockSize: 2, mode: NORM_SUM, maxPool: 0, ignore: 1, snapkv: 0, regs: [[A6, []], [B7, []]],
    scores: [[13.0, 11.2, 11.0, -11.2, 0.1], [12.3, -16.9, 2.3, 4.3, -0.2]], counters: [[5, 4, 3, 2, 1], [5, 4, 3, 2, 1]],
  },
  {
    id: 'with_ignore_first_n_blocks_less_second_time_with_skips', blockSize: 2, mode: NORM_SUM, maxPool: 0, ignore: 1, snapkv: 0, regs: [[A6, []], [B3, [1, 2]]],
    scores: [[4.1, 7.7, 3.6, -7.4, 8.9], [6.4, -9.0, 8.1, 2.6, 5.9]], counters: [[5, 4, 3, 2, 1], [5, 4, 3, 2, 1]],
  },
  {
    id: 'with_max_pool_base', blockSize: 2, mode: NORM_SUM, maxPool: 3, ignore: 0, snapkv: 0, regs: [[A6, []]],
    scores: [[4.1, 7.7, 7.7, 7.7, 3.6, -7.4], [6.4, 6.4, 8.1, 8.1, 8.1, 2.6]], counters: [[6, 5, 4, 3, 2, 1], [6, 5, 4, 3, 2, 1]],
  },
  {
    id: 'with_max_pool_two_score', blockSize: 2, mode: NORM_SUM, maxPool: 3, ignore: 0, snapkv: 0, regs: [[A6, []], [B7, []]],
    scores: [[13.0, 16.6, 16.6, 15.1, 11.0, -7.3, 0.1], [12.3, 12.3, 14.0, 9.8, 9.8, 4.3, -0.2]], counters: [[7, 6, 5, 4, 3, 2, 1], [7, 6, 5, 4, 3, 2, 1]],
  },
  {
    id: 'with_max_pool_ignore_and_skips', blockSize: 2, mode: NORM_SUM, maxPool: 3, ignore: 1, snapkv: 0, regs: [[A6, []], [B3, [1, 2]]],
    scores: [[7.7, 7.7, 3.6, -7.4, 8.9], [8.1, 8.1, 8.1, 2.6, 5.9]], counters: [[5, 4, 3, 2, 1], [5, 4, 3, 2, 1]],
  },
];

describe('EvictionScoreManager.register (OpenVINO REGISTER_SCORES_TEST_CASES)', () => {
  for (const c of REGISTER_CASES) {
    it(c.id, () => {
      const mgr = new EvictionScoreManager({ blockSize: c.blockSize, numLayers: LAYERS, maxPoolWindow: c.maxPool, mode: c.mode, ignoreFirstNBlocks: c.ignore, snapkvWindowSize: c.snapkv });
      for (const [scores, skips] of c.regs) mgr.register(scores, skips);
      for (let l = 0; l < LAYERS; l++) assertNear(mgr.scores[l], c.scores[l], `layer ${l} scores`);
      assert.deepEqual(mgr.counters, c.counters);
    });
  }
});

describe('EvictionScoreManager SnapKV lifetime counters (OpenVINO SNAPKV_COUNTER_TEST_CASES)', () => {
  const cases: [string, number, [number, number][], number[]][] = [
    ['snapkv_window_not_completely_filled', 3, [[4, 1], [5, 1]], [2, 2, 2, 2, 1]],
    ['snapkv_window_exactly_filled', 4, [[3, 1], [6, 3]], [4, 4, 4, 3, 2, 1]],
    ['snapkv_window_overflow_by_1', 4, [[3, 1], [7, 3]], [5, 5, 5, 4, 3, 2, 1]],
    ['snapkv_window_filled_followed_by_generation_step', 4, [[3, 1], [6, 3], [7, 1]], [5, 5, 5, 4, 3, 2, 1]],
    ['snapkv_window_filled_followed_by_two_generation_steps', 4, [[3, 1], [6, 3], [7, 1], [8, 1]], [6, 6, 6, 5, 4, 3, 2, 1]],
    ['snapkv_window_not_filled_in_multiple_steps', 9, [[3, 3], [4, 1], [5, 1], [8, 3]], [8, 7, 6, 5, 4, 3, 2, 1]],
    ['snapkv_window_filled_exactly_in_multiple_steps', 8, [[3, 3], [4, 1], [5, 1], [8, 3]], [8, 7, 6, 5, 4, 3, 2, 1]],
  ];
  for (const [id, window, regs, counters] of cases) {
    it(id, () => {
      const mgr = new EvictionScoreManager({ blockSize: 4, numLayers: LAYERS, maxPoolWindow: 8, mode: NORM_SUM, snapkvWindowSize: window });
      for (const [n, snap] of regs) mgr.register([new Array(n).fill(0), new Array(n).fill(0)], [], snap);
      assert.deepEqual(mgr.counters, [counters, counters]);
    });
  }

  it('scores before the window carry nothing; more window positions than the window is an error', () => {
    const mgr = new EvictionScoreManager({ blockSize: 4, numLayers: 1, maxPoolWindow: 1, mode: NORM_SUM, snapkvWindowSize: 4 });
    mgr.register([[1, 2, 3]], [], 0);
    assert.deepEqual(mgr.scores, [[]]);
    assert.throws(() => mgr.register([[1, 2, 3, 4, 5]], [], 5), /numSnapkvScores must be at most the 4 positions left in the SnapKV window, got 5/);
  });
});

describe('EvictionScoreManager.removeScores (OpenVINO REMOVE_SCORES_TEST_CASES)', () => {
  const cases: [string, AggregationMode, Registration[], number[][], number[][], number[][]][] = [
    ['nothing_to_remove', NORM_SUM, [[A, []]], [[], []], A, [[4, 3, 2, 1], [4, 3, 2, 1]]],
    ['basic_case_sum', SUM, [[A, []]], [[0], [1]], [[4.1, 7.7], [-0.9, 1.4]], [[], []]],
    ['basic_case_norm_sum', NORM_SUM, [[A, []]], [[0], [1]], [[4.1, 7.7], [-0.9, 1.4]], [[2, 1], [4, 3]]],
    ['two_adds_then_remove', NORM_SUM, [[A6, []], [B3, [1, 2]]], [[0, 2], [0, 1, 3]], [[4.1, 7.7, 8.9], [8.1, 2.6]], [[5, 4, 1], [3, 2]]],
  ];
  for (const [id, mode, regs, removed, scores, counters] of cases) {
    it(id, () => {
      const mgr = new EvictionScoreManager({ blockSize: 2, numLayers: LAYERS, maxPoolWindow: 0, mode });
      for (const [s, skips] of regs) mgr.register(s, skips);
      for (let l = 0; l < LAYERS; l++) mgr.removeScores(removed[l], l);
      for (let l = 0; l < LAYERS; l++) assertNear(mgr.scores[l], scores[l], `layer ${l} scores`);
      assert.deepEqual(mgr.counters, counters);
    });
  }
});

describe('SnapKV scores to aggregate per chunk (OpenVINO SNAPKV_SCORE_AGGREGATOR_TEST_CASES)', () => {
  // [id, window, prompt length, processed, scheduled, expected]
  const cases: [string, number, number, number, number, number][] = [
    ['snapkv_window_not_reached', 8, 100, 30, 45, 0],
    ['snapkv_window_begins', 16, 30, 13, 4, 3],
    ['snapkv_window_in_progress', 16, 30, 16, 8, 8],
    ['snapkv_window_ends', 16, 30, 28, 2, 2],
    ['generation_phase', 16, 30, 33, 1, 1],
    ['snapkv_window_in_one_chunk', 6, 42, 33, 9, 6],
    ['no_snapkv_prefill_phase', 0, 89, 61, 13, 13],
    ['no_snapkv_prefill_end', 0, 89, 83, 6, 6],
    ['no_snapkv_generation_phase', 0, 89, 101, 1, 1],
  ];
  for (const [id, window, prompt, processed, scheduled, expected] of cases) {
    it(id, () => assert.equal(snapkvScoresToAggregate(window, prompt, scheduled, processed), expected));
  }
});
