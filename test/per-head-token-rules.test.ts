/**
 * One token rule per head (per-head tri-shape windows): BlockMask carries them, the CPU kernels
 * apply head h's rule to head h, and the WebGPU dispatcher's split into runs of heads is well formed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { naiveBlockSparseAttention } from '../src/backends/cpu/naive-attention.js';
import { headRulePieces } from '../src/backends/webgpu/attention/head-rule-split.js';
import { BlockMask } from '../src/core/block-mask.js';
import { InvalidArgumentError, UnsupportedError } from '../src/core/errors.js';
import { tokenRuleVisible } from '../src/core/token-rule.js';
import { assembleHeadPlans } from '../src/model/gpu-per-head.js';
import type { BlockPlan } from '../src/methods/method.js';
import { triShapeBlockMask } from '../src/methods/tri-shape/tri-shape.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { caseInputs, caseMask, HEAD_RULE_CASES, headRuleOracle, tri } from './helpers/head-rules.js';

const dims = { batch: 1, heads: 3, queryLength: 20, keyLength: 20, blockRows: 8, blockCols: 8, causal: true };

describe('BlockMask with one token rule per head', () => {
  it('keeps each head its rule; equal rules collapse to one; the shared-rule getter refuses differing ones', () => {
    const rules = [tri(2, 4, 1), undefined, tri(2, 9, 1)];
    const m = BlockMask.full(dims);
    const per = new BlockMask(dims, m.rowPtr, m.colIdx, rules);
    assert.deepEqual([0, 1, 2].map((h) => per.tokenRuleFor(h)), rules);
    assert.ok(per.hasTokenRule);
    assert.throws(() => per.tokenRule, (e: unknown) => e instanceof UnsupportedError && /tokenRuleFor/.test(e.message));
    const same = new BlockMask(dims, m.rowPtr, m.colIdx, [tri(2, 4, 1), tri(2, 4, 1), tri(2, 4, 1)]);
    assert.equal(same.headTokenRules, undefined);
    assert.deepEqual(same.tokenRule, tri(2, 4, 1));
    const none = new BlockMask(dims, m.rowPtr, m.colIdx, [undefined, undefined, undefined]);
    assert.equal(none.tokenRule, undefined);
    assert.equal(none.hasTokenRule, false);
    // The single-rule form is unchanged.
    assert.deepEqual(new BlockMask(dims, m.rowPtr, m.colIdx, tri(1, 3, 0)).tokenRuleFor(2), tri(1, 3, 0));
  });

  it('rejects a rule array of the wrong length, naming the expected one', () => {
    const m = BlockMask.full(dims);
    assert.throws(() => new BlockMask(dims, m.rowPtr, m.colIdx, [tri(2, 4, 1), tri(2, 5, 1)]), (e: unknown) => e instanceof InvalidArgumentError && /length/.test(e.message) && /3/.test(e.message));
    assert.throws(() => BlockMask.fromPredicate(dims, () => true, []), InvalidArgumentError);
  });

  it('rejects rules of different kinds across heads', () => {
    const m = BlockMask.full(dims);
    const odd = { ...tri(2, 4, 1), kind: 'other' } as unknown as ReturnType<typeof tri>;
    assert.throws(() => new BlockMask(dims, m.rowPtr, m.colIdx, [tri(2, 4, 1), undefined, odd]), (e: unknown) => e instanceof InvalidArgumentError && /tokenRule\[2\]\.kind/.test(e.message));
  });

  it('visible() and expand() apply head h\'s rule to head h', () => {
    const rules = [tri(0, 2, 0), tri(0, 6, 0), undefined];
    const mask = BlockMask.fromPredicate(dims, () => true, rules);
    for (let h = 0; h < 3; h++) {
      const t = mask.expand(0, h);
      for (let i = 0; i < 20; i++)
        for (let j = 0; j < 20; j++) {
          const want = j <= i && (!rules[h] || tokenRuleVisible(rules[h]!, i, j, 20, 0));
          assert.equal(t[i * 20 + j] === 1, want, `expand head ${h} (${i}, ${j})`);
          assert.equal(mask.visible(0, h, i, j), want, `visible head ${h} (${i}, ${j})`);
        }
    }
  });
});

describe('CPU block-sparse attention with per-head token rules = dense with each head\'s rule', () => {
  for (const c of HEAD_RULE_CASES) {
    it(c.name, () => {
      const { q, k, v } = caseInputs(c, 31);
      const { mask, kept } = caseMask(c, 7);
      const want = headRuleOracle(c, q, k, v, kept);
      assertTensorsClose(flashAttention(q, k, v, { causal: c.causal, mask }), want, TOL.f32, 'flash');
      assertTensorsClose(naiveBlockSparseAttention(q, k, v, mask, { causal: c.causal }), want, TOL.f32, 'naive block-sparse');
      // The rules matter here: head 0's rule for every head gives another output.
      if (c.Lq > 1) {
        const one = new BlockMask(mask.dims, mask.rowPtr, mask.colIdx, c.rules.find((r) => r));
        assert.throws(() => assertTensorsClose(flashAttention(q, k, v, { causal: c.causal, mask: one }), want, TOL.f32, 'one rule'), /one rule/);
      }
    });
  }
});

describe('WebGPU split of per-head rules into runs of heads', () => {
  const A = tri(4, 9, 3);
  const B = tri(4, 17, 3);
  it('MHA: runs of equal rules', () => {
    assert.deepEqual(headRulePieces([A, A, B, B, A], 5, 5), [
      { h0: 0, h1: 2, kv0: 0, kvHeads: 2, rule: A }, { h0: 2, h1: 4, kv0: 2, kvHeads: 2, rule: B }, { h0: 4, h1: 5, kv0: 4, kvHeads: 1, rule: A },
    ]);
  });
  it('GQA: a run cut inside a group reads one KV head; whole groups merge', () => {
    // groups of 3: [0 1 2] [3 4 5] [6 7 8]
    assert.deepEqual(headRulePieces([A, A, B, B, B, B, B, B, undefined], 9, 3), [
      { h0: 0, h1: 2, kv0: 0, kvHeads: 1, rule: A }, { h0: 2, h1: 3, kv0: 0, kvHeads: 1, rule: B },
      { h0: 3, h1: 6, kv0: 1, kvHeads: 1, rule: B }, { h0: 6, h1: 8, kv0: 2, kvHeads: 1, rule: B }, { h0: 8, h1: 9, kv0: 2, kvHeads: 1, rule: undefined },
    ]);
    // groups of 2: whole groups with one rule merge into one piece over their KV heads
    assert.deepEqual(headRulePieces([A, A, B, B, B, B], 6, 3), [
      { h0: 0, h1: 2, kv0: 0, kvHeads: 1, rule: A }, { h0: 2, h1: 6, kv0: 1, kvHeads: 2, rule: B },
    ]);
    // groups of 3: the B run starts inside the first group
    assert.deepEqual(headRulePieces([A, A, B, B, B, B], 6, 2), [
      { h0: 0, h1: 2, kv0: 0, kvHeads: 1, rule: A }, { h0: 2, h1: 3, kv0: 0, kvHeads: 1, rule: B }, { h0: 3, h1: 6, kv0: 1, kvHeads: 1, rule: B },
    ]);
  });
  it('every piece covers its heads once and keeps the GQA mapping', () => {
    for (const c of HEAD_RULE_CASES) {
      const pieces = headRulePieces(c.rules, c.H, c.Hkv);
      const g = c.H / c.Hkv;
      let next = 0;
      for (const p of pieces) {
        assert.equal(p.h0, next, c.name);
        next = p.h1;
        const n = p.h1 - p.h0;
        assert.equal(n % p.kvHeads, 0, c.name);
        for (let h = p.h0; h < p.h1; h++) {
          assert.deepEqual(p.rule, c.rules[h], `${c.name}: head ${h}`);
          assert.equal(p.kv0 + Math.floor((h - p.h0) / (n / p.kvHeads)), Math.floor(h / g), `${c.name}: KV head of ${h}`);
        }
      }
      assert.equal(next, c.H);
    }
  });
});

describe('assembleHeadPlans (GPU model runner, per-head methods)', () => {
  it('keeps each head\'s token rule', () => {
    const one = { batch: 1, heads: 1, queryLength: 40, keyLength: 40, blockRows: 8, blockCols: 8 };
    const windows = [9, 17, 60];
    const plans: BlockPlan[] = windows.map((w) => ({ mask: triShapeBlockMask(one, { sinkTokens: 4, localWindow: w, lastDenseQueries: 2 }), stats: { method: 'tri_shape', keptBlocks: 0, totalBlocks: 0, sparsity: 0, phase: 'prefill' } }));
    const plan = assembleHeadPlans('tri_shape', plans);
    assert.deepEqual(plan.mask.tokenRuleFor(0), tri(4, 9, 2));
    assert.deepEqual(plan.mask.tokenRuleFor(1), tri(4, 17, 2));
    assert.equal(plan.mask.tokenRuleFor(2), undefined, 'window 60 > Lk 40: dense, no rule');
    for (let h = 0; h < 3; h++) assert.deepEqual(Array.from(plan.mask.expand(0, h)), Array.from(plans[h].mask.expand(0, 0)), `token mask of head ${h}`);
  });
});
