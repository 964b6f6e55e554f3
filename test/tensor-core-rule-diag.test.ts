/**
 * The tensor-core attention's token-rule diagnostics (bench/tensor-core-variants.ts --set rulediag) leave
 * out the half they name: 'rule-causal-scores' drops the rule from the per-score test only,
 * 'rule-causal-tiles' from the whole-tile test only. Checked on the generated WGSL (no adapter needed).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type TensorCoreAttentionSpec, tensorCoreAttentionWgsl } from '../src/backends/webgpu/attention/tensor-core-attention.wgsl.js';

const SPEC: TensorCoreAttentionSpec = {
  headDim: 128, causal: true, blocks: 'csr', out: 'f16', subgroups: 4, stage: true, passes: 1, swizzle: 'scores', interleave: true,
  tokenRule: 'trishape', keyTile: 16, prefetch: true, heavyFirst: true, splitFull: true,
};

/** The body of WGSL function `name` (up to the closing brace at the start of a line). */
function fnBody(wgsl: string, name: string): string {
  const start = wgsl.indexOf(`fn ${name}(`);
  assert.ok(start >= 0, `fn ${name} in the kernel`);
  return wgsl.slice(start, wgsl.indexOf('\n}', start));
}

describe('tensor-core attention: token-rule diagnostics', () => {
  it('the default tests the rule per score and per tile', () => {
    const w = tensorCoreAttentionWgsl(SPEC, '');
    assert.match(fnBody(w, 'visible'), /P\.sinkTokens/);
    assert.match(fnBody(w, 'tileFull'), /P\.localWindow/);
  });

  it("'rule-causal-scores' tests causality alone per score and keeps the rule's tile test", () => {
    const w = tensorCoreAttentionWgsl({ ...SPEC, diag: 'rule-causal-scores' }, '');
    assert.doesNotMatch(fnBody(w, 'visible'), /P\.sinkTokens|P\.localWindow|P\.lastDenseQueries/);
    assert.match(fnBody(w, 'visible'), /j > p/);
    assert.match(fnBody(w, 'tileFull'), /P\.localWindow/);
  });

  it('ruleExpression: the per-score test is the hook\'s one expression, no early return', () => {
    const body = fnBody(tensorCoreAttentionWgsl({ ...SPEC, ruleExpression: true }, ''), 'visible');
    assert.doesNotMatch(body, /if \(/);
    assert.match(body, /return \(!CAUSAL \| \(j <= p\)\) & \(.*P\.sinkTokens.*P\.localWindow/);
    assert.throws(() => tensorCoreAttentionWgsl({ ...SPEC, tokenRule: 'none', ruleExpression: true }, ''), /token rule "none" has no tensor-core expression/);
  });

  it('ruleRowwise: tiles outside every window and past the sinks test the row once, not each score', () => {
    const w = tensorCoreAttentionWgsl({ ...SPEC, ruleRowwise: true }, '');
    assert.match(fnBody(w, 'tileRowwise'), /P\.sinkTokens[\s\S]*P\.localWindow <= p0/);
    assert.match(w, /let rowSees = rowSeesAll\(qi\);/);
    assert.match(w, /let rowwise = !full && tileRowwise\(j0, rowBase\);/);
    // Both per-score loops get the rowwise copy, testing the lane's constant.
    assert.equal(w.match(/} else if \(rowwise\) {/g)?.length, 2);
    assert.equal(w.match(/if \(rowSees\) {/g)?.length, 2);
    assert.doesNotMatch(tensorCoreAttentionWgsl(SPEC, ''), /rowwise|rowSees/);
    assert.throws(() => tensorCoreAttentionWgsl({ ...SPEC, ruleRowwise: true, splitFull: false }, ''), /ruleRowwise needs a token rule with rowwise tiles/);
  });

  it("'rule-causal-tiles' keeps the rule per score and classifies tiles by causality alone", () => {
    const w = tensorCoreAttentionWgsl({ ...SPEC, diag: 'rule-causal-tiles' }, '');
    assert.match(fnBody(w, 'visible'), /P\.sinkTokens/);
    assert.doesNotMatch(fnBody(w, 'tileFull'), /P\.sinkTokens|P\.localWindow|P\.lastDenseQueries/);
  });
});
