/** Checkpoint loading (single, sharded, f16/bf16/f32, errors) and the runner's KV-cache paths on tiny synthetic models. */
import assert from 'node:assert/strict';
import { rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadLlamaCheckpoint } from '../src/model/checkpoint.js';
import { createSparseMethod } from '../src/methods/index.js';
import { argmax, LlamaModel, prefill } from '../src/model/llama.js';
import { type CapturedAttention, capturedPlanOptions } from '../src/model/sparsity-search.js';
import { linear, linearReference } from '../src/model/ops.js';
import { Rng } from '../src/core/rng.js';
import { assertClose, TOL } from './helpers/compare.js';
import { TINY_CONFIG, tinyTensors, writeTinyCheckpoint } from './helpers/tiny-llama.js';

describe('loadLlamaCheckpoint', () => {
  test('a sharded checkpoint loads the same weights as a single file', () => {
    const single = writeTinyCheckpoint(TINY_CONFIG);
    const sharded = writeTinyCheckpoint(TINY_CONFIG, { shards: 3 });
    const a = loadLlamaCheckpoint(single).weights;
    const b = loadLlamaCheckpoint(sharded).weights;
    assert.deepEqual(b.layers[1].k.weight, a.layers[1].k.weight);
    assert.deepEqual(b.lmHead.weight, a.lmHead.weight);
    assert.deepEqual(b.embed, tinyTensors(TINY_CONFIG)['model.embed_tokens.weight'].data);
    for (const d of [single, sharded]) rmSync(d, { recursive: true });
  });

  for (const [dtype, rel] of [['F16', 2 ** -11], ['BF16', 2 ** -8]] as const) {
    test(`${dtype} weights are converted to f32 within ${dtype} rounding`, () => {
      const dir = writeTinyCheckpoint(TINY_CONFIG, { dtype, shards: 2 });
      const got = loadLlamaCheckpoint(dir).weights.layers[0].gate.weight;
      const want = tinyTensors(TINY_CONFIG)['model.layers.0.mlp.gate_proj.weight'].data;
      assertClose(got, want, { atol: 1e-6, rtol: rel }, dtype);
      assert.ok(got.some((x, i) => x !== want[i]), 'values were rounded, so the check is not vacuous');
      rmSync(dir, { recursive: true });
    });
  }

  test('a missing shard is named', () => {
    const dir = writeTinyCheckpoint(TINY_CONFIG, { shards: 2 });
    unlinkSync(join(dir, 'model-00002-of-00002.safetensors'));
    assert.throws(() => loadLlamaCheckpoint(dir), /shard model-00002-of-00002\.safetensors \(named in model\.safetensors\.index\.json\) is missing/);
    rmSync(dir, { recursive: true });
  });

  test('a tensor whose shape disagrees with config.json is named with both shapes', () => {
    const dir = writeTinyCheckpoint({ ...TINY_CONFIG, intermediate_size: 12 }, {
      edit: (t) => { t['model.layers.1.mlp.up_proj.weight'] = { shape: [10, 8], data: new Float32Array(80) }; },
    });
    assert.throws(() => loadLlamaCheckpoint(dir), /"model\.layers\.1\.mlp\.up_proj\.weight" has shape \[10,8\], but config\.json implies \[12,8\]/);
    rmSync(dir, { recursive: true });
  });

  test('a missing tensor is named', () => {
    const dir = writeTinyCheckpoint(TINY_CONFIG, { edit: (t) => { delete t['model.norm.weight']; } });
    assert.throws(() => loadLlamaCheckpoint(dir), /tensor "model\.norm\.weight" is missing/);
    rmSync(dir, { recursive: true });
  });

  test('an unsupported architecture is refused before any weight is read', () => {
    const dir = writeTinyCheckpoint({ ...TINY_CONFIG, model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] });
    assert.throws(() => loadLlamaCheckpoint(dir), /unsupported architecture: model_type "gpt2", architectures \["GPT2LMHeadModel"\]/);
    rmSync(dir, { recursive: true });
  });

  test('rope_scaling and non-silu activations are refused', () => {
    for (const [extra, re] of [[{ rope_scaling: { rope_type: 'llama3', factor: 8 } }, /rope_scaling/], [{ hidden_act: 'gelu' }, /hidden_act "gelu"/]] as const) {
      const dir = writeTinyCheckpoint({ ...TINY_CONFIG, ...extra });
      assert.throws(() => loadLlamaCheckpoint(dir), re);
      rmSync(dir, { recursive: true });
    }
  });

  test('attention_bias and mlp_bias load biases, which change the output', async () => {
    const plain = writeTinyCheckpoint(TINY_CONFIG);
    const biased = writeTinyCheckpoint({ ...TINY_CONFIG, attention_bias: true, mlp_bias: true });
    const w = loadLlamaCheckpoint(biased).weights;
    assert.equal(w.layers[0].q.bias?.length, 8);
    assert.equal(w.layers[1].down.bias?.length, 8);
    const run = async (dir: string) => { const m = LlamaModel.load(dir); return (await m.forward([1, 2, 3], m.newCache(3))).logits; };
    assert.notDeepEqual(await run(biased), await run(plain));
    for (const d of [plain, biased]) rmSync(d, { recursive: true });
  });
});

describe('LlamaModel on a tiny checkpoint', () => {
  const dir = writeTinyCheckpoint(TINY_CONFIG);
  const model = LlamaModel.load(dir);
  rmSync(dir, { recursive: true });
  const tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];

  test('chunked prefill gives the logits of a whole prefill, chunks of 1 (decode steps) included', async () => {
    const whole = await prefill(model, tokens, model.newCache(tokens.length), tokens.length, 'all');
    for (const chunk of [1, 3, 4, 10]) {
      const chunked = await prefill(model, tokens, model.newCache(tokens.length), chunk, 'all');
      assertClose(chunked, whole, TOL.f32, `chunk ${chunk}`);
    }
  });

  test('tri-shape: a chunked prefill plans the prompt as one call (its last dense rows are the prompt\'s)', async () => {
    // 2 sinks, a window of 4, the last 3 rows dense, 4×4 blocks: most rows see a fraction of the keys.
    const tri = new LlamaModel(model.config, model.weights);
    for (const a of tri.attention) a.method = createSparseMethod('tri_shape', { sinkTokens: 2, localWindow: 4, lastDenseQueries: 3, br: 4, bc: 4 });
    const whole = await prefill(tri, tokens, tri.newCache(tokens.length), tokens.length, 'all');
    // 3: the tail spans two chunks ([6, 9) holds row 8); 4: the last chunk [8, 11) is the tail, planned dense; 5: [10, 11) one row.
    for (const chunk of [3, 4, 5]) {
      const chunked = await prefill(tri, tokens, tri.newCache(tokens.length), chunk, 'all');
      assertClose(chunked, whole, TOL.f32, `chunk ${chunk}`);
    }
    // Each chunk as a whole prompt (the behaviour before tokensAfter): every chunk's last rows are dense,
    // which differs, so the comparison above can tell.
    const cache = tri.newCache(tokens.length);
    const parts: Float32Array[] = [];
    for (let s = 0; s < tokens.length; s += 4) parts.push((await tri.forward(tokens.slice(s, s + 4), cache, { logits: 'all' })).logits);
    const perChunk = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    parts.reduce((o, p) => (perChunk.set(p, o), o + p.length), 0);
    assert.ok(Math.max(...perChunk.map((x, i) => Math.abs(x - whole[i]))) > 1e-3, 'per-chunk dense rows must change the logits here');
    await assert.rejects(tri.forward([1], tri.newCache(1), { tokensAfter: -1 }), /tokensAfter must be an integer/);
  });

  test('onAttention tells where a call sits in its prompt, and a captured chunk plans as it ran', async () => {
    const tri = new LlamaModel(model.config, model.weights);
    const settings = { sinkTokens: 2, localWindow: 4, lastDenseQueries: 3, br: 4, bc: 4 };
    for (const a of tri.attention) a.method = createSparseMethod('tri_shape', settings);
    const seen: CapturedAttention[] = [];
    const rules: string[] = [];
    const ruleOf = (plan: { mask: { tokenRuleFor(h: number): unknown } }) => JSON.stringify(plan.mask.tokenRuleFor(0) ?? 'dense');
    tri.onAttention = (m, q, k, v, place) => { if (m.layer === 0) seen.push({ module: m.name, q, k, v, ...place }); };
    tri.onPlan = (m, plan) => { if (m.layer === 0) rules.push(ruleOf(plan)); };
    await prefill(tri, tokens, tri.newCache(tokens.length), 4, 'last');
    assert.deepEqual(seen.map((c) => c.promptRowsAfter), [7, 3, 0]);
    // The knob searches plan the captured chunks as the model ran them: no dense rows in the first two,
    // the last wholly in the prompt's dense tail (planned dense); each chunk as a whole prompt differs.
    const m = createSparseMethod('tri_shape', settings);
    assert.deepEqual(seen.map((c) => ruleOf(m.planBlockMask(c.q, c.k, capturedPlanOptions(c)))), rules);
    assert.equal(rules[2], '"dense"');
    assert.notDeepEqual(seen.map((c) => ruleOf(m.planBlockMask(c.q, c.k, { causal: true }))), rules);
    // Without tokensAfter (a whole prompt per call) nothing is said.
    seen.length = 0;
    await tri.forward([1, 2, 3], tri.newCache(3));
    assert.equal(seen[0].promptRowsAfter, undefined);
  });

  test('the last-row logits equal the last row of all logits; length 1 works', async () => {
    const all = await prefill(model, tokens, model.newCache(tokens.length), tokens.length, 'all');
    const last = (await model.forward(tokens, model.newCache(tokens.length))).logits;
    assertClose(last, all.subarray(all.length - 16), TOL.f32);
    const one = (await model.forward([7], model.newCache(1))).logits;
    assert.equal(one.length, 16);
    assert.ok(argmax(one, 16) >= 0);
  });

  test('token ids out of range and a full cache are reported', async () => {
    await assert.rejects(model.forward([16], model.newCache(4)), /tokens\[0\] must be an integer token id in \[0, 16\), got 16/);
    await assert.rejects(model.forward([1, 2, 3], model.newCache(2)), /KV cache position must be at most the cache capacity \(2\)/);
  });
});

test('linear (4×4 tiled) equals its naive twin on awkward sizes', () => {
  const rng = new Rng(7);
  for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [4, 4, 4], [9, 37, 33], [130, 70, 64]]) {
    const x = rng.fillNormal(new Float32Array(m * k));
    const w = rng.fillNormal(new Float32Array(n * k));
    const b = rng.fillNormal(new Float32Array(n));
    assertClose(linear(x, m, w, n, k, b), linearReference(x, m, w, n, k, b), TOL.f32, `${m}x${n}x${k}`);
    assertClose(linear(x, m, w, n, k), linearReference(x, m, w, n, k), TOL.f32, `${m}x${n}x${k} no bias`);
  }
});
