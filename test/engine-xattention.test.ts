/**
 * XATTENTION mode of the engine: each chunk gets OpenVINO's per-chunk threshold (dense tail,
 * dense decode, sparse final chunk) and its output equals block-sparse attention with the
 * XAttention mask estimated from that chunk's queries against every cached key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { naiveAttention, naiveBlockSparseAttention } from '../src/backends/cpu/naive-attention.js';
import { Engine } from '../src/engine/engine.js';
import { syntheticModel } from '../src/engine/synthetic-model.js';
import { createSparseMethod } from '../src/methods/index.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';

const model = syntheticModel({ numLayers: 2, heads: 2, kvHeads: 1, headDim: 16, seed: 3 });
const tau = 0.6;
const lastDense = 40;
const xa = { blockSize: 16, stride: 4 };

/** OpenVINO's rule, written out here independently of src/engine. */
function expectedThreshold(promptLength: number, start: number, length: number): number | null {
  if (start >= promptLength) return null;
  const after = start + length;
  return after < promptLength && promptLength - after < lastDense ? null : tau;
}

describe('engine, XATTENTION', () => {
  it('per-chunk thresholds follow the OpenVINO rule and every chunk equals attention under its estimated mask', async () => {
    const engine = new Engine({
      model,
      config: {
        maxNumBatchedTokens: 48, numKvBlocks: 40, kvBlockSize: 16, useSparseAttention: true,
        sparseAttentionConfig: { mode: 'XATTENTION', xattentionThreshold: tau, xattentionBlockSize: xa.blockSize, xattentionStride: xa.stride, numLastDenseTokensInPrefill: lastDense },
      },
    });
    const requests = [{ id: 0, promptLength: 230, decodeTokens: 3 }, { id: 1, promptLength: 110, decodeTokens: 2 }];
    for (const r of requests) engine.addRequest(r);
    await engine.run(1000);
    assert.ok(engine.done);
    const method = createSparseMethod('xattention', { threshold: tau, ...xa });
    for (const r of requests) {
      const st = engine.stats(r.id);
      const total = r.promptLength + r.decodeTokens;
      assert.equal(st.skippedBlocks, 0, 'XATTENTION never drops logical blocks');
      assert.ok(st.prefillSparsity > 0, `sequence ${r.id} is sparse somewhere`);
      const prefillKinds = st.chunks.filter((c) => c.phase === 'prefill').map((c) => c.threshold);
      assert.ok(prefillKinds.includes(null) && prefillKinds.includes(tau), `sequence ${r.id} has dense-tail and sparse prompt chunks`);
      assert.ok(st.chunks.filter((c) => c.phase === 'decode').every((c) => c.threshold === null), 'decode is dense');
      const last = st.chunks.filter((c) => c.phase === 'prefill').at(-1)!;
      assert.equal(last.start + last.length, r.promptLength);
      assert.equal(last.threshold, tau, 'the final prompt chunk is sparse');
      for (let layer = 0; layer < 2; layer++) {
        const out = engine.output(r.id, layer);
        const { q, k, v } = model.qkv(layer, r.id, 0, total);
        const dense = naiveAttention(q, k, v, { causal: true });
        for (const c of st.chunks) {
          assert.equal(c.threshold, expectedThreshold(r.promptLength, c.start, c.length), `seq ${r.id} chunk ${c.start}+${c.length}`);
          const end = c.start + c.length;
          const got = out.sliceLength(c.start, end);
          if (c.threshold === null) {
            assertTensorsClose(got, dense.sliceLength(c.start, end), TOL.f32, `dense chunk ${c.start}`);
            continue;
          }
          const qc = q.sliceLength(c.start, end);
          const kc = k.sliceLength(0, end);
          const mask = method.planBlockMask(qc, kc, { causal: true }).mask;
          assertTensorsClose(got, naiveBlockSparseAttention(qc, kc, v.sliceLength(0, end), mask, { causal: true }), TOL.f32, `sparse chunk ${c.start}`);
        }
      }
    }
  });
});
