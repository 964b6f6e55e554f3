/**
 * Dense WebGPU flash attention = the CPU reference, over head dim 64/128, GQA 1/2/4, causal and
 * not, f32 and f16, lengths that are not multiples of the 64-row workgroup, length 1, queries
 * shorter than keys, both layouts, random and structured inputs.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { naiveAttention } from '../src/backends/cpu/naive-attention.js';
import { encodeAttention } from '../src/backends/webgpu/attention/attention-dispatch.js';
import { createOutputTensor, readTensor, uploadArray } from '../src/backends/webgpu/runtime/buffers.js';
import { flashAttentionWebGpu } from '../src/backends/webgpu/attention/webgpu-flash-attention.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { type DType, HeadTensor, type Layout } from '../src/core/tensor.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();

/** (batch, Lq, Lk): odd lengths, length 1, queries right-aligned to longer keys. */
const LENGTHS = [[1, 37, 37], [2, 70, 133], [1, 1, 45], [1, 129, 129], [1, 1, 1], [2, 13, 200]] as const;

interface Case {
  D: number;
  ratio: number;
  causal: boolean;
  dtype: DType;
  batch: number;
  Lq: number;
  Lk: number;
  layout: Layout;
  structured: boolean;
}

function grid(): Case[] {
  const cases: Case[] = [];
  let n = 0;
  for (const D of [64, 128])
    for (const ratio of [1, 2, 4])
      for (const causal of [true, false])
        for (const dtype of ['f32', 'f16'] as const) {
          const [batch, Lq, Lk] = LENGTHS[n % LENGTHS.length];
          cases.push({ D, ratio, causal, dtype, batch, Lq, Lk, layout: n % 2 ? 'BLHD' : 'BHLD', structured: n % 3 === 0 });
          n++;
        }
  return cases;
}

function inputs(c: Case, seed: number): { q: HeadTensor; k: HeadTensor; v: HeadTensor } {
  const heads = c.ratio === 4 ? 4 : 2 * c.ratio;
  const kvHeads = heads / c.ratio;
  let q: HeadTensor, k: HeadTensor, v: HeadTensor;
  if (c.structured) {
    ({ q, k, v } = structuredQKV({ batch: c.batch, heads, kvHeads, length: c.Lk, queryLength: c.Lq, headDim: c.D, seed, layout: c.layout }));
  } else {
    q = HeadTensor.randn({ batch: c.batch, heads, length: c.Lq, headDim: c.D }, seed, { layout: c.layout });
    k = HeadTensor.randn({ batch: c.batch, heads: kvHeads, length: c.Lk, headDim: c.D }, seed + 1, { layout: c.layout === 'BHLD' ? 'BLHD' : 'BHLD' });
    v = HeadTensor.randn({ batch: c.batch, heads: kvHeads, length: c.Lk, headDim: c.D }, seed + 2, { layout: c.layout });
  }
  return { q: q.toDType(c.dtype), k: k.toDType(c.dtype), v: v.toDType(c.dtype) };
}

describe('WebGPU dense flash attention = CPU reference', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  grid().forEach((c, n) => {
    const name = `D=${c.D} GQA ${c.ratio}:1 ${c.causal ? 'causal' : 'non-causal'} ${c.dtype} B=${c.batch} Lq=${c.Lq} Lk=${c.Lk} ${c.layout}${c.structured ? ' structured' : ''}`;
    it(name, async () => {
      const { q, k, v } = inputs(c, 100 + n);
      const out = await flashAttentionWebGpu(gpu.ctx!, q, k, v, { causal: c.causal });
      assert.equal(out.dtype, c.dtype, 'output keeps the input dtype');
      assert.equal(out.layout, q.layout, 'output keeps q\'s layout');
      assertTensorsClose(out.toDType('f32'), flashAttention(q, k, v, { causal: c.causal }), TOL[c.dtype], name);
    });
  });

  it('equals naive attention too (chain of oracles), with a custom scale', async () => {
    const q = HeadTensor.randn({ batch: 1, heads: 4, length: 50, headDim: 64 }, 1);
    const k = HeadTensor.randn({ batch: 1, heads: 2, length: 77, headDim: 64 }, 2);
    const v = HeadTensor.randn({ batch: 1, heads: 2, length: 77, headDim: 64 }, 3);
    const out = await flashAttentionWebGpu(gpu.ctx!, q, k, v, { causal: true, scale: 0.05 });
    assertTensorsClose(out, naiveAttention(q, k, v, { causal: true, scale: 0.05 }), TOL.f32, 'vs naive');
  });

  it('±1e4 logits stay finite and match', async () => {
    const shape = { batch: 1, heads: 1, length: 9, headDim: 64 };
    const q = HeadTensor.fromFunction(shape, (_b, _h, l, d) => (l % 2 ? 1 : -1) * ((d % 4) + 1) * 50);
    const k = HeadTensor.fromFunction(shape, (_b, _h, l, d) => (l % 3 ? 1 : -1) * ((d % 4) + 1) * 10);
    const v = HeadTensor.randn(shape, 3);
    const out = await flashAttentionWebGpu(gpu.ctx!, q, k, v, { causal: true });
    assert.ok(out.toFloat32Array().every(Number.isFinite));
    assertTensorsClose(out, naiveAttention(q, k, v, { causal: true }), TOL.f32, 'large logits');
  });

  it('NaN in an input is reported with its index, not computed', async () => {
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 4, headDim: 64 }, 1);
    (q.data as Float32Array)[70] = NaN;
    await assert.rejects(flashAttentionWebGpu(gpu.ctx!, q, q, q), /q\[0, 0, 1, 6\] \(layout BHLD\) must be a finite number, got NaN/);
  });

  it('reads Q, K, V in place from views with offsets and strides (one buffer, no copies)', async () => {
    // One buffer holds [pad | q (BLHD) | k (BHLD) | v (BHLD)]; the kernel reads each through its view.
    const q = HeadTensor.randn({ batch: 2, heads: 4, length: 21, headDim: 64 }, 5, { layout: 'BLHD' });
    const k = HeadTensor.randn({ batch: 2, heads: 2, length: 30, headDim: 64 }, 6);
    const v = HeadTensor.randn({ batch: 2, heads: 2, length: 30, headDim: 64 }, 7);
    const pad = 12;
    const all = new Float32Array(pad + q.size + k.size + v.size);
    all.set(q.data, pad);
    all.set(k.data, pad + q.size);
    all.set(v.data, pad + q.size + k.size);
    const { device } = gpu.ctx!;
    const buffer = uploadArray(device, all, 'test.qkv');
    const view = (t: HeadTensor, offset: number) => ({ ...t.shape, buffer, dtype: 'f32' as const, offset, strideB: t.strideB, strideH: t.strideH, strideL: t.strideL });
    const o = createOutputTensor(device, { ...q.shape }, 'BHLD', 'f32', 'test.o');
    const encoder = device.createCommandEncoder({ label: 'test.views' });
    await encodeAttention(device, encoder, { q: view(q, pad), k: view(k, pad + q.size), v: view(v, pad + q.size + k.size), o }, { causal: true, scale: 0.125, blocks: { kind: 'all' } });
    device.queue.submit([encoder.finish()]);
    const out = await readTensor(device, o, 'BHLD');
    buffer.destroy();
    o.buffer.destroy();
    assertTensorsClose(out, flashAttention(q, k, v, { causal: true }), TOL.f32, 'views');
  });
});
