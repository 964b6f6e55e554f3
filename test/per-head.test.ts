import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { naiveBlockSparseAttention } from '../src/backends/cpu/naive-attention.js';
import { createModuleMethod, resolveModuleConfig, sparseAttentionConfig } from '../src/config/index.js';
import { loadSparseAttentionConfig, saveSparseAttentionConfig } from '../src/config/json.js';
import { InvalidArgumentError, UnsupportedError } from '../src/core/errors.js';
import { computeScores } from '../src/core/scores.js';
import { HeadTensor } from '../src/core/tensor.js';
import { createSparseMethod } from '../src/methods/index.js';
import { headSlice, kvHead, PerHeadMethod, perHeadValues } from '../src/methods/per-head.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { assertSameMask } from './helpers/masks.js';

interface Shape { name: string; B: number; H: number; Hkv: number; Lq: number; Lk: number; D: number; causal: boolean; layout: 'BHLD' | 'BLHD' }

// Lengths that are no multiple of any block, GQA, causal and not, both layouts, Lq < Lk.
const SHAPES: Shape[] = [
  { name: 'causal, GQA 4:2, batch 2', B: 2, H: 4, Hkv: 2, Lq: 45, Lk: 45, D: 8, causal: true, layout: 'BHLD' },
  { name: 'non-causal, GQA 3:1, BLHD', B: 1, H: 3, Hkv: 1, Lq: 37, Lk: 37, D: 4, causal: false, layout: 'BLHD' },
  { name: 'causal, Lq < Lk, MHA', B: 1, H: 2, Hkv: 2, Lq: 19, Lk: 50, D: 8, causal: true, layout: 'BLHD' },
];

// Small blocks so the masks are sparse at these lengths; the knob values differ per head below.
// std: flash_skip_softmax skips a tile only when its scores are far below the row's maximum.
const METHODS: { method: string; shared: Record<string, unknown>; setting: string; values: number[]; std?: number; causalOnly?: boolean }[] = [
  { method: 'xattention', shared: { threshold: 0.9, stride: 4, blockSize: 8 }, setting: 'threshold', values: [0.5, 0.95, 0.7, 0.99] },
  { method: 'flash_skip_softmax', shared: { br: 8, bc: 8 }, setting: 'threshold', values: [0.3, 1e-3, 0.05, 0.1], std: 2 },
  { method: 'sla', shared: { BLKQ: 8, BLKK: 6, causal: false }, setting: 'topkRatio', values: [0.2, 0.6, 1, 0.4] },
  { method: 'tri_shape', shared: { sinkTokens: 4, localWindow: 9, lastDenseQueries: 3, br: 8, bc: 8 }, setting: 'localWindow', values: [9, 17, 5, 30], causalOnly: true },
];

function inputs(s: Shape, seed: number, std = 1) {
  const opts = { layout: s.layout, std };
  return {
    q: HeadTensor.randn({ batch: s.B, heads: s.H, length: s.Lq, headDim: s.D }, seed, opts),
    k: HeadTensor.randn({ batch: s.B, heads: s.Hkv, length: s.Lk, headDim: s.D }, seed + 1, opts),
    v: HeadTensor.randn({ batch: s.B, heads: s.Hkv, length: s.Lk, headDim: s.D }, seed + 2, opts),
  };
}

function settingsFor(method: string, setting: string, value: number): Record<string, unknown> {
  // flash_skip_softmax's knob is the prefill threshold (its descriptor maps it to both phases).
  return method === 'flash_skip_softmax' ? { [setting]: { prefill: value, decode: 1e-4 } } : { [setting]: value };
}

describe('PerHeadMethod', () => {
  for (const m of METHODS) {
    const shapes = SHAPES.filter((s) => s.causal || !m.causalOnly);
    for (const s of shapes) {
      it(`${m.method}, ${s.name}: every head at one value = the uniform method (mask, output, token mask)`, async () => {
        const { q, k, v } = inputs(s, 11, m.std);
        const value = m.values[0];
        const uniform = createSparseMethod(m.method, { ...m.shared, ...settingsFor(m.method, m.setting, value) });
        const perHead = new PerHeadMethod(m.method, m.shared, { [m.setting]: Array(s.H).fill(value) });
        const want = await sparseAttention(q, k, v, { method: uniform, causal: s.causal });
        const got = await sparseAttention(q, k, v, { method: perHead, causal: s.causal });
        assertSameMask(got.plan.mask, want.plan.mask, 'plan mask');
        assert.equal(got.plan.stats.keptBlocks, want.plan.stats.keptBlocks);
        assert.equal(got.plan.stats.totalBlocks, want.plan.stats.totalBlocks);
        assertTensorsClose(got.output, want.output, TOL.f32, 'output');
        assert.equal(got.output.layout, q.layout);
        const scores = computeScores(q, k, { causal: s.causal });
        if (m.method !== 'sla') {
          assert.deepEqual(perHead.calculateSparsity(scores).mask, uniform.calculateSparsity(scores).mask, 'token mask');
          assert.deepEqual(perHead.applySparsity(scores).data, uniform.applySparsity(scores).data, 'masked scores');
        }
      });
    }
    if (new Set(m.values).size === 1) continue;
    for (const s of shapes) {
      it(`${m.method}, ${s.name}: heads at different values = each head run alone`, async () => {
        const { q, k, v } = inputs(s, 23, m.std);
        const values = m.values.slice(0, s.H);
        const perHead = new PerHeadMethod(m.method, m.shared, { [m.setting]: values });
        const got = await sparseAttention(q, k, v, { method: perHead, causal: s.causal });
        assert.equal(got.plan.mask.heads, s.H);
        let kept = 0;
        for (let h = 0; h < s.H; h++) {
          const alone = createSparseMethod(m.method, { ...m.shared, ...settingsFor(m.method, m.setting, values[h]) });
          const kh = kvHead(h, s.H, s.Hkv);
          const one = await sparseAttention(headSlice(q, h), headSlice(k, kh), headSlice(v, kh), { method: alone, causal: s.causal });
          kept += one.plan.stats.keptBlocks;
          // Each head keeps its own token rule (tri-shape's window), not head 0's.
          assert.deepEqual(got.plan.mask.tokenRuleFor(h), one.plan.mask.tokenRuleFor(0), `token rule of head ${h}`);
          for (let b = 0; b < s.B; b++)
            for (let qb = 0; qb < got.plan.mask.numQueryBlocks; qb++) {
              assert.deepEqual(Array.from(got.plan.mask.keptBlocks(b, h, qb)), Array.from(one.plan.mask.keptBlocks(b, 0, qb)), `head ${h}, batch ${b}, query block ${qb}`);
            }
          assertTensorsClose(headSlice(got.output, h), one.output.toLayout(q.layout), TOL.f32, `output of head ${h}`);
          if (one.plan.blockScores) {
            const per = one.plan.blockScores.length / s.B;
            for (let b = 0; b < s.B; b++) {
              assert.deepEqual(got.plan.blockScores!.subarray((b * s.H + h) * per, (b * s.H + h + 1) * per), one.plan.blockScores.subarray(b * per, (b + 1) * per), `block scores of head ${h}, batch ${b}`);
            }
          }
        }
        assert.equal(got.plan.stats.keptBlocks, kept);
        // The values differ enough that some pair of heads keeps a different number of blocks.
        const perHeadKept = Array.from({ length: s.H }, (_, h) => {
          let n = 0;
          for (let b = 0; b < s.B; b++) for (let qb = 0; qb < got.plan.mask.numQueryBlocks; qb++) n += got.plan.mask.keptBlocks(b, h, qb).length;
          return n;
        });
        assert.ok(new Set(perHeadKept).size > 1, `heads kept ${perHeadKept.join(', ')} blocks: the per-head values made no difference`);
        // The block-sparse kernel on the assembled mask is the output (the backends' oracle chain).
        if (m.method !== 'sla') assertTensorsClose(got.output, naiveBlockSparseAttention(q, k, v, got.plan.mask, { causal: s.causal }).toLayout(q.layout), TOL.f32, 'kernel on the mask');
      });
    }
  }

  it('reports the per-head values (getThresholdInfo, perHeadValues)', () => {
    const m = new PerHeadMethod('xattention', { threshold: 0.9 }, { threshold: [0.8, 0.95] });
    assert.equal(m.name, 'xattention');
    assert.deepEqual(m.getThresholdInfo().per_head, { threshold: [0.8, 0.95] });
    assert.deepEqual(perHeadValues(m, 'threshold'), [0.8, 0.95]);
    assert.equal(perHeadValues(m, 'stride'), undefined);
    assert.equal(perHeadValues(createSparseMethod('xattention'), 'threshold'), undefined);
  });

  it('flash_skip_softmax: per-head values are prefill thresholds; decode stays the shared one, in either ModelOpt form', () => {
    const forms: [Record<string, unknown>, number][] = [
      [{}, 1e-4],
      [{ threshold: { prefill: 1e-3, decode: 1e-5 } }, 1e-5],
      [{ threshold: 2e-3 }, 2e-3],
      [{ thresholds: { prefill: [1e-3], decode: [3e-5] } }, 3e-5],
      [{ thresholds: { prefill: [4e-3] } }, 4e-3],
    ];
    for (const [shared, decode] of forms) {
      const m = new PerHeadMethod('flash_skip_softmax', shared, { threshold: [0.1, 0.2] });
      assert.deepEqual(m.heads.map((h) => h.getThresholdInfo().value), [{ prefill: 0.1, decode }, { prefill: 0.2, decode }], JSON.stringify(shared));
    }
  });

  it('rejects a wrong number of heads at call time, naming the entry and the expected length', () => {
    const m = new PerHeadMethod('xattention', { blockSize: 8 }, { threshold: [0.8, 0.95, 0.9] }, { label: 'sparse_cfg["layer.2"].per_head' });
    const { q, k } = inputs(SHAPES[0], 1);
    assert.throws(() => m.planBlockMask(q, k, { causal: true }), (e: unknown) => e instanceof InvalidArgumentError && /sparse_cfg\["layer\.2"\]\.per_head\.threshold\.length/.test(e.message) && /\(4\)/.test(e.message) && /got 3/.test(e.message));
  });

  it('rejects a setting that is not the knob, values the method rejects, and no values', () => {
    assert.throws(() => new PerHeadMethod('xattention', {}, { stride: [4, 8] }), (e: unknown) => e instanceof InvalidArgumentError && /"threshold"/.test(e.message) && /stride/.test(e.message));
    assert.throws(() => new PerHeadMethod('xattention', {}, { threshold: [0.5, 1.5] }), (e: unknown) => e instanceof InvalidArgumentError && /threshold\[1\] = 1\.5/.test(e.message));
    assert.throws(() => new PerHeadMethod('xattention', {}, { threshold: [] }), InvalidArgumentError);
    assert.throws(() => new PerHeadMethod('xattention', {}, { threshold: [0.5], stride: [4] } as Record<string, number[]>), InvalidArgumentError);
    assert.throws(() => new PerHeadMethod('dense', {}, { threshold: [0.5] }), UnsupportedError);
    assert.throws(() => new PerHeadMethod('flash_skip_softmax', { group_consensus: true }, { threshold: [0.1, 0.2] }), UnsupportedError);
  });

  it('heads with different tri-shape windows: one rule per head, a window past Lk gives that head none', async () => {
    const m = new PerHeadMethod('tri_shape', { sinkTokens: 4, lastDenseQueries: 3, br: 8, bc: 8 }, { localWindow: [9, 60] });
    const { q, k, v } = inputs(SHAPES[2], 3);
    const { mask } = m.planBlockMask(q, k, { causal: true });
    assert.deepEqual(mask.tokenRuleFor(0), { kind: 'trishape', sinkTokens: 4, localWindow: 9, lastDenseQueries: 3 });
    assert.equal(mask.tokenRuleFor(1), undefined, 'Lk = 50 <= window 60: that head is dense, no rule');
    assert.ok(mask.hasTokenRule);
    // A consumer that reads the one shared rule refuses instead of applying head 0's to both.
    assert.throws(() => mask.tokenRule, (e: unknown) => e instanceof UnsupportedError && /tokenRuleFor/.test(e.message));
    const got = await sparseAttention(q, k, v, { method: m, causal: true });
    assertTensorsClose(got.output, naiveBlockSparseAttention(q, k, v, mask, { causal: true }).toLayout(q.layout), TOL.f32, 'kernel on the mask');
  });
});

describe('per_head in a sparse_cfg entry', () => {
  const cfg = sparseAttentionConfig({
    sparse_cfg: {
      '*self_attn': { method: 'xattention', threshold: 0.9, blockSize: 8, stride: 4 },
      'model.layers.2.self_attn': { method: 'xattention', threshold: 0.9, blockSize: 8, stride: 4, per_head: { threshold: [0.5, 0.95, 0.7, 0.99] } },
      default: { enable: false },
    },
  });

  it('builds a PerHeadMethod for the entry with per_head, the plain method elsewhere', async () => {
    const m2 = createModuleMethod(resolveModuleConfig(cfg, 'model.layers.2.self_attn'))!;
    const m1 = createModuleMethod(resolveModuleConfig(cfg, 'model.layers.1.self_attn'))!;
    assert.ok(m2 instanceof PerHeadMethod);
    assert.ok(!(m1 instanceof PerHeadMethod));
    assert.deepEqual(perHeadValues(m2, 'threshold'), [0.5, 0.95, 0.7, 0.99]);
    assert.deepEqual(m2.getThresholdInfo().per_head, { threshold: [0.5, 0.95, 0.7, 0.99] });
    const { q, k, v } = inputs(SHAPES[0], 5);
    const r = await sparseAttention(q, k, v, { method: m2, causal: true });
    assert.equal(r.plan.mask.heads, 4);
  });

  it('saves per_head back exactly as written', () => {
    const json = { sparse_cfg: { 'model.layers.2.self_attn': { method: 'xattention', threshold: 0.9, per_head: { threshold: [0.8, 0.95, 0.9, 0.99] } }, default: { enable: false } }, export_format: null };
    assert.deepEqual(saveSparseAttentionConfig(loadSparseAttentionConfig(JSON.parse(JSON.stringify(json)))), json);
  });

  it('names the entry when the module has another number of heads', () => {
    const m2 = createModuleMethod(resolveModuleConfig(cfg, 'model.layers.2.self_attn'))!;
    const { q, k } = inputs(SHAPES[1], 5);
    assert.throws(() => m2.planBlockMask(q, k, { causal: false }), /sparse_cfg\["model\.layers\.2\.self_attn"\]\.per_head\.threshold\.length must be the module's number of query heads \(3\), got 4/);
  });

  it('rejects malformed per_head when the config is read, and an unknown setting when the method is built', () => {
    for (const bad of [[0.5, 0.9] as unknown, { threshold: [] }, { threshold: ['a'] }, { threshold: [0.5], stride: [4] }, {}]) {
      assert.throws(() => sparseAttentionConfig({ sparse_cfg: { '*attn': { method: 'xattention', per_head: bad as Record<string, number[]> } } }), /per_head/, JSON.stringify(bad));
    }
    const c = sparseAttentionConfig({ sparse_cfg: { '*attn': { method: 'xattention', per_head: { topkRatio: [0.5, 0.9] } } } });
    assert.throws(() => createModuleMethod(resolveModuleConfig(c, 'x.attn')), /sparse_cfg\["\*attn"\]\.per_head setting "topkRatio".*knob of method "xattention" \("threshold"\)/);
  });
});
