/** sparsify: pattern resolution, per-layer exceptions, settings reaching the method, statistics per module. */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, test } from 'node:test';
import { describeAttention } from '../src/core/attention-shape.js';
import { BlockMask } from '../src/core/block-mask.js';
import { statsFromMask } from '../src/core/stats.js';
import type { HeadTensor } from '../src/core/tensor.js';
import { DenseMethod } from '../src/methods/dense/dense.js';
import { registerSparseMethod } from '../src/methods/index.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../src/methods/method.js';
import type { Scores } from '../src/core/scores.js';
import { blockSizeSettings } from '../src/methods/settings.js';
import { LlamaModel, prefill } from '../src/model/llama.js';
import { desparsify, sparsify } from '../src/model/sparsify.js';
import { assertClose, TOL } from './helpers/compare.js';
import { TINY_CONFIG, writeTinyCheckpoint } from './helpers/tiny-llama.js';

/** Keeps key block 0 and the diagonal block: a known, non-trivial pattern for these tests. */
class SinkDiagonalMethod implements SparseAttentionMethod {
  static readonly description = 'test: sink block + diagonal block';
  readonly name = 'test_sink_diagonal';
  readonly version = 'v1';
  readonly br: number;
  readonly bc: number;
  private readonly dense = new DenseMethod();
  constructor(settings: Record<string, unknown> = {}) {
    ({ br: this.br, bc: this.bc } = blockSizeSettings(this.name, settings, { br: 2, bc: 2 }));
  }
  calculateSparsity(scores: Scores) { return this.dense.calculateSparsity(scores); }
  applySparsity(scores: Scores, mask?: Uint8Array) { return this.dense.applySparsity(scores, mask); }
  getThresholdInfo() { return this.dense.getThresholdInfo(); }
  planBlockMask(q: HeadTensor, k: HeadTensor, opts: PlanOptions): BlockPlan {
    const p = describeAttention(q, k, k, opts);
    const dims = { batch: 1, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, blockRows: this.br, blockCols: this.bc, causal: true };
    const mask = BlockMask.fromPredicate(dims, (_b, _h, qb, kb) => kb === 0 || kb === Math.floor((p.queryOffset + qb * this.br) / this.bc));
    return { mask, stats: { ...statsFromMask(this.name, mask), phase: opts.phase ?? 'prefill' } };
  }
}
registerSparseMethod('test_sink_diagonal')(SinkDiagonalMethod);

describe('sparsify on a tiny model', () => {
  const dir = writeTinyCheckpoint({ ...TINY_CONFIG, num_hidden_layers: 3 });
  const model = LlamaModel.load(dir);
  rmSync(dir, { recursive: true });
  const tokens = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
  const config = {
    sparse_cfg: {
      '*self_attn*': { method: 'test_sink_diagonal', br: 2, bc: 2 },
      'model.layers.0.self_attn': { enable: false },
      default: { enable: false },
    },
  };

  test('patterns: "?" and exact names, modules no entry matches stay dense', () => {
    const { modules } = sparsify(model, { sparse_cfg: { 'model.layers.?.self_attn': { method: 'test_sink_diagonal' }, 'model.layers.2.self_attn': { method: 'dense' } } });
    assert.deepEqual(modules.map((m) => [m.method, m.matchedBy]), [
      ['test_sink_diagonal', '"model.layers.?.self_attn"'], ['test_sink_diagonal', '"model.layers.?.self_attn"'], ['dense', '"model.layers.2.self_attn"'],
    ]);
    assert.deepEqual(sparsify(model, { sparse_cfg: { 'lm_head': { method: 'test_sink_diagonal' } } }).modules.map((m) => m.enabled), [false, false, false]);
    desparsify(model);
  });

  test('the first layer stays dense, the others get the method with their settings; stats per module', async () => {
    const dense = await prefill(model, tokens, model.newCache(tokens.length), tokens.length, 'all');
    const { modules, stats } = sparsify(model, config);
    assert.deepEqual(modules.map((m) => [m.name, m.enabled, m.method]), [
      ['model.layers.0.self_attn', false, 'dense'],
      ['model.layers.1.self_attn', true, 'test_sink_diagonal'],
      ['model.layers.2.self_attn', true, 'test_sink_diagonal'],
    ]);
    assert.deepEqual(modules[1].settings, { br: 2, bc: 2 });
    const sparse = await prefill(model, tokens, model.newCache(tokens.length), tokens.length, 'all');
    const rows = stats.summary();
    assert.deepEqual(rows.map((r) => r.module), modules.map((m) => m.name));
    assert.equal(rows[0].sparsity, 0);
    // 11 tokens in blocks of 2: 6 query blocks, 21 causally valid blocks per head, 11 kept (sink + diagonal, once on row 0).
    assert.equal(rows[1].totalBlocks, 21 * 2);
    assert.equal(rows[1].keptBlocks, 11 * 2);
    assert.match(stats.table(), /model\.layers\.2\.self_attn\s+test_sink_diagonal\s+1\s+22\s+42\s+0\.4762/);
    // Layer 0 is dense, so the first position (which sees only itself) is unchanged; later ones differ.
    assertClose(sparse.subarray(0, 16), dense.subarray(0, 16), TOL.f32, 'position 0');
    assert.ok(Math.max(...sparse.subarray(160).map((x, i) => Math.abs(x - dense[160 + i]))) > 1e-4, 'sparsity changed the last position');
    desparsify(model);
    assertClose(await prefill(model, tokens, model.newCache(tokens.length), tokens.length, 'all'), dense, TOL.f32, 'after desparsify');
  });

  test('every-block-kept sparsify equals dense; unknown methods and backends are reported', async () => {
    const dense = await prefill(model, tokens, model.newCache(tokens.length), tokens.length, 'all');
    sparsify(model, { sparse_cfg: { '*': { method: 'dense', br: 3, bc: 5 } } });
    assertClose(await prefill(model, tokens, model.newCache(tokens.length), 4, 'all'), dense, TOL.f32, 'dense via sparsify, chunked');
    assert.throws(() => sparsify(model, { sparse_cfg: { '*': { method: 'no_such_method' } } }), /sparse_cfg\["\*"\]\.method must be a registered sparse method.*got "no_such_method"/);
    assert.throws(() => sparsify(model, { sparse_cfg: { '*': { method: 'dense', backend: 'webgpu' } } }), /model\.layers\.0\.self_attn: backend "webgpu" was asked for by sparse_cfg\["\*"\]; pass it in sparsify's options\.backends/);
    desparsify(model);
  });
});
