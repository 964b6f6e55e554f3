/**
 * bytes-llama-dev prefilled in chunks and decoded through the paged-KV engine: with sparsity off it
 * reproduces the transformers golden logits and greedy continuation (same tolerance and reasoning
 * as model-golden.test.ts); with TRISHAPE it skips blocks and still runs to completion.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { generateWithEngine } from '../src/model/engine-runner.js';
import { generateGreedy, LlamaModel } from '../src/model/llama.js';
import { assertClose } from './helpers/compare.js';

const FIXTURES = new URL('../../test/fixtures/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('golden-bytes-llama-dev.json', FIXTURES), 'utf8')) as {
  cases: { name: string; tokens: number[]; positions: number[]; logits: number[][]; greedy: number[] }[];
};
const model = LlamaModel.load(new URL('bytes-llama-dev', FIXTURES).pathname);
const V = model.config.vocabSize;

test('engine, sparsity off: chunked prefill (chunks of ≤ 24 over 16-token KV blocks) + decode match transformers', async () => {
  const c = golden.cases.find((x) => x.name === 'py64')!;
  const other = golden.cases.find((x) => x.name === 'py256')!.tokens.slice(0, 40);
  // Two sequences share the steps, so the scheduler interleaves their chunks.
  const r = await generateWithEngine(model, [c.tokens, other], c.greedy.length, { maxNumBatchedTokens: 24, numKvBlocks: 32, kvBlockSize: 16 });
  c.positions.forEach((p, i) => assertClose(r.logits[0].subarray(p * V, (p + 1) * V), c.logits[i], { atol: 2e-4, rtol: 1e-5 }, `position ${p}`));
  assert.deepEqual(r.generated[0], c.greedy);
  assert.ok(r.stats[0].prefillChunks > 1, `prefilled in ${r.stats[0].prefillChunks} chunks`);
  assert.deepEqual(r.generated[1], await generateGreedy(model, other, { maxNewTokens: c.greedy.length }));
});

test('engine, TRISHAPE: blocks are skipped in prefill, decode completes', async () => {
  const c = golden.cases.find((x) => x.name === 'py256')!;
  const sa = { mode: 'TRISHAPE' as const, numLastDenseTokensInPrefill: 16, numRetainedStartTokensInCache: 16, numRetainedRecentTokensInCache: 48 };
  const r = await generateWithEngine(model, [c.tokens], 4, { maxNumBatchedTokens: 32, numKvBlocks: 32, kvBlockSize: 16, useSparseAttention: true, sparseAttentionConfig: sa });
  assert.ok(r.stats[0].skippedBlocks > 0 && r.stats[0].prefillSparsity > 0, `skipped ${r.stats[0].skippedBlocks} blocks`);
  assert.equal(r.generated[0].length, 4);
  // The first chunk sees everything it could (nothing to skip yet): its logits are the dense ones.
  assertClose(r.logits[0].subarray(0, V), c.logits[0], { atol: 2e-4, rtol: 1e-5 }, 'position 0');
  // Position 200 (golden index 2) was prefilled with skipped blocks: its logits move off dense.
  const late = r.logits[0].subarray(200 * V, 201 * V);
  const moved = Math.max(...late.map((x, i) => Math.abs(x - c.logits[2][i])));
  assert.ok(moved > 1e-3, `position 200 moved by ${moved}`);
});
