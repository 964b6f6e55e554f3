import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockMask, type BlockMaskDims } from '../src/core/block-mask.js';
import { formatTable, phaseOf, type SparsityStats, StatsAggregator, statsFromMask } from '../src/core/stats.js';

const square = (L: number, b: number, extra: Partial<BlockMaskDims> = {}): BlockMaskDims => ({
  batch: 1, heads: 1, queryLength: L, keyLength: L, blockRows: b, blockCols: b, causal: true, ...extra,
});

const stats = (method: string, phase: 'prefill' | 'decode', totalBlocks: number, keptBlocks: number): SparsityStats => ({
  method, phase, totalBlocks, keptBlocks, sparsity: 1 - keptBlocks / totalBlocks,
});

describe('statsFromMask', () => {
  it('counts over the causal lower triangle, per batch and head; kept blocks above it do not count', () => {
    // Lq = Lk = 5, b = 2: 3×3 blocks, 6 causally valid per head; 2 batches × 2 heads.
    const d = square(5, 2, { batch: 2, heads: 2 });
    // Every head keeps the diagonal (3 blocks); head 1 also keeps (0, 2), which is above the diagonal.
    const m = BlockMask.fromPredicate(d, (_b, h, qb, kb) => qb === kb || (h === 1 && qb === 0 && kb === 2));
    const s = statsFromMask('flash_skip_softmax', m);
    assert.deepEqual(s, { method: 'flash_skip_softmax', phase: 'prefill', totalBlocks: 24, keptBlocks: 12, sparsity: 0.5 });
    assert.equal(s.sparsity, m.sparsity);
  });

  it('counts every block when not causal, and passes method-specific figures through', () => {
    const m = BlockMask.fromPredicate(square(6, 4, { causal: false, keyLength: 9 }), (_b, _h, qb, kb) => kb <= qb);
    // 2 query blocks × 3 key blocks = 6 blocks, kept (0,0), (1,0), (1,1).
    assert.deepEqual(statsFromMask('xattention', m, { correction_factor: 0.25 }), {
      method: 'xattention', phase: 'prefill', totalBlocks: 6, keptBlocks: 3, sparsity: 0.5, extra: { correction_factor: 0.25 },
    });
  });

  it('calls a one-query call decode', () => {
    const m = BlockMask.full(square(1, 4, { keyLength: 10 }));
    assert.deepEqual(statsFromMask('dense', m), { method: 'dense', phase: 'decode', totalBlocks: 3, keptBlocks: 3, sparsity: 0 });
    assert.equal(phaseOf(1), 'decode');
    assert.equal(phaseOf(2), 'prefill');
  });
});

describe('StatsAggregator', () => {
  function filled(): StatsAggregator {
    const agg = new StatsAggregator();
    agg.record('model.layers.0.attn', stats('flash_skip_softmax', 'prefill', 12, 6));
    agg.record('model.layers.1.attn', stats('xattention', 'prefill', 10, 9));
    agg.record('model.layers.0.attn', stats('flash_skip_softmax', 'decode', 3, 1));
    return agg;
  }

  it('sums blocks per module (block-weighted, not a mean of ratios) and counts calls per phase', () => {
    const agg = filled();
    assert.deepEqual(agg.modules, ['model.layers.0.attn', 'model.layers.1.attn']);
    assert.equal(agg.calls('model.layers.0.attn').length, 2);
    assert.deepEqual(agg.calls('nope'), []);
    const [l0, l1] = agg.summary();
    assert.deepEqual({ ...l0, sparsity: undefined }, { module: 'model.layers.0.attn', method: 'flash_skip_softmax', calls: 2, prefillCalls: 1, decodeCalls: 1, totalBlocks: 15, keptBlocks: 7, sparsity: undefined });
    assert.ok(Math.abs(l0.sparsity - 8 / 15) < 1e-12, `got ${l0.sparsity}`);
    assert.equal(l1.keptBlocks, 9);
    assert.ok(Math.abs(l1.sparsity - 0.1) < 1e-12);
  });

  it('filters by phase, leaving out modules with no call in it', () => {
    const decode = filled().summary('decode');
    assert.equal(decode.length, 1);
    assert.deepEqual(decode[0], { module: 'model.layers.0.attn', method: 'flash_skip_softmax', calls: 1, prefillCalls: 0, decodeCalls: 1, totalBlocks: 3, keptBlocks: 1, sparsity: 1 - 1 / 3 });
    const prefill = filled().summary('prefill');
    assert.deepEqual(prefill.map((r) => [r.module, r.totalBlocks, r.keptBlocks]), [['model.layers.0.attn', 12, 6], ['model.layers.1.attn', 10, 9]]);
  });

  it('lists every method a module ran, and reports zero blocks as sparsity 0, not NaN', () => {
    const agg = new StatsAggregator();
    agg.record('m', stats('dense', 'prefill', 4, 4));
    agg.record('m', stats('xattention', 'prefill', 4, 2));
    agg.record('m', stats('dense', 'prefill', 4, 4));
    agg.record('empty', { method: 'dense', phase: 'decode', totalBlocks: 0, keptBlocks: 0, sparsity: 0 });
    const [m, empty] = agg.summary();
    assert.equal(m.method, 'dense,xattention');
    assert.equal(empty.sparsity, 0);
    agg.clear();
    assert.deepEqual(agg.modules, []);
    assert.deepEqual(agg.summary(), []);
  });

  it('prints a table with one row per module and a block-weighted total', () => {
    assert.equal(filled().table(), [
      'module               method              calls  kept  total  sparsity',
      '-------------------  ------------------  -----  ----  -----  --------',
      'model.layers.0.attn  flash_skip_softmax  2      7     15     0.5333',
      'model.layers.1.attn  xattention          1      9     10     0.1000',
      'total                                    3      16    25     0.3600',
    ].join('\n'));
    assert.equal(filled().table('decode').split('\n').at(-1), 'total                                    1      1     3      0.6667');
    assert.equal(new StatsAggregator().table(), ['module  method  calls  kept  total  sparsity', '------  ------  -----  ----  -----  --------', 'total           0      0     0      0.0000'].join('\n'));
  });
});

describe('formatTable', () => {
  it('pads columns to their widest cell, trims line ends and tolerates short rows', () => {
    assert.equal(formatTable(['a', 'bb'], [['xxx', 'y'], ['z']]), ['a    bb', '---  --', 'xxx  y', 'z'].join('\n'));
  });
});
