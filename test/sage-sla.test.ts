import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { naiveBlockSparseAttention } from '../src/backends/cpu/naive-attention.js';
import { describeAttention } from '../src/core/attention-shape.js';
import { roundToF16 } from '../src/core/f16.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { HeadTensor } from '../src/core/tensor.js';
import { createSparseMethod, sparseMethods } from '../src/methods/index.js';
import { quantizeInt8PerBlock, SageSlaMethod } from '../src/methods/sage-sla/sage-sla.js';
import { bhldF32, SlaMethod } from '../src/methods/sla/sla.js';
import { assertClose, assertTensorsClose, TOL } from './helpers/compare.js';

interface Shape { name: string; H: number; Hkv: number; Lq: number; Lk: number; D: number; causal: boolean; BLKQ: number; BLKK: number }

const SHAPES: Shape[] = [
  { name: 'non-causal, partial blocks', H: 2, Hkv: 2, Lq: 45, Lk: 45, D: 64, causal: false, BLKQ: 16, BLKK: 8 },
  { name: 'causal, GQA 4:2', H: 4, Hkv: 2, Lq: 37, Lk: 37, D: 64, causal: true, BLKQ: 8, BLKK: 16 },
  { name: 'causal, q shorter than k, D = 128', H: 2, Hkv: 1, Lq: 9, Lk: 30, D: 128, causal: true, BLKQ: 4, BLKK: 8 },
  { name: 'decode (Lq = 1)', H: 2, Hkv: 1, Lq: 1, Lk: 21, D: 64, causal: true, BLKQ: 128, BLKK: 4 },
];

function inputs(s: Shape, seed: number) {
  return {
    q: HeadTensor.randn({ batch: 1, heads: s.H, length: s.Lq, headDim: s.D }, seed, { layout: 'BLHD' }),
    k: HeadTensor.randn({ batch: 1, heads: s.Hkv, length: s.Lk, headDim: s.D }, seed + 1, { layout: 'BLHD' }),
    v: HeadTensor.randn({ batch: 1, heads: s.Hkv, length: s.Lk, headDim: s.D }, seed + 2, { layout: 'BLHD' }),
  };
}

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) (num += (a[i] - b[i]) ** 2), (den += b[i] ** 2);
  return Math.sqrt(num / den);
}

const rms = (x: Float32Array) => Math.sqrt(x.reduce((u, t) => u + t * t, 0) / x.length);
const mean = (x: Float32Array) => x.reduce((u, t) => u + t, 0) / x.length;

describe('SageSLA', () => {
  it('is registered as sage_sla v1 with topkRatio 0.5 and requires head size 64 or 128', () => {
    assert.ok(sparseMethods.has('sage_sla', 'v1'));
    const m = createSparseMethod('sage_sla') as SageSlaMethod;
    assert.equal(m.name, 'sage_sla');
    assert.equal(m.settings.topkRatio, 0.5);
    assert.deepEqual(m.getThresholdInfo(), { type: 'static', value: 0.5, topkRatio: 0.5 });
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 8, headDim: 32 }, 1);
    assert.throws(() => m.attention(q, q, q, {}), /head size \(q\.headDim\) must be 64 or 128 for sage_sla .*, got 32/);
    assert.throws(() => m.planBlockMask(q, q, {}), /must be 64 or 128 for sage_sla/);
    assert.throws(() => createSparseMethod('sage_sla', { topkRatio: 2 }), /sage_sla\.topkRatio must be a number in \(0, 1\], got 2/);
  });

  it('int8 per block: one scale per block of rows = max|x·factor| / 127 + 1e-7, values in [-127, 127], error <= scale / 2', () => {
    const heads = 2;
    const length = 21;
    const D = 8;
    const blk = 8;
    const x = HeadTensor.randn({ batch: 1, heads, length, headDim: D }, 5, { std: 2 }).toFloat32Array();
    const factor = 0.3;
    const { int8, scale } = quantizeInt8PerBlock(x, heads, length, D, blk, factor, null);
    assert.equal(scale.length, heads * Math.ceil(length / blk));
    for (let h = 0; h < heads; h++)
      for (let nb = 0; nb < 3; nb++) {
        const rows = Array.from({ length: Math.min(blk, length - nb * blk) }, (_, r) => h * length + nb * blk + r);
        const amax = Math.max(...rows.flatMap((r) => Array.from(x.subarray(r * D, (r + 1) * D), (t) => Math.abs(t * factor))));
        const s = scale[h * 3 + nb];
        assert.ok(Math.abs(s - (amax / 127 + 1e-7)) <= 1e-6 * s, `block (${h}, ${nb}) scale ${s} vs ${amax / 127}`);
        let hit127 = false;
        for (const r of rows)
          for (let d = 0; d < D; d++) {
            const qv = int8[r * D + d];
            hit127 ||= Math.abs(qv) === 127;
            assert.ok(Math.abs(qv * s - x[r * D + d] * factor) <= s / 2 + 1e-6, `element (${r}, ${d})`);
          }
        assert.ok(hit127, `block (${h}, ${nb}) should use the full int8 range`);
      }
  });

  for (const s of SHAPES) {
    it(`sparse part = block-sparse attention on the dequantized Q, smoothed K and f16 V: ${s.name}`, () => {
      const { q, k, v } = inputs(s, 10);
      const m = new SageSlaMethod({ BLKQ: s.BLKQ, BLKK: s.BLKK });
      const p = describeAttention(q, k, v, { causal: s.causal });
      const ops = m.quantize(p, bhldF32(q), bhldF32(k), bhldF32(v));
      const nQB = Math.ceil(s.Lq / s.BLKQ);
      const nKB = Math.ceil(s.Lk / s.BLKK);
      // Undo the folded softmax scale · log2 e: logits of (qHat, kHat) at p.scale are then equal.
      const qHat = HeadTensor.fromFunction(q.shape, (_b, h, l, d) => ops.qInt8[(h * s.Lq + l) * s.D + d] * ops.qScale[h * nQB + Math.floor(l / s.BLKQ)] / (p.scale * Math.LOG2E));
      const kHat = HeadTensor.fromFunction(k.shape, (_b, h, l, d) => ops.kInt8[(h * s.Lk + l) * s.D + d] * ops.kScale[h * nKB + Math.floor(l / s.BLKK)]);
      const vHat = HeadTensor.fromFunction(v.shape, (_b, h, l, d) => roundToF16(v.row(0, h, l)[d]));
      const { output, plan } = m.attention(q, k, v, { causal: s.causal });
      assertTensorsClose(output, naiveBlockSparseAttention(qHat, kHat, vHat, plan.mask, { causal: s.causal }), TOL.f32, 'dequantized oracle');
      for (let h = 0; h < s.Hkv; h++)
        for (let d = 0; d < s.D; d++) {
          let sum = 0;
          for (let l = 0; l < s.Lk; l++) sum += k.row(0, h, l)[d];
          assert.ok(Math.abs(ops.kMean[h * s.D + d] - sum / s.Lk) < 1e-6, 'K is smoothed by its mean over the sequence');
        }
    });
  }

  // The error of int8 Q/K is logit noise: each element is off by at most half a step, roughly
  // uniformly, so a logit scale·q·k moves by about δ = scale·sqrt(D·(rms(q)²·stepK² + rms(k̃)²·stepQ²)/12).
  // Perturbing the logits by noise of std δ changes the softmax output by about δ relative to it
  // (measured ratios 0.4 to 1.05 on random, structured and offset-K inputs), so we require
  // relL2 <= 2δ + 2⁻¹¹ (the last term: f16 V). δ comes from the test's own smoothing and steps.
  // (Smoothing itself is checked by the dequantized-oracle tests above.)
  const cases = [
    { name: 'random N(0, 1)', make: (seed: number) => inputs({ ...SHAPES[1], Lq: 300, Lk: 300, BLKQ: 128, BLKK: 64 }, seed) },
    { name: 'structured (sink, band, retrieval)', make: (seed: number) => structuredQKV({ heads: 2, kvHeads: 1, length: 300, headDim: 64, seed }) },
    {
      name: 'keys with a large common offset',
      make: (seed: number) => ({
        q: HeadTensor.randn({ batch: 1, heads: 2, length: 200, headDim: 64 }, seed, { std: 3 }),
        k: HeadTensor.fromFunction({ batch: 1, heads: 1, length: 200, headDim: 64 }, (_b, _h, l, d) => 3 * Math.sin(l * d + seed) + 20),
        v: HeadTensor.randn({ batch: 1, heads: 1, length: 200, headDim: 64 }, seed + 2),
      }),
    },
  ];
  for (const c of cases) {
    it(`error against SLA on the same blocks stays within the int8 logit-noise bound: ${c.name}`, () => {
      for (const causal of [false, true]) {
        const { q, k, v } = c.make(3);
        const sage = new SageSlaMethod();
        const exact = new SlaMethod({ topkRatio: 0.5 }).attention(q, k, v, { causal });
        const quant = sage.attention(q, k, v, { causal });
        assert.deepEqual(quant.plan.mask.toDense(), exact.plan.mask.toDense(), 'both select the same blocks from unquantized inputs');
        const p = describeAttention(q, k, v, { causal });
        const qf = bhldF32(q);
        const kf = bhldF32(k);
        // Steps from the test's own smoothing (so a kernel that skipped it could not widen the bound).
        const at = (i: number) => Math.floor(i / (p.keyLength * p.headDim)) * p.headDim + (i % p.headDim);
        const kMean = new Float64Array(p.kvHeads * p.headDim);
        kf.forEach((x, i) => (kMean[at(i)] += x / p.keyLength));
        const kSmooth = kf.map((x, i) => x - kMean[at(i)]);
        const stepQ = mean(quantizeInt8PerBlock(qf, p.heads, p.queryLength, p.headDim, 128, 1, null).scale);
        const stepK = mean(quantizeInt8PerBlock(kSmooth, p.kvHeads, p.keyLength, p.headDim, 64, 1, null).scale);
        const delta = p.scale * Math.sqrt((p.headDim * (rms(qf) ** 2 * stepK ** 2 + rms(kSmooth) ** 2 * stepQ ** 2)) / 12);
        const err = relL2(quant.output.toFloat32Array(), exact.output.toFloat32Array());
        assert.ok(err > 0, 'quantization must change the result');
        assert.ok(err <= 2 * delta + 2 ** -11, `${causal ? 'causal' : 'non-causal'}: relL2 ${err.toExponential(2)} > bound ${(2 * delta + 2 ** -11).toExponential(2)}`);
      }
    });
  }

  it('the linear part and projection are SLA\'s, on unquantized inputs', () => {
    const s = SHAPES[1];
    const { q, k, v } = inputs(s, 20);
    const settings = { BLKQ: s.BLKQ, BLKK: s.BLKK, topkRatio: 0.3, featureMap: 'elu' };
    const sageOs = new SageSlaMethod(settings).attention(q, k, v, { causal: true }).output.toFloat32Array();
    const sage = new SageSlaMethod({ ...settings, proj: 'identity' }).attention(q, k, v, { causal: true }).output.toFloat32Array();
    const slaOs = new SlaMethod(settings).attention(q, k, v, { causal: true }).output.toFloat32Array();
    const sla = new SlaMethod({ ...settings, proj: 'identity' }).attention(q, k, v, { causal: true }).output.toFloat32Array();
    assertClose(sage.map((x, i) => x - sageOs[i]), sla.map((x, i) => x - slaOs[i]), { atol: 2e-5, rtol: 1e-4 }, 'Ol');
  });
});
