import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockMask, type BlockMaskDims, blockCausallyValid } from '../src/core/block-mask.js';
import { Rng } from '../src/core/rng.js';

/** Rows of '0'/'1' characters → a flat [Lq, Lk] token mask. */
function tokens(...rows: string[]): Uint8Array {
  return Uint8Array.from(rows.join('').split('').map(Number));
}

/** A flat token mask back to rows, so a failure prints a readable picture. */
function picture(mask: Uint8Array, Lk: number): string[] {
  const rows: string[] = [];
  for (let i = 0; i < mask.length; i += Lk) rows.push([...mask.subarray(i, i + Lk)].join(''));
  return rows;
}

const dims = (d: Partial<BlockMaskDims>): BlockMaskDims => ({ batch: 1, heads: 1, queryLength: 4, keyLength: 4, blockRows: 2, blockCols: 2, causal: false, ...d });

describe('BlockMask', () => {
  it('expands partial blocks to exactly their tokens (non-causal, Lq 5 × Lk 7, br 2, bc 3)', () => {
    // key blocks: kb0 = keys 0-2, kb1 = 3-5, kb2 = 6 (partial); query blocks: 0-1, 2-3, 4 (partial)
    const m = BlockMask.fromDense(dims({ queryLength: 5, keyLength: 7, blockRows: 2, blockCols: 3 }), [1, 0, 1, 0, 1, 0, 1, 1, 0]);
    assert.deepEqual(picture(m.expand(0, 0), 7), picture(tokens(
      '1110001',
      '1110001',
      '0001110',
      '0001110',
      '1111110',
    ), 7));
    assert.equal(m.keptValidBlocks, 5);
    assert.equal(m.validBlocks, 9);
    assert.equal(m.density, 5 / 9);
    assert.ok(Math.abs(m.sparsity - 4 / 9) < 1e-15);
  });

  it('counts causal validity with queries shorter than keys and partial last blocks', () => {
    // Lq 3, Lk 7: query i sits at key position 4 + i. qb0 = queries 0-1 (positions 4-5), qb1 = query 2 (position 6).
    const d = dims({ queryLength: 3, keyLength: 7, blockRows: 2, blockCols: 3, causal: true });
    const valid = [[0, 0], [0, 1], [1, 0], [1, 1], [1, 2]];
    for (let qb = 0; qb < 2; qb++)
      for (let kb = 0; kb < 3; kb++) assert.equal(blockCausallyValid(d, qb, kb), valid.some(([a, b]) => a === qb && b === kb), `block (${qb}, ${kb})`);
    const full = BlockMask.full(d);
    assert.equal(full.validBlocks, 5);
    assert.equal(full.keptValidBlocks, 5);
    assert.equal(full.density, 1);
    assert.deepEqual(picture(full.expand(0, 0), 7), ['1111100', '1111110', '1111111']);
    // qb0 keeps kb0 and the causally invalid kb2 (computes nothing, counts nothing); qb1 keeps kb2.
    const m = BlockMask.fromDense(d, [1, 0, 1, 0, 0, 1]);
    assert.equal(m.keptValidBlocks, 2);
    assert.equal(m.density, 2 / 5);
    assert.deepEqual(picture(m.expand(0, 0), 7), ['1110000', '1110000', '0000001']);
  });

  it('has nR·(2·nC − nR + 1)/2 valid blocks per head for square causal attention, all blocks otherwise', () => {
    for (const [L, b, B, H] of [[5, 2, 1, 1], [9, 4, 2, 3], [16, 4, 1, 2], [1, 8, 1, 1]]) {
      const n = Math.ceil(L / b);
      const causal = BlockMask.full(dims({ batch: B, heads: H, queryLength: L, keyLength: L, blockRows: b, blockCols: b, causal: true }));
      assert.equal(causal.validBlocks, ((n * (2 * n - n + 1)) / 2) * B * H, `L ${L} b ${b}`);
      const dense = BlockMask.full(dims({ batch: B, heads: H, queryLength: L, keyLength: L, blockRows: b, blockCols: b }));
      assert.equal(dense.validBlocks, n * n * B * H);
    }
    // Decode: the one query sits at the last key and sees every key block.
    assert.equal(BlockMask.full(dims({ queryLength: 1, keyLength: 10, blockRows: 4, blockCols: 4, causal: true })).validBlocks, 3);
  });

  it('applies a token rule inside kept blocks, and visible() agrees with expand()', () => {
    const d = dims({ queryLength: 6, keyLength: 6, blockRows: 3, blockCols: 3, causal: true });
    const rule = { kind: 'trishape', sinkTokens: 1, localWindow: 2, lastDenseQueries: 1 } as const;
    const all = BlockMask.full(d);
    const withRule = BlockMask.fromDense(d, all.toDense(), rule);
    assert.deepEqual(picture(withRule.expand(0, 0), 6), ['100000', '110000', '111000', '101100', '100110', '111111']);
    const diagonal = BlockMask.fromDense(d, [1, 0, 0, 1], rule);
    const expanded = diagonal.expand(0, 0);
    assert.deepEqual(picture(expanded, 6), ['100000', '110000', '111000', '000100', '000110', '000111']);
    for (let i = 0; i < 6; i++) for (let j = 0; j < 6; j++) assert.equal(diagonal.visible(0, 0, i, j), expanded[i * 6 + j] === 1, `(${i}, ${j})`);
  });

  it('round-trips fromDense → toDense over batch and heads, in [B, H, nQB, nKB] order', () => {
    const rng = new Rng(11);
    const d = dims({ batch: 2, heads: 3, queryLength: 7, keyLength: 10, blockRows: 3, blockCols: 4 });
    const dense = Uint8Array.from({ length: 2 * 3 * 3 * 3 }, () => (rng.next() < 0.5 ? 1 : 0));
    const m = BlockMask.fromDense(d, dense);
    assert.deepEqual(m.toDense(), dense);
    assert.equal(m.colIdx.length, dense.reduce((a, x) => a + x, 0));
    for (let b = 0; b < 2; b++)
      for (let h = 0; h < 3; h++)
        for (let qb = 0; qb < 3; qb++)
          for (let kb = 0; kb < 3; kb++) assert.equal(m.isKept(b, h, qb, kb), dense[((b * 3 + h) * 3 + qb) * 3 + kb] === 1);
    const again = BlockMask.fromPredicate(d, (b, h, qb, kb) => m.isKept(b, h, qb, kb));
    assert.deepEqual(again.rowPtr, m.rowPtr);
    assert.deepEqual(again.colIdx, m.colIdx);
    assert.deepEqual(BlockMask.fromDense(d, [...dense].map((x) => x === 1)).toDense(), dense);
    // Expansion of one (b, h) only uses that head's row.
    const h1 = BlockMask.fromPredicate(dims({ heads: 2 }), (_b, h) => h === 1);
    assert.ok(h1.expand(0, 0).every((x) => x === 0));
    assert.ok(h1.expand(0, 1).every((x) => x === 1));
  });

  it('rejects invalid CSR with the offending entry named', () => {
    const d = dims({ queryLength: 6, keyLength: 6 }); // 3 query blocks, 3 key blocks
    const make = (rowPtr: number[], colIdx: number[]) => () => new BlockMask(d, Int32Array.from(rowPtr), Int32Array.from(colIdx));
    assert.throws(make([0, 1, 2], [0, 1]), /rowPtr\.length must be 4 \(B·H·nQB \+ 1\), got 3/);
    assert.throws(make([1, 1, 2, 2], [0, 1]), /rowPtr must be to start at 0 and end at colIdx\.length \(2\), got \[1,2\]/);
    assert.throws(make([0, 1, 2, 3], [0, 1]), /rowPtr must be to start at 0 and end at colIdx\.length \(2\), got \[0,3\]/);
    assert.throws(make([0, 2, 1, 3], [0, 1, 2]), /rowPtr\[2\] must be >= rowPtr\[1\] \(2\): row offsets must not decrease, got 1/);
    assert.throws(make([0, 1, 2, 3], [0, 3, 1]), /colIdx\[1\] must be strictly ascending key-block indices in \[0, 3\) within each row, got 3/);
    assert.throws(make([0, 1, 2, 3], [0, -1, 1]), /colIdx\[1\] must be .*, got -1/);
    assert.throws(make([0, 2, 2, 2], [1, 0]), /colIdx\[1\] must be strictly ascending .*, got 0/);
    assert.throws(make([0, 2, 2, 2], [1, 1]), /colIdx\[1\] must be strictly ascending .*, got 1/);
    assert.doesNotThrow(make([0, 0, 3, 3], [0, 1, 2]));
    assert.throws(() => BlockMask.fromDense(d, [1, 0, 1]), /dense\.length must be 9 \(B·H·nQB·nKB\), got 3/);
    assert.throws(() => BlockMask.full(dims({ blockRows: 0 })), /blockRows \(br\) must be an integer >= 1, got 0/);
    assert.throws(() => BlockMask.full(dims({ keyLength: 2.5 })), /keyLength must be an integer >= 1, got 2\.5/);
  });
});
