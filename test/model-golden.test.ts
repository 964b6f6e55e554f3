/**
 * The CPU runner reproduces Hugging Face transformers on bytes-llama-dev: logits at fixed
 * positions and the 16-token greedy continuation, from test/fixtures/golden-bytes-llama-dev.json
 * (made by bench/golden/make_golden.py: HF LlamaForCausalLM, float32, eager, on CPU).
 *
 * Tolerance atol 2e-4 + rtol 1e-5: both sides are f32 but sum in different orders (BLAS blocks vs
 * our 4×4 tiles, f64 softmax in the flash loop), an error that grows with sqrt(terms) through
 * 4 layers of 512–1536-term sums; measured 1.7e-5 at worst on logits up to |16| (2026-11-23), so
 * the bound leaves ~10× room while a wrong RoPE convention, norm or GQA mapping moves logits by >0.1.
 * Greedy tokens must match exactly: the smallest top-2 logit margin along the reference
 * continuations is 0.62, four orders above the logit error.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { generateGreedy, LlamaModel, prefill } from '../src/model/llama.js';
import { assertClose } from './helpers/compare.js';

interface GoldenCase {
  name: string;
  tokens: number[];
  positions: number[];
  logits: number[][];
  greedy: number[];
  greedyTop2Margins: number[];
}

const FIXTURES = new URL('../../test/fixtures/', import.meta.url);
const golden = JSON.parse(readFileSync(new URL('golden-bytes-llama-dev.json', FIXTURES), 'utf8')) as { cases: GoldenCase[] };
const model = LlamaModel.load(new URL('bytes-llama-dev', FIXTURES).pathname);
const TOLERANCE = { atol: 2e-4, rtol: 1e-5 };
const V = model.config.vocabSize;

function checkLogits(c: GoldenCase, logits: Float32Array, label: string): void {
  c.positions.forEach((p, i) => assertClose(logits.subarray(p * V, (p + 1) * V), c.logits[i], TOLERANCE, `${label} position ${p}`));
}

test('py64: logits at 6 positions and the greedy continuation match transformers', async () => {
  const c = golden.cases.find((x) => x.name === 'py64')!;
  const logits = await prefill(model, c.tokens, model.newCache(c.tokens.length), c.tokens.length, 'all');
  checkLogits(c, logits, 'py64');
  assert.deepEqual(await generateGreedy(model, c.tokens, { maxNewTokens: c.greedy.length }), c.greedy);
});

test('py256: logits up to position 255 match transformers when prefilled in chunks of 100', async () => {
  const c = golden.cases.find((x) => x.name === 'py256')!;
  const logits = await prefill(model, c.tokens, model.newCache(c.tokens.length), 100, 'all');
  checkLogits(c, logits, 'py256 chunked');
});
