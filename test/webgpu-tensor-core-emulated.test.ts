/**
 * The tensor-core attention kernel's data flow = the CPU reference on any adapter with f16 shaders:
 * its subgroup-matrix builtins emulated in plain WGSL (tensor-core-emulation.wgsl.ts), so staging,
 * the score-scratch rotation, interleaved QKᵀ chains, the lazy rescale, both pass modes, block
 * lists, the token rules and both output types run on lavapipe too. Outputs start as NaN.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { type AttentionDispatchOptions, encodeAttention, maskTokenRules, type TensorCoreOptions } from '../src/backends/webgpu/attention/attention-dispatch.js';
import { encodeTensorCoreAttention, tensorCoreSpecFor } from '../src/backends/webgpu/attention/tensor-core-attention.js';
import { createOutputTensor, readTensor, uploadArray, uploadTensor } from '../src/backends/webgpu/runtime/buffers.js';
import { BufferUsage } from '../src/backends/webgpu/runtime/webgpu-device.js';
import type { DType } from '../src/core/tensor.js';
import { assertTensorsClose } from './helpers/compare.js';
import { type TcCase, TC_CASES, tcCaseInputs, TOL_TC } from './helpers/tensor-core-cases.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
const skip = gpu.skip || (gpu.ctx && !gpu.ctx.device.features.has('shader-f16') ? `adapter "${gpu.ctx.report.description}" has no shader-f16` : false);
after(() => gpu.release());

async function runEmulated(c: TcCase, tc: TensorCoreOptions, out: DType) {
  const { device } = gpu.ctx!;
  const { q, k, v, mask, want } = tcCaseInputs(c);
  const label = 'tc-emu-test';
  const o = createOutputTensor(device, q.shape, q.layout, out, `${label}.o`);
  device.queue.writeBuffer(o.buffer, 0, new Uint8Array(o.buffer.size).fill(0xff)); // NaN in f16 and f32
  const views = { q: uploadTensor(device, q, `${label}.q`), k: uploadTensor(device, k, `${label}.k`), v: uploadTensor(device, v, `${label}.v`), o };
  const owned = [views.q.buffer, views.k.buffer, views.v.buffer, o.buffer];
  try {
    const opts: AttentionDispatchOptions = { causal: c.causal, scale: 1 / Math.sqrt(c.D), blocks: { kind: 'all' }, kernel: 'tensor-core', tensorCore: { ...tc, emulate: true } };
    if (mask) {
      const rowPtr = uploadArray(device, mask.rowPtr, `${label}.rowPtr`, BufferUsage.COPY_SRC);
      const colIdx = uploadArray(device, mask.colIdx, `${label}.colIdx`);
      owned.push(rowPtr, colIdx);
      opts.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: mask.blockRows, blockCols: mask.blockCols };
      Object.assign(opts, maskTokenRules(mask));
    }
    const encoder = device.createCommandEncoder({ label });
    if (out === q.dtype) owned.push(...(await encodeAttention(device, encoder, views, opts)));
    else {
      // The dispatcher keeps O in Q's dtype; the kernel's f32 epilogue is reached directly.
      const spec = tensorCoreSpecFor(device, views, opts, opts.tensorCore);
      if (typeof spec === 'string') throw new Error(spec);
      owned.push(await encodeTensorCoreAttention(device, encoder, views, opts, spec));
    }
    device.queue.submit([encoder.finish()]);
    return { got: await readTensor(device, o, q.layout), want };
  } finally {
    for (const b of owned) b.destroy();
  }
}

// lavapipe's LLVM takes about a minute per emulated variant, so each variant is compiled once and
// serves cases of one spec. Staged, 4 subgroups need more than lavapipe's 32 KiB of workgroup
// memory, so the staged default runs with 2 (the same data flow at a smaller workgroup); 8 (48 KiB
// of scratch) fit nowhere here.
const VARIANTS: { tc: TensorCoreOptions; cases: number[] }[] = [
  // The default data flow (staged with prefetch, 32-key tiles, interleaved, rotated scratch, one
  // pass) at 2 subgroups: tri-shape token rule (one, and one per head) with GQA.
  { tc: { subgroups: 2 }, cases: [9, 10, 11] },
  // The same with the non-default choices: whole tiles on the per-score-tested loop (no split copy),
  // hidden tiles skipped.
  { tc: { subgroups: 2, splitFull: false, skipHidden: true }, cases: [9] },
  // Unstaged, two passes: ramped logits, block-sparse, not causal, Lq < Lk, f32 output.
  { tc: { stage: false, passes: 2 }, cases: [7] },
  // Staged synchronously, 64-key tiles (the default before prefetching): ramped logits, so O is
  // rescaled on most tiles.
  { tc: { subgroups: 2, keyTile: 64, prefetch: false }, cases: [6] },
  // 16-key tiles, prefetched, 4 subgroups: a block list of 128×128 blocks, GQA.
  { tc: { keyTile: 16 }, cases: [3] },
  // The next K tile's loads clamped (the last tile re-reads itself): the block list, and tri-shape with
  // hidden tiles skipped (the next visible tile, or this one).
  { tc: { keyTile: 16, prefetchClamp: true }, cases: [3] },
  { tc: { subgroups: 2, prefetchClamp: true, skipHidden: true }, cases: [9] },
  // Tri-shape's per-score test as one expression (ruleExpression): one rule and one per head, GQA.
  { tc: { subgroups: 2, ruleExpression: true }, cases: [9, 10] },
  // Rowwise tiles (a workgroup of dense and windowed rows over tiles outside the window): a per-row test.
  { tc: { subgroups: 2, ruleRowwise: true }, cases: [8, 9] },
  // Query tiles innermost in the grid (the default takes heads innermost, wg.x the head): one rule per
  // head, GQA, so a swapped head reads another's window.
  { tc: { subgroups: 2, headsInner: false }, cases: [10] },
];

describe('emulated tensor-core attention = CPU reference', { skip }, () => {
  for (const { tc, cases } of VARIANTS) {
    for (const i of cases) {
      const c = TC_CASES[i];
      const out: DType = i % 2 === 0 || c.windows ? 'f16' : 'f32'; // per-head rules go through the dispatcher
      it(`${JSON.stringify(c)} ${JSON.stringify(tc)} out ${out}`, async () => {
        const { got, want } = await runEmulated(c, tc, out);
        assert.equal(got.dtype, out);
        assertTensorsClose(got.toDType('f32'), want, TOL_TC, 'emulated tensor-core vs CPU');
      });
    }
  }

  it('is never chosen unless asked for with kernel tensor-core', () => {
    const { device } = gpu.ctx!;
    const { q, k, v } = tcCaseInputs(TC_CASES[0]);
    const views = { q: uploadTensor(device, q, 'sel.q'), k: uploadTensor(device, k, 'sel.k'), v: uploadTensor(device, v, 'sel.v'), o: createOutputTensor(device, q.shape, q.layout, 'f16', 'sel.o') };
    try {
      const call: AttentionDispatchOptions = { causal: true, scale: 1, blocks: { kind: 'all' } };
      const asked = tensorCoreSpecFor(device, views, { ...call, kernel: 'tensor-core' }, { emulate: true });
      assert.ok(typeof asked !== 'string' && asked.emulate === true, `asked: ${JSON.stringify(asked)}`);
      assert.equal(typeof tensorCoreSpecFor(device, views, { ...call, kernel: 'auto' }, { emulate: true }), 'string');
      const plain = tensorCoreSpecFor(device, views, { ...call, kernel: 'tensor-core' });
      assert.ok(typeof plain === 'string' || plain.emulate === undefined, 'the dispatcher itself never emulates');
    } finally {
      for (const t of Object.values(views)) t.buffer.destroy();
    }
  });
});
