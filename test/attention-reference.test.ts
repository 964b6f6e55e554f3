import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockMask } from '../src/core/block-mask.js';
import { HeadTensor } from '../src/core/tensor.js';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { naiveAttention, naiveBlockSparseAttention } from '../src/backends/cpu/naive-attention.js';
import { Rng } from '../src/core/rng.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';

const shapes = [
  { name: 'MHA causal odd lengths', H: 2, Hkv: 2, Lq: 37, Lk: 37, D: 16, causal: true, br: 8, bc: 16 },
  { name: 'GQA 4:1 non-causal', H: 4, Hkv: 1, Lq: 19, Lk: 45, D: 8, causal: false, br: 16, bc: 8 },
  { name: 'GQA 2:1 q shorter than k, causal', H: 4, Hkv: 2, Lq: 10, Lk: 33, D: 8, causal: true, br: 4, bc: 8 },
  { name: 'length 1 (decode)', H: 2, Hkv: 1, Lq: 1, Lk: 29, D: 8, causal: true, br: 16, bc: 16 },
  { name: 'length 1 both', H: 1, Hkv: 1, Lq: 1, Lk: 1, D: 4, causal: true, br: 16, bc: 16 },
];

describe('CPU reference attention', () => {
  for (const s of shapes) {
    it(`flash = naive, and full block mask = dense: ${s.name}`, () => {
      const q = HeadTensor.randn({ batch: 2, heads: s.H, length: s.Lq, headDim: s.D }, 1);
      const k = HeadTensor.randn({ batch: 2, heads: s.Hkv, length: s.Lk, headDim: s.D }, 2, { layout: 'BLHD' });
      const v = HeadTensor.randn({ batch: 2, heads: s.Hkv, length: s.Lk, headDim: s.D }, 3);
      const dense = naiveAttention(q, k, v, { causal: s.causal });
      assertTensorsClose(flashAttention(q, k, v, { causal: s.causal, br: s.br, bc: s.bc }), dense, TOL.f32, 'flash vs naive');
      const full = BlockMask.full({ batch: 2, heads: s.H, queryLength: s.Lq, keyLength: s.Lk, blockRows: s.br, blockCols: s.bc, causal: s.causal });
      assertTensorsClose(naiveBlockSparseAttention(q, k, v, full, { causal: s.causal }), dense, TOL.f32, 'all blocks kept vs dense');
    });

    it(`flash block-sparse = dense with the expanded mask: ${s.name}`, () => {
      const q = HeadTensor.randn({ batch: 2, heads: s.H, length: s.Lq, headDim: s.D }, 4);
      const k = HeadTensor.randn({ batch: 2, heads: s.Hkv, length: s.Lk, headDim: s.D }, 5);
      const v = HeadTensor.randn({ batch: 2, heads: s.Hkv, length: s.Lk, headDim: s.D }, 6);
      const rng = new Rng(7);
      const mask = BlockMask.fromPredicate(
        { batch: 2, heads: s.H, queryLength: s.Lq, keyLength: s.Lk, blockRows: s.br, blockCols: s.bc, causal: s.causal },
        () => rng.next() < 0.5,
      );
      const expected = naiveAttention(q, k, v, {
        causal: s.causal,
        visible: (b, h, i, j) => mask.expand(b, h)[i * s.Lk + j] === 1,
      });
      assertTensorsClose(flashAttention(q, k, v, { causal: s.causal, mask }), expected, TOL.f32, 'flash sparse');
    });
  }

  it('fully masked rows give zeros, never NaN', () => {
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 8, headDim: 4 }, 1);
    const k = HeadTensor.randn({ batch: 1, heads: 1, length: 8, headDim: 4 }, 2);
    const mask = BlockMask.fromDense({ batch: 1, heads: 1, queryLength: 8, keyLength: 8, blockRows: 4, blockCols: 4, causal: false }, [0, 0, 1, 1]);
    for (const out of [flashAttention(q, k, k, { mask }), naiveBlockSparseAttention(q, k, k, mask)]) {
      const f = out.toFloat32Array();
      for (let i = 0; i < 16; i++) assert.equal(f[i], 0, `row ${i >> 2} should be zero`);
      assert.ok(f.every((x) => Number.isFinite(x)));
    }
  });

  it('±1e4 logits stay finite and match', () => {
    const q = HeadTensor.fromFunction({ batch: 1, heads: 1, length: 9, headDim: 4 }, (_b, _h, l, d) => (l % 2 ? 1 : -1) * (d + 1) * 50);
    const k = HeadTensor.fromFunction({ batch: 1, heads: 1, length: 9, headDim: 4 }, (_b, _h, l, d) => (l % 3 ? 1 : -1) * (d + 1) * 10);
    const v = HeadTensor.randn({ batch: 1, heads: 1, length: 9, headDim: 4 }, 3);
    const dense = naiveAttention(q, k, v, { causal: true, scale: 1 });
    assert.ok(dense.toFloat32Array().every(Number.isFinite));
    assertTensorsClose(flashAttention(q, k, v, { causal: true, scale: 1, br: 4, bc: 2 }), dense, TOL.f32, '1e4 logits');
  });

  it('rejects NaN input with the tensor and index named', () => {
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 3, headDim: 4 }, 1);
    (q.data as Float32Array)[5] = NaN;
    assert.throws(() => flashAttention(q, q, q), /q\[0, 0, 1, 1\].*must be a finite number, got NaN/);
    assert.throws(() => naiveAttention(q, q, q), /must be a finite number, got NaN/);
  });

  it('rejects KV heads that do not divide query heads', () => {
    const q = HeadTensor.randn({ batch: 1, heads: 3, length: 3, headDim: 4 }, 1);
    const k = HeadTensor.randn({ batch: 1, heads: 2, length: 3, headDim: 4 }, 1);
    assert.throws(() => naiveAttention(q, k, k), /k\.heads \(KV heads\) must be a divisor of q\.heads \(3\)/);
  });
});
