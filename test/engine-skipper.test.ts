/**
 * The tri-shape skipper's behaviour table, reproducing the cases of OpenVINO GenAI's C++ unit test
 * of TriShapeSparseAttentionTokenSkipper (tests/cpp/sparse_attention.cpp, block size 32), and the
 * XAttention per-chunk threshold rule.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TriShapeTokenSkipper } from '../src/methods/tri-shape/trishape-skipper.js';
import { xattentionChunkThreshold } from '../src/methods/xattention/xattention-chunk-rule.js';

const BLOCK_SIZE = 32;

// [promptLength, tokens already in cache, tokens in new chunk, numLastDense, retainedStart, retainedRecent, skipped, name]
type Case = [number, number, number, number, number, number, number[], string];
const CASES: Case[] = [
  [10, 5, 2, 1, 32, 32, [], 'one_block_prompt_sparse_prefill_phase'],
  [10, 4, 2, 5, 32, 32, [], 'one_block_prompt_sparse_to_dense_prefill_phase'],
  [10, 7, 2, 5, 32, 32, [], 'one_block_prompt_dense_prefill_phase'],
  [10, 5, 2, 5, 32, 32, [], 'one_block_prompt_dense_prefill_phase_start'],
  [10, 7, 3, 5, 32, 32, [], 'one_block_prompt_dense_prefill_phase_end'],

  [40, 15, 5, 9, 32, 32, [], 'two_block_prompt_sparse_prefill_phase'],
  [40, 2, 1, 35, 32, 32, [], 'two_block_prompt_sparse_prefill_phase_multi_block_dense_phase'],
  [40, 33, 4, 5, 32, 32, [], 'two_block_prompt_sparse_to_dense_prefill_phase_in_same_block'],
  [40, 20, 17, 5, 32, 32, [], 'two_block_prompt_sparse_to_dense_prefill_phase_crossing_block_borders'],
  [40, 35, 2, 5, 32, 32, [], 'two_block_prompt_dense_prefill_phase_start_in_same_block'],
  [40, 25, 10, 15, 32, 32, [], 'two_block_prompt_dense_prefill_phase_start_crossing_block_borders'],
  [40, 35, 2, 5, 32, 32, [], 'two_block_prompt_dense_prefill_phase_in_same_block'],
  [40, 30, 8, 15, 32, 32, [], 'two_block_prompt_dense_prefill_phase_crossing_block_borders'],
  [40, 36, 4, 10, 32, 32, [], 'two_block_prompt_dense_prefill_phase_end'],

  [158, 15, 5, 1, 32, 32, [], 'five_block_prompt_sparse_prefill_phase_begin'],
  [158, 15, 5, 100, 32, 32, [], 'five_block_prompt_sparse_prefill_phase_begin_multi_block_dense_phase'],
  [158, 60, 3, 70, 32, 32, [], 'five_block_prompt_sparse_prefill_phase_multi_block_begin_multi_block_dense_phase'],
  [158, 68, 5, 15, 32, 32, [], 'five_block_prompt_sparse_prefill_phase_early'],
  [158, 68, 5, 70, 32, 32, [], 'five_block_prompt_sparse_prefill_phase_early_multi_block_dense_phase'],
  [158, 68, 35, 40, 32, 32, [], 'five_block_prompt_sparse_prefill_phase_early_multi_block_chunk_multi_block_dense_phase'],
  [158, 98, 5, 15, 32, 32, [1], 'five_block_prompt_sparse_prefill_phase_with_skips'],
  [190, 98, 5, 60, 32, 32, [1], 'six_block_prompt_sparse_prefill_phase_with_skips_multi_block_dense_phase'],
  [158, 98, 35, 10, 32, 32, [1], 'five_block_prompt_sparse_prefill_phase_with_skips_multi_block_chunk'],
  [190, 98, 35, 40, 32, 32, [1], 'six_block_prompt_sparse_prefill_phase_with_skips_multi_block_chunk_multi_block_dense_phase'],
  [158, 129, 16, 10, 32, 32, [1, 2], 'five_block_prompt_sparse_prefill_phase_with_skips_nearing_dense'],

  // The chunk ends on a block border, but the last block of the cache before it was not full: keep it.
  [158, 124, 4, 10, 32, 32, [1], 'five_block_prompt_sparse_prefill_phase_with_skips_exact_block_border'],
  [190, 151, 9, 10, 32, 32, [1, 2], 'six_block_prompt_sparse_prefill_phase_with_skips_exact_block_border'],
  // Likewise slightly over the border: only the cache state before the chunk matters.
  [190, 151, 11, 10, 32, 32, [1, 2], 'six_block_prompt_sparse_prefill_phase_with_skips_slightly_over_block_border'],

  [300, 250, 11, 10, 32, 32, [1, 2, 3, 4, 5], 'ten_block_prompt_sparse_prefill_phase_with_skips'],
  [158, 100, 5, 50, 32, 32, [1], 'five_block_prompt_sparse_prefill_phase_with_multi_block_dense_starting_in_same_block'],
  [158, 140, 4, 14, 32, 32, [1, 2], 'five_block_prompt_sparse_prefill_phase_end_in_same_block'],
  [158, 110, 34, 14, 32, 32, [1], 'five_block_prompt_sparse_prefill_phase_end_crossing_block_borders'],
  [158, 140, 10, 12, 32, 32, [], 'five_block_prompt_sparse_to_dense_prefill_phase_in_same_block'],
  [158, 20, 137, 5, 32, 32, [], 'five_block_prompt_sparse_to_dense_prefill_phase_crossing_block_borders'],
  [158, 45, 2, 113, 32, 32, [], 'five_block_prompt_dense_prefill_phase_start_in_same_block'],
  [158, 45, 40, 113, 32, 32, [], 'five_block_prompt_dense_prefill_phase_start_crossing_block_borders'],
  [158, 55, 8, 120, 32, 32, [], 'five_block_prompt_dense_prefill_phase_in_same_block'],
  [158, 55, 80, 120, 32, 32, [], 'five_block_prompt_dense_prefill_phase_crossing_block_borders'],
  [158, 55, 103, 120, 32, 32, [], 'five_block_prompt_dense_prefill_phase_end'],

  // More than one block in the retained start / recent areas.
  [300, 250, 11, 10, 64, 96, [2, 3], 'ten_block_prompt_sparse_prefill_phase_with_skips_larger_start_recent_areas'],
  [300, 250, 11, 10, 96, 64, [3, 4], 'ten_block_prompt_sparse_prefill_phase_with_skips_larger_start_recent_areas_inverted'],
  [158, 100, 5, 50, 64, 96, [], 'five_block_prompt_sparse_prefill_phase_with_multi_block_dense_starting_in_same_block_larger_start_recent_areas'],
  [158, 45, 40, 113, 64, 96, [], 'five_block_prompt_dense_prefill_phase_start_crossing_block_borders_larger_start_recent_areas'],
];

describe('TriShapeTokenSkipper: OpenVINO GenAI behaviour table (block size 32)', () => {
  it('has the 43 cases of the OpenVINO test', () => assert.equal(CASES.length, 43));
  for (const [promptLength, processed, scheduled, lastDense, start, recent, skipped, name] of CASES) {
    it(name, () => {
      const skipper = new TriShapeTokenSkipper(BLOCK_SIZE, lastDense, start, recent);
      assert.deepEqual(skipper.skippedBlocks({ promptLength, processed, scheduled }), skipped);
    });
  }

  it('counts cached tokens net of eviction when given', () => {
    const skipper = new TriShapeTokenSkipper(BLOCK_SIZE, 10, 32, 32);
    assert.deepEqual(skipper.skippedBlocks({ promptLength: 300, processed: 250, scheduled: 11, cached: 150 }), [1, 2]);
  });

  it('rejects retained sizes that are not multiples of the block size, naming the field', () => {
    assert.throws(() => new TriShapeTokenSkipper(32, 10, 48, 32), /numRetainedStartTokensInCache must be a multiple of the KV block size \(32\), got 48/);
    assert.throws(() => new TriShapeTokenSkipper(16, 10, 32, 40), /numRetainedRecentTokensInCache must be a multiple of the KV block size \(16\), got 40/);
  });

  it('rejects a chunk past the end of the prompt', () => {
    const skipper = new TriShapeTokenSkipper(32, 10, 32, 32);
    assert.throws(() => skipper.skippedBlocks({ promptLength: 100, processed: 90, scheduled: 20 }), /processed \+ scheduled must be at most promptLength \(100\)/);
  });
});

describe('XAttention per-chunk threshold (OpenVINO GenAI scheduler rule)', () => {
  const tau = 0.8;
  const cases: [string, number, number, number, number, number | null][] = [
    // [name, promptLength, processed, scheduled, numLastDense, expected]
    ['early chunk is sparse', 300, 0, 64, 100, tau],
    ['chunk ending exactly numLastDense before the end is sparse', 300, 136, 64, 100, tau],
    ['chunk ending inside the dense tail is dense', 300, 137, 64, 100, null],
    ['dense tail spills over a whole earlier chunk', 300, 192, 64, 100, null],
    ['final chunk is sparse again', 300, 256, 44, 100, tau],
    ['one-chunk prompt is sparse', 300, 0, 300, 100, tau],
    ['numLastDense 0: every prompt chunk sparse', 300, 200, 64, 0, tau],
    ['decode is dense', 300, 300, 1, 100, null],
    ['decode long after the prompt is dense', 300, 310, 1, 0, null],
  ];
  for (const [name, promptLength, processed, scheduled, lastDense, want] of cases) {
    it(name, () => assert.equal(xattentionChunkThreshold({ promptLength, processed, scheduled }, tau, lastDense), want));
  }
});
