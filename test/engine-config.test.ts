import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kvBlockBytes, parseSchedulerConfig, parseSparseAttentionConfig, SparseAttentionMode } from '../src/config/openvino.js';

describe('OpenVINO-shaped config', () => {
  it('has OpenVINO GenAI\'s defaults', () => {
    assert.equal(SparseAttentionMode.TRISHAPE, 0);
    assert.equal(SparseAttentionMode.XATTENTION, 1);
    assert.deepEqual(parseSparseAttentionConfig(), {
      mode: SparseAttentionMode.TRISHAPE, numLastDenseTokensInPrefill: 100, numRetainedStartTokensInCache: 128,
      numRetainedRecentTokensInCache: 1920, xattentionThreshold: 0.8, xattentionBlockSize: 64, xattentionStride: 8,
    });
    const s = parseSchedulerConfig({ numKvBlocks: 10 });
    assert.equal(s.maxNumBatchedTokens, 256);
    assert.equal(s.kvBlockSize, 32);
    assert.equal(s.useSparseAttention, false);
    assert.equal(s.sparseAttentionConfig.numRetainedRecentTokensInCache, 1920);
  });

  it('accepts the mode by number or name, and block size 16', () => {
    assert.equal(parseSparseAttentionConfig({ mode: 'XATTENTION' }).mode, SparseAttentionMode.XATTENTION);
    assert.equal(parseSparseAttentionConfig({ mode: 1 }).mode, SparseAttentionMode.XATTENTION);
    assert.equal(parseSchedulerConfig({ numKvBlocks: 1, kvBlockSize: 16 }).kvBlockSize, 16);
  });

  const bad: [string, unknown, RegExp][] = [
    ['retained start not a multiple of the block', { numKvBlocks: 4, sparseAttentionConfig: { numRetainedStartTokensInCache: 20 } },
      /SchedulerConfig\.sparseAttentionConfig\.numRetainedStartTokensInCache must be a multiple of the KV block size \(32\), got 20/],
    ['retained recent not a multiple of block 16', { numKvBlocks: 4, kvBlockSize: 16, sparseAttentionConfig: { numRetainedRecentTokensInCache: 40 } },
      /numRetainedRecentTokensInCache must be a multiple of the KV block size \(16\), got 40/],
    ['unknown field', { numKvBlocks: 4, maxBatchSize: 3 }, /SchedulerConfig field name must be one of maxNumBatchedTokens, .*, got "maxBatchSize"/],
    ['unknown nested field', { numKvBlocks: 4, sparseAttentionConfig: { threshold: 1 } }, /SchedulerConfig\.sparseAttentionConfig field name must be one of mode, .*, got "threshold"/],
    ['no cache size', {}, /SchedulerConfig\.numKvBlocks must be an integer >= 1 when cacheSizeBytes is 0/],
    ['block size 8', { numKvBlocks: 4, kvBlockSize: 8 }, /SchedulerConfig\.kvBlockSize must be one of 16 \(GPU\) or 32 \(CPU\), got 8/],
    ['bad mode', { numKvBlocks: 4, sparseAttentionConfig: { mode: 'SLA' } }, /sparseAttentionConfig\.mode must be .*"TRISHAPE" or "XATTENTION", got "SLA"/],
    ['fractional blocks', { numKvBlocks: 1.5 }, /SchedulerConfig\.numKvBlocks must be an integer >= 0, got 1\.5/],
    ['threshold 0 (OpenVINO\'s "dense")', { numKvBlocks: 4, sparseAttentionConfig: { xattentionThreshold: 0 } }, /xattentionThreshold must be a number in \(0, 1\], got 0/],
    ['block not a multiple of stride', { numKvBlocks: 4, sparseAttentionConfig: { xattentionBlockSize: 12 } }, /xattentionBlockSize must be a multiple of xattentionStride \(8\), got 12/],
    ['zero batch', { numKvBlocks: 4, maxNumBatchedTokens: 0 }, /SchedulerConfig\.maxNumBatchedTokens must be an integer >= 1, got 0/],
  ];
  for (const [name, input, re] of bad) {
    it(`rejects: ${name}`, () => assert.throws(() => parseSchedulerConfig(input), re));
  }

  it('retained sizes only need to match the block in TRISHAPE mode (OpenVINO builds the skipper only then)', () => {
    const c = parseSchedulerConfig({ numKvBlocks: 4, sparseAttentionConfig: { mode: 'XATTENTION', numRetainedStartTokensInCache: 20 } });
    assert.equal(c.sparseAttentionConfig.numRetainedStartTokensInCache, 20);
  });

  it('counts the bytes of one KV block over layers, K and V', () => {
    assert.equal(kvBlockBytes(2, 2, 8, 16), 2 * 2 * 2 * 16 * 8 * 4);
  });
});
