import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type PrefillWorkload, prefillCommand, runPrefillWorkload } from '../src/cli/commands/prefill.js';

const small: PrefillWorkload = {
  mode: 'trishape', lengths: [260, 90], decodeTokens: 3, chunk: 48, blockSize: 16, numKvBlocks: 0, layers: 1, heads: 2, kvHeads: 1,
  headDim: 8, lastDense: 40, startTokens: 16, recentTokens: 32, threshold: 0.8, xattentionBlockSize: 16, xattentionStride: 4, seed: 2, check: true,
};

describe('sparse-attn prefill', () => {
  it('trishape: the long sequence skips blocks and differs from dense; a short one does not', async () => {
    const r = await runPrefillWorkload(small);
    assert.equal(r.rows.length, 2);
    assert.ok(r.rows[0].skippedBlocks > 0 && r.rows[0].sparsity > 0);
    assert.ok(r.rows[0].maxAbsErrorVsDense! > 1e-4);
    assert.equal(r.rows[1].skippedBlocks, 0);
    assert.ok(r.rows[1].maxAbsErrorVsDense! < 1e-5);
    assert.equal(r.rows[0].decode, 3);
  });

  it('dense with a small cache: exact, with hold-back or preemption recorded', async () => {
    const r = await runPrefillWorkload({ ...small, mode: 'dense', lengths: [200, 200], numKvBlocks: 16 });
    for (const row of r.rows) assert.ok(row.maxAbsErrorVsDense! < 1e-5);
    assert.ok(r.rows.some((row) => row.heldBack + row.preemptions > 0));
  });

  it('rejects a bad mode and block size naming the option', async () => {
    await assert.rejects(prefillCommand.run(['--mode', 'sla']), /--mode must be one of trishape, xattention, dense, got "sla"/);
    await assert.rejects(prefillCommand.run(['--block-size', '64']), /--block-size must be 16 or 32, got 64/);
  });
});
