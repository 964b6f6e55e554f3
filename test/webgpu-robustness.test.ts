/**
 * Robustness off (`createWebGpuContext({ robustness: false })`, Dawn's disable_robustness) is only safe
 * if every kernel stays inside its views. Each operand here lives in the middle of a larger buffer:
 * inputs between NaN guard regions (a read past the view pulls a NaN into the output), the output
 * between sentinel guard regions that must come back untouched (a write past the view changes them).
 * Outputs are compared with the CPU reference. Covered: the attention skeleton (dense, block list, token
 * rule, per-head token rules, paged KV; f32 and f16; both layouts; GQA; odd lengths, Lq < Lk, length 1; the tensor-core kernel
 * where the adapter has it) and flash-skip-softmax's in-loop kernel; XAttention's plan reads guarded Q/K.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { encodeAttention, maskTokenRules } from '../src/backends/webgpu/attention/attention-dispatch.js';
import type { AttentionDispatchOptions } from '../src/backends/webgpu/attention/attention-views.js';
import { readBlockMask } from '../src/backends/webgpu/attention/block-list.js';
import { encodeFlashSkipAttention } from '../src/backends/webgpu/methods/flash-skip-softmax/webgpu-flash-skip-attention.js';
import { encodeXAttentionPlan } from '../src/backends/webgpu/methods/xattention/xattention-plan.js';
import { bytesPerElement, createStorageBuffer, type GpuTensorView, readBuffer, uploadArray } from '../src/backends/webgpu/runtime/buffers.js';
import { BufferUsage } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { createWebGpuContext, type WebGpuContext } from '../src/backends/webgpu/index.js';
import { randomCausalBlockMask } from '../src/bench/cases.js';
import { BlockMask } from '../src/core/block-mask.js';
import { f32ToF16Bits, fromF16Bits } from '../src/core/f16.js';
import { type DType, HeadTensor, type Layout } from '../src/core/tensor.js';
import { triShapeBlockMask } from '../src/methods/tri-shape/tri-shape.js';
import { estimateXAttention } from '../src/methods/xattention/antidiagonal-estimate.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const GUARD = 256; // elements on each side of a view
const SENTINEL = 12345.5;

const gpu = await acquireTestGpu();
// A device of its own with Dawn's robustness off (a separate Dawn instance).
const ctx: WebGpuContext | undefined = gpu.ctx ? await createWebGpuContext({ robustness: false }) : undefined;
const skip = gpu.skip;
after(async () => {
  ctx?.destroy();
  await gpu.release();
});

/** The tensor's elements between two guard regions of `fill`, as a view at offset GUARD. */
function guarded(device: GPUDevice, t: HeadTensor, fill: number, label: string, extraUsage = 0): GpuTensorView {
  const n = t.data.length;
  const total = n + 2 * GUARD;
  const data = t.dtype === 'f32' ? new Float32Array(total).fill(fill) : new Uint16Array(total).fill(f32ToF16Bits(fill));
  data.set(t.data as Float32Array & Uint16Array, GUARD);
  return { ...t.shape, buffer: uploadArray(device, data, label, extraUsage), dtype: t.dtype, offset: GUARD, strideB: t.strideB, strideH: t.strideH, strideL: t.strideL };
}

/** Reads a guarded output back: its view as a HeadTensor, and whether both guard regions kept the sentinel. */
async function readGuarded(device: GPUDevice, view: GpuTensorView, like: HeadTensor): Promise<{ out: HeadTensor; guardsIntact: boolean; touched: number }> {
  const n = like.data.length;
  const raw = await readBuffer(device, view.buffer, (n + 2 * GUARD) * bytesPerElement(view.dtype));
  const all = view.dtype === 'f32' ? new Float32Array(raw) : fromF16Bits(new Uint16Array(raw));
  let touched = 0;
  const sentinel = view.dtype === 'f32' ? SENTINEL : fromF16Bits(Uint16Array.of(f32ToF16Bits(SENTINEL)))[0];
  for (let i = 0; i < GUARD; i++) {
    if (all[i] !== sentinel) touched++;
    if (all[GUARD + n + i] !== sentinel) touched++;
  }
  const body = view.dtype === 'f32' ? new Float32Array(raw, GUARD * 4, n) : new Uint16Array(raw, GUARD * 2, n);
  return { out: new HeadTensor(like.shape, body.slice(), like.layout), guardsIntact: touched === 0, touched };
}

interface Case {
  name: string;
  dtype: DType;
  layout: Layout;
  heads: number;
  kvHeads: number;
  Lq: number;
  Lk: number;
  D: number;
  causal: boolean;
  mask?: (dims: { batch: number; heads: number; queryLength: number; keyLength: number; causal: boolean }) => BlockMask;
  kernel?: AttentionDispatchOptions['kernel'];
}

const CASES: Case[] = [
  { name: 'dense f32 BHLD GQA 4/2 L197', dtype: 'f32', layout: 'BHLD', heads: 4, kvHeads: 2, Lq: 197, Lk: 197, D: 32, causal: true },
  { name: 'dense f32 BLHD non-causal Lq 1 Lk 77', dtype: 'f32', layout: 'BLHD', heads: 2, kvHeads: 1, Lq: 1, Lk: 77, D: 16, causal: false },
  { name: 'dense f32 causal Lq 50 < Lk 131', dtype: 'f32', layout: 'BHLD', heads: 2, kvHeads: 2, Lq: 50, Lk: 131, D: 32, causal: true },
  {
    name: 'block list f32 random mask L150', dtype: 'f32', layout: 'BHLD', heads: 4, kvHeads: 1, Lq: 150, Lk: 150, D: 32, causal: true,
    mask: (d) => randomCausalBlockMask({ ...d, blockRows: 32, blockCols: 32 }, 0.4, 3),
  },
  {
    name: 'token rule (tri-shape) f32 L190', dtype: 'f32', layout: 'BHLD', heads: 2, kvHeads: 1, Lq: 190, Lk: 190, D: 16, causal: true,
    mask: (d) => triShapeBlockMask({ ...d, blockRows: 32, blockCols: 32 }, { sinkTokens: 8, localWindow: 40, lastDenseQueries: 5 }),
  },
  {
    // Runs of heads with one rule each (head-rule-split.ts): every sub-dispatch's views stay inside.
    name: 'per-head token rules f32 BLHD GQA 6/2 L150', dtype: 'f32', layout: 'BLHD', heads: 6, kvHeads: 2, Lq: 150, Lk: 150, D: 16, causal: true,
    mask: (d) => {
      const m = randomCausalBlockMask({ ...d, blockRows: 32, blockCols: 32 }, 0.6, 5);
      const rule = (w: number) => ({ kind: 'trishape' as const, sinkTokens: 4, localWindow: w, lastDenseQueries: 3 });
      return new BlockMask(m.dims, m.rowPtr, m.colIdx, [rule(20), rule(20), rule(45), undefined, rule(20), rule(70)]);
    },
  },
  { name: 'dense f16 BLHD GQA 4/1 L133', dtype: 'f16', layout: 'BLHD', heads: 4, kvHeads: 1, Lq: 133, Lk: 133, D: 64, causal: true },
  // Lengths on the 64 grid and D 64: the tensor-core kernel where the adapter has subgroup matrices.
  { name: 'dense f16 L256 D64 (tensor cores where offered)', dtype: 'f16', layout: 'BHLD', heads: 4, kvHeads: 2, Lq: 256, Lk: 256, D: 64, causal: true, kernel: 'auto' },
];

describe('robustness off: kernels stay inside their views', () => {
  for (const c of CASES) {
    it(c.name, { skip }, async () => {
      if (!ctx) return;
      const { device } = ctx;
      if (c.dtype === 'f16' && !ctx.report.shaderF16) return;
      const opts = { layout: c.layout, dtype: c.dtype };
      const q = HeadTensor.randn({ batch: 1, heads: c.heads, length: c.Lq, headDim: c.D }, 11, opts);
      const k = HeadTensor.randn({ batch: 1, heads: c.kvHeads, length: c.Lk, headDim: c.D }, 12, opts);
      const v = HeadTensor.randn({ batch: 1, heads: c.kvHeads, length: c.Lk, headDim: c.D }, 13, opts);
      const mask = c.mask?.({ batch: 1, heads: c.heads, queryLength: c.Lq, keyLength: c.Lk, causal: c.causal });
      const like = HeadTensor.zeros(q.shape, c.layout, c.dtype);
      const views = {
        q: guarded(device, q, NaN, 'guard.q'), k: guarded(device, k, NaN, 'guard.k'), v: guarded(device, v, NaN, 'guard.v'),
        o: guarded(device, like, SENTINEL, 'guard.o', BufferUsage.COPY_SRC),
      };
      const made: GPUBuffer[] = Object.values(views).map((t) => t.buffer);
      const dispatch: AttentionDispatchOptions = { causal: c.causal, scale: 1 / Math.sqrt(c.D), blocks: { kind: 'all' }, kernel: c.kernel ?? 'portable' };
      if (mask) {
        const rowPtr = uploadArray(device, mask.rowPtr, 'guard.rowPtr', BufferUsage.COPY_SRC);
        const colIdx = uploadArray(device, mask.colIdx, 'guard.colIdx');
        made.push(rowPtr, colIdx);
        dispatch.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: mask.blockRows, blockCols: mask.blockCols };
        Object.assign(dispatch, maskTokenRules(mask));
      }
      try {
        const encoder = device.createCommandEncoder();
        made.push(...(await encodeAttention(device, encoder, views, dispatch)));
        device.queue.submit([encoder.finish()]);
        const { out, guardsIntact, touched } = await readGuarded(device, views.o, like);
        assert.ok(guardsIntact, `${touched} guard elements of the output were written`);
        assertTensorsClose(out, flashAttention(q, k, v, { causal: c.causal, mask }), c.dtype === 'f32' ? TOL.f32 : TOL.f16, c.name);
      } finally {
        for (const b of made) b.destroy();
      }
    });
  }

  it('paged KV: a cache of pages between guards, a block table that skips pages', { skip }, async () => {
    if (!ctx) return;
    const { device } = ctx;
    const [pages, pageSize, D, Lk] = [7, 16, 32, 53];
    const cache = HeadTensor.randn({ batch: pages, heads: 1, length: pageSize, headDim: D }, 21);
    const vCache = HeadTensor.randn({ batch: pages, heads: 1, length: pageSize, headDim: D }, 22);
    const table = Int32Array.of(5, 0, 3, 6);
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: 20, headDim: D }, 23);
    const like = HeadTensor.zeros(q.shape);
    const views = {
      q: guarded(device, q, NaN, 'guard.q'), k: guarded(device, cache, NaN, 'guard.k'), v: guarded(device, vCache, NaN, 'guard.v'),
      o: guarded(device, like, SENTINEL, 'guard.o', BufferUsage.COPY_SRC),
    };
    const blockTable = uploadArray(device, table, 'guard.table');
    const made = [...Object.values(views).map((t) => t.buffer), blockTable];
    try {
      const encoder = device.createCommandEncoder();
      made.push(...await encodeAttention(device, encoder, views, {
        causal: true, scale: 1 / Math.sqrt(D), keyLength: Lk, blocks: { kind: 'all' }, kernel: 'portable', paged: { blockTable, tableStride: table.length, pageSize },
      }));
      device.queue.submit([encoder.finish()]);
      const { out, guardsIntact, touched } = await readGuarded(device, views.o, like);
      assert.ok(guardsIntact, `${touched} guard elements of the output were written`);
      const gather = (c: HeadTensor) => {
        const t = HeadTensor.zeros({ batch: 1, heads: 1, length: Lk, headDim: D });
        for (let j = 0; j < Lk; j++) t.data.set(c.data.subarray(c.offset(table[Math.floor(j / pageSize)], 0, j % pageSize), c.offset(table[Math.floor(j / pageSize)], 0, j % pageSize) + D), t.offset(0, 0, j));
        return t;
      };
      assertTensorsClose(out, flashAttention(q, gather(cache), gather(vCache), { causal: true }), TOL.f32, 'paged');
    } finally {
      for (const b of made) b.destroy();
    }
  });

  it('flash-skip-softmax in-loop kernel (f32, GQA, L173)', { skip }, async () => {
    if (!ctx) return;
    const { device } = ctx;
    const [H, Hkv, L, D, br, bc] = [4, 2, 173, 32, 32, 32];
    const q = HeadTensor.randn({ batch: 1, heads: H, length: L, headDim: D }, 31);
    const k = HeadTensor.randn({ batch: 1, heads: Hkv, length: L, headDim: D }, 32);
    const v = HeadTensor.randn({ batch: 1, heads: Hkv, length: L, headDim: D }, 33);
    const like = HeadTensor.zeros(q.shape);
    const views = {
      q: guarded(device, q, NaN, 'guard.q'), k: guarded(device, k, NaN, 'guard.k'), v: guarded(device, v, NaN, 'guard.v'),
      o: guarded(device, like, SENTINEL, 'guard.o', BufferUsage.COPY_SRC),
    };
    const kept = createStorageBuffer(device, H * Math.ceil(L / br) * Math.ceil(L / bc) * 4, 'guard.kept');
    const counters = createStorageBuffer(device, 12, 'guard.counters');
    const made = [...Object.values(views).map((t) => t.buffer), kept, counters];
    try {
      const encoder = device.createCommandEncoder();
      // threshold 1e-30: no tile is skipped, so the output is dense attention exactly.
      made.push(await encodeFlashSkipAttention(device, encoder, views, { causal: true, scale: 1 / Math.sqrt(D), threshold: 1e-30, br, bc, kept, counters }));
      device.queue.submit([encoder.finish()]);
      const { out, guardsIntact, touched } = await readGuarded(device, views.o, like);
      assert.ok(guardsIntact, `${touched} guard elements of the output were written`);
      assertTensorsClose(out, flashAttention(q, k, v, { causal: true }), TOL.f32, 'flash-skip');
    } finally {
      for (const b of made) b.destroy();
    }
  });

  it('XAttention plan on guarded Q/K: the mask equals the CPU plan', { skip }, async () => {
    if (!ctx) return;
    const { device } = ctx;
    const params = { threshold: 0.8, blockSize: 32, stride: 8 };
    const q = HeadTensor.randn({ batch: 1, heads: 4, length: 201, headDim: 32 }, 41);
    const k = HeadTensor.randn({ batch: 1, heads: 2, length: 201, headDim: 32 }, 42);
    const views = { q: guarded(device, q, NaN, 'guard.q'), k: guarded(device, k, NaN, 'guard.k') };
    const encoder = device.createCommandEncoder();
    const plan = await encodeXAttentionPlan(device, encoder, views, params, { causal: true, scale: 1 / Math.sqrt(32) });
    try {
      device.queue.submit([encoder.finish()]);
      const mask = await readBlockMask(device, plan.blocks);
      const cpu = estimateXAttention(q, k, params, { causal: true }).mask;
      assert.deepEqual([...mask.rowPtr], [...cpu.rowPtr]);
      assert.deepEqual([...mask.colIdx], [...cpu.colIdx]);
    } finally {
      plan.destroy();
      views.q.buffer.destroy();
      views.k.buffer.destroy();
    }
  });
});

describe('robustness is reported', () => {
  it('the adapter report says robustness is off on that context', { skip }, () => {
    assert.equal(ctx?.report.robustness, false);
  });
});
