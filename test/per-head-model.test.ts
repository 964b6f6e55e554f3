/** Per-head configs on a model: capture → calibratePerHead → sparsify, and the exports that cannot hold per-head values. */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { calibratePerHead, type CapturedHeads } from '../src/calibration/per-head.js';
import { methodSettingIssues } from '../src/config/method-check.js';
import { sparseAttentionConfig } from '../src/config/sparse-config.js';
import { UnsupportedError } from '../src/core/errors.js';
import { HeadTensor } from '../src/core/tensor.js';
import { PerHeadMethod, perHeadValues } from '../src/methods/per-head.js';
import { exportSparseAttentionConfig } from '../src/model/hf-export.js';
import { LlamaModel, prefill } from '../src/model/llama.js';
import { sparsify } from '../src/model/sparsify.js';
import { TINY_CONFIG, writeTinyCheckpoint } from './helpers/tiny-llama.js';

const dir = writeTinyCheckpoint({ ...TINY_CONFIG, num_hidden_layers: 2 });
after(() => rmSync(dir, { recursive: true, force: true }));
const tokens = Array.from({ length: 29 }, (_, i) => (i * 7 + 3) % TINY_CONFIG.vocab_size);
const BASE = { blockSize: 4, stride: 2 };

/** Q/K/V of every attention call of one dense prefill (copies: k and v are views of the cache). */
async function capture(model: LlamaModel): Promise<CapturedHeads[]> {
  const out: CapturedHeads[] = [];
  const copy = (t: HeadTensor) => new HeadTensor(t.shape, t.data.slice(), t.layout);
  model.onAttention = (module, q, k, v) => out.push({ module: module.name, q: copy(q), k: copy(k), v: copy(v) });
  try {
    await prefill(model, tokens, model.newCache(tokens.length), tokens.length, 'all');
  } finally {
    model.onAttention = undefined;
  }
  return out;
}

describe('per-head configs on a Llama model', () => {
  test('captured calls calibrate per head; sparsify runs the result with its per-head values', async () => {
    const model = LlamaModel.load(dir);
    const captured = await capture(model);
    assert.equal(captured.length, 2);
    const r = calibratePerHead(captured, 'xattention', { target: 0.3, baseSettings: BASE, grid: 6 });
    assert.equal(r.heads.length, 2 * TINY_CONFIG.num_attention_heads);
    const result = sparsify(model, r.config) as Awaited<ReturnType<typeof sparsify>>;
    for (const m of result.modules) {
      const want = r.heads.filter((h) => h.module === m.name).map((h) => h.value);
      assert.deepEqual(m.perHead, { threshold: want });
      const method = model.attention.find((a) => a.name === m.name)!.method;
      assert.ok(method instanceof PerHeadMethod);
      assert.deepEqual(perHeadValues(method, 'threshold'), want);
    }
    await prefill(model, tokens, model.newCache(tokens.length), tokens.length, 'all');
    const planned = result.stats.summary();
    assert.equal(planned.length, 2);
    // The planned sparsity of the run is the calibrated one (same Q/K: layer 0 sees the same input, layer 1 a sparse layer 0's output).
    const l0 = planned.find((s) => s.module === 'model.layers.0.self_attn')!;
    const cal0 = r.heads.filter((h) => h.module === 'model.layers.0.self_attn');
    assert.ok(Math.abs(l0.sparsity - cal0.reduce((a, h) => a + h.sparsity, 0) / cal0.length) < 1e-9, `layer 0 ran ${l0.sparsity}`);
  });

  test('the HF export refuses per-head values instead of dropping them', () => {
    const model = LlamaModel.load(dir);
    sparsify(model, { sparse_cfg: { '*self_attn': { method: 'xattention', ...BASE, per_head: { threshold: [0.8, 0.9] } } } });
    assert.throws(() => exportSparseAttentionConfig(model), (e: unknown) => e instanceof UnsupportedError && /model\.layers\.0\.self_attn: per_head values \(threshold\) have no place/.test(e.message));
  });

  test('a calibration request does not overwrite per-head values', () => {
    const model = LlamaModel.load(dir);
    const cfg = { sparse_cfg: { calibration: { target_sparse_ratio: { prefill: 0.5, decode: 0 } }, '*self_attn': { method: 'xattention', ...BASE, per_head: { threshold: [0.8, 0.9] } } } };
    assert.throws(() => sparsify(model, cfg, { forwardLoop: () => {} }), (e: unknown) => e instanceof UnsupportedError && /per_head values it would replace/.test(e.message));
  });

  test('sparse-attn config\'s method check reports a per_head setting that is not the knob, and bad values', () => {
    const cfg = sparseAttentionConfig({ sparse_cfg: { a: { method: 'xattention', per_head: { stride: [4, 8] } }, b: { method: 'xattention', per_head: { threshold: [0.5, 2] } }, c: { method: 'xattention', per_head: { threshold: [0.5, 1] } } } });
    const issues = methodSettingIssues(cfg);
    assert.deepEqual(issues.map((i) => i.path), ['sparse_cfg["a"].per_head', 'sparse_cfg["b"].per_head']);
    assert.match(issues[0].message, /knob of method "xattention" \("threshold"\)/);
    assert.match(issues[1].message, /threshold\[1\] = 2/);
  });
});
