/**
 * Per-head token rules on WebGPU (encodeAttention's split into runs of heads, head-rule-split.ts) =
 * the CPU flash loop with the same mask = dense attention with each head's rule applied elementwise.
 * Outputs start as NaN, so a head no sub-dispatch writes cannot pass. The tensor-core kernel takes
 * the same split (webgpu-tensor-core.test.ts, on adapters with subgroup matrices).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { encodeAttention, maskTokenRules } from '../src/backends/webgpu/attention/attention-dispatch.js';
import { attentionDispatch, attentionSpecFor } from '../src/backends/webgpu/attention/attention-dispatch.js';
import { pagedAttentionWebGpu } from '../src/backends/webgpu/attention/block-sparse-attention.js';
import { denseStrides, type GpuTensorView, readTensor, uploadArray, uploadTensor } from '../src/backends/webgpu/runtime/buffers.js';
import { BufferUsage } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { BlockMask } from '../src/core/block-mask.js';
import { InvalidArgumentError, UnsupportedError } from '../src/core/errors.js';
import { HeadTensor } from '../src/core/tensor.js';
import { PerHeadMethod } from '../src/methods/per-head.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { caseInputs, caseMask, HEAD_RULE_CASES, type HeadRuleCase, headRuleOracle, tri } from './helpers/head-rules.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
after(() => gpu.release());

/** An output view over a buffer filled with NaN. */
function poisonedOutput(device: GPUDevice, like: HeadTensor, label: string): GpuTensorView {
  const data = new Float32Array(like.data.length).fill(NaN);
  return { ...like.shape, buffer: uploadArray(device, data, label, BufferUsage.COPY_SRC), dtype: 'f32', offset: 0, ...denseStrides(like.shape, like.layout) };
}

/** Runs the mask's call through encodeAttention (portable kernel) and reads the output back. */
async function runOnGpu(c: HeadRuleCase, q: HeadTensor, k: HeadTensor, v: HeadTensor, mask: BlockMask, rowPtrUsage: number = BufferUsage.COPY_SRC): Promise<HeadTensor> {
  const device = gpu.ctx!.device;
  const views = { q: uploadTensor(device, q, 't.q'), k: uploadTensor(device, k, 't.k'), v: uploadTensor(device, v, 't.v'), o: poisonedOutput(device, HeadTensor.zeros({ ...q.shape, headDim: v.headDim }, q.layout), 't.o') };
  const rowPtr = uploadArray(device, mask.rowPtr, 't.rowPtr', rowPtrUsage);
  const colIdx = uploadArray(device, mask.colIdx, 't.colIdx');
  const made = [...Object.values(views).map((t) => t.buffer), rowPtr, colIdx];
  try {
    const encoder = device.createCommandEncoder();
    made.push(...(await encodeAttention(device, encoder, views, {
      causal: c.causal, scale: 1 / Math.sqrt(c.D), kernel: 'portable',
      blocks: { kind: 'csr', rowPtr, colIdx, blockRows: mask.blockRows, blockCols: mask.blockCols }, ...maskTokenRules(mask),
    })));
    device.queue.submit([encoder.finish()]);
    return await readTensor(device, views.o, q.layout);
  } finally {
    for (const b of made) b.destroy();
  }
}

describe('WebGPU attention with one token rule per head = CPU', { skip: gpu.skip }, () => {
  for (const c of HEAD_RULE_CASES) {
    it(c.name, async () => {
      const { q, k, v } = caseInputs(c, 41);
      const { mask, kept } = caseMask(c, 5);
      const got = await runOnGpu(c, q, k, v, mask);
      assertTensorsClose(got, flashAttention(q, k, v, { causal: c.causal, mask }), TOL.f32, 'GPU vs CPU flash');
      assertTensorsClose(got, headRuleOracle(c, q, k, v, kept), TOL.f32, 'GPU vs dense oracle');
    });
  }

  it('paged KV, batch 2 (each entry its own block-table row), GQA runs inside groups', async () => {
    const c = HEAD_RULE_CASES[0];
    const [pageSize, Lk] = [16, 75];
    const pagesPer = Math.ceil(Lk / pageSize);
    const numPages = 2 * pagesPer + 3;
    const { q, k, v } = caseInputs(c, 51);
    const { mask } = caseMask(c, 9);
    // Page p of entry b at a scrambled place of a shared cache [numPages, Hkv, pageSize, D].
    const table = Int32Array.from({ length: 2 * pagesPer }, (_, i) => (i * 7 + 3) % numPages);
    const cache = (t: HeadTensor) => HeadTensor.fromFunction({ batch: numPages, heads: c.Hkv, length: pageSize, headDim: c.D }, (page, h, l, d) => {
      const i = table.indexOf(page);
      if (i < 0) return 100; // pages of no entry: a read of one shows
      const [b, n] = [Math.floor(i / pagesPer), i % pagesPer];
      const j = n * pageSize + l;
      return j < Lk ? t.row(b, h, j)[d] : 0;
    });
    const got = await pagedAttentionWebGpu(gpu.ctx!, q, cache(k), cache(v), { keyLength: Lk, blockTable: table, tableStride: pagesPer, causal: true, mask });
    assertTensorsClose(got, flashAttention(q, k, v, { causal: true, mask }), TOL.f32, 'paged GPU vs CPU');
  });

  it('PerHeadMethod tri-shape windows through sparseAttention on the webgpu backend = the CPU backend', async () => {
    const m = new PerHeadMethod('tri_shape', { sinkTokens: 4, lastDenseQueries: 3, br: 16, bc: 16 }, { localWindow: [9, 40, 9, 200] });
    const q = HeadTensor.randn({ batch: 1, heads: 4, length: 90, headDim: 16 }, 3);
    const k = HeadTensor.randn({ batch: 1, heads: 2, length: 90, headDim: 16 }, 4);
    const v = HeadTensor.randn({ batch: 1, heads: 2, length: 90, headDim: 16 }, 5);
    const cpu = await sparseAttention(q, k, v, { method: m, causal: true, backend: 'cpu' });
    assert.ok(cpu.plan.mask.headTokenRules, 'the windows give one rule per head');
    const got = await sparseAttention(q, k, v, { method: m, causal: true, backend: 'webgpu' });
    assertTensorsClose(got.output, cpu.output, TOL.f32, 'webgpu vs cpu');
  });

  it('refuses clearly: a rowPtr without COPY_SRC, and a single-dispatch program given differing rules', async () => {
    const c = HEAD_RULE_CASES[1];
    const { q, k, v } = caseInputs(c, 61);
    const { mask } = caseMask(c, 2);
    await assert.rejects(runOnGpu(c, q, k, v, mask, 0), (e: unknown) => e instanceof InvalidArgumentError && /COPY_SRC/.test(e.message));
    const device = gpu.ctx!.device;
    const views = { q: uploadTensor(device, q, 'r.q'), k: uploadTensor(device, k, 'r.k'), v: uploadTensor(device, v, 'r.v'), o: uploadTensor(device, q, 'r.o') };
    try {
      const opts = { causal: true, scale: 1, blocks: { kind: 'all' as const }, headTokenRules: c.rules };
      assert.throws(() => attentionSpecFor(device, views, opts), UnsupportedError);
      assert.throws(() => attentionDispatch(device, views, opts, { ...attentionSpecFor(device, views, { ...opts, headTokenRules: undefined }) }, 64), UnsupportedError);
      await assert.rejects(encodeAttention(device, device.createCommandEncoder(), views, { ...opts, headTokenRules: [tri(1, 2, 0)] }), (e: unknown) => e instanceof InvalidArgumentError && /headTokenRules\.length/.test(e.message));
    } finally {
      for (const t of Object.values(views)) t.buffer.destroy();
    }
  });
});

describe('WebGPU: equal per-head rules take one dispatch', { skip: gpu.skip }, () => {
  it('a per-head array of one rule equals the single-rule mask', async () => {
    const c = { ...HEAD_RULE_CASES[0], rules: Array(6).fill(tri(4, 9, 3)) };
    const { q, k, v } = caseInputs(c, 71);
    const { mask } = caseMask(c, 4);
    assert.equal(mask.headTokenRules, undefined);
    const device = gpu.ctx!.device;
    const encoder = device.createCommandEncoder();
    const views = { q: uploadTensor(device, q, 'e.q'), k: uploadTensor(device, k, 'e.k'), v: uploadTensor(device, v, 'e.v'), o: uploadTensor(device, q, 'e.o') };
    const made = await encodeAttention(device, encoder, views, { causal: true, scale: 1, blocks: { kind: 'all' }, headTokenRules: c.rules });
    assert.equal(made.length, 1, 'one Params buffer: no split');
    for (const b of [...made, ...Object.values(views).map((t) => t.buffer)]) b.destroy();
    assertTensorsClose(await runOnGpu(c, q, k, v, mask), flashAttention(q, k, v, { causal: true, mask }), TOL.f32, 'one rule');
  });
});
