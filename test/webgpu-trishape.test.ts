import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { createWebGpuBackend } from '../src/backends/webgpu/index.js';
import { triShapeBlockMaskWebGpu } from '../src/backends/webgpu/methods/tri-shape/trishape-blocks.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { triShapeBlockMask, triShapeTokenRule } from '../src/methods/tri-shape/tri-shape.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { assertSameMask } from './helpers/masks.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();

describe('tri-shape block list on WebGPU', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  const cases = [
    { name: 'square, blocks not dividing L', B: 1, H: 1, Lq: 100, Lk: 100, br: 16, bc: 16, sink: 8, window: 20, last: 10 },
    { name: 'q shorter than k, br != bc, batch 2 × 3 heads', B: 2, H: 3, Lq: 37, Lk: 90, br: 8, bc: 12, sink: 5, window: 9, last: 4 },
    { name: 'lastDenseQueries >= Lq (clamped to Lq - 1)', B: 1, H: 2, Lq: 20, Lk: 64, br: 4, bc: 8, sink: 4, window: 6, last: 50 },
    { name: 'decode (dense, no token rule)', B: 1, H: 2, Lq: 1, Lk: 77, br: 16, bc: 16, sink: 4, window: 8, last: 3 },
    { name: 'Lk <= localWindow (dense, no token rule)', B: 1, H: 1, Lq: 30, Lk: 40, br: 8, bc: 8, sink: 2, window: 40, last: 3 },
    { name: 'window 1, no sink, no dense tail', B: 1, H: 1, Lq: 50, Lk: 50, br: 5, bc: 7, sink: 0, window: 1, last: 0 },
    { name: 'several bitmap words per row (75 key blocks)', B: 1, H: 1, Lq: 300, Lk: 300, br: 16, bc: 4, sink: 9, window: 30, last: 20 },
  ];
  for (const c of cases) {
    it(`block list equals the CPU mask exactly: ${c.name}`, async () => {
      const dims = { batch: c.B, heads: c.H, queryLength: c.Lq, keyLength: c.Lk, blockRows: c.br, blockCols: c.bc };
      const settings = { sinkTokens: c.sink, localWindow: c.window, lastDenseQueries: c.last };
      const want = triShapeBlockMask(dims, settings);
      const got = await triShapeBlockMaskWebGpu(gpu.ctx!, dims, triShapeTokenRule(settings));
      assertSameMask(got, want, c.name);
    });
  }

  it('end to end: sparseAttention on the WebGPU backend (GPU block list + token rule) = the CPU method', async () => {
    const backend = createWebGpuBackend(gpu.ctx);
    const runs = [
      { Lq: 70, Lk: 90, settings: { sinkTokens: 4, localWindow: 12, lastDenseQueries: 5, br: 16, bc: 8 } },
      { Lq: 20, Lk: 45, settings: { sinkTokens: 3, localWindow: 6, lastDenseQueries: 40, br: 8, bc: 8 } },  // clamped dense tail
      { Lq: 1, Lk: 45, settings: { sinkTokens: 3, localWindow: 6, lastDenseQueries: 2, br: 8, bc: 8 } },    // decode: dense
      // Chunks of a longer prompt: 5 of the prompt's 12 last dense rows here; wholly inside them (dense); before them.
      { Lq: 24, Lk: 48, promptRowsAfter: 7, settings: { sinkTokens: 3, localWindow: 6, lastDenseQueries: 12, br: 8, bc: 8 } },
      { Lq: 8, Lk: 56, promptRowsAfter: 2, settings: { sinkTokens: 3, localWindow: 6, lastDenseQueries: 12, br: 8, bc: 8 } },
      { Lq: 24, Lk: 24, promptRowsAfter: 40, settings: { sinkTokens: 3, localWindow: 6, lastDenseQueries: 12, br: 8, bc: 8 } },
    ];
    for (const r of runs) {
      const { q, k, v } = structuredQKV({ heads: 4, kvHeads: 2, length: r.Lk, queryLength: r.Lq, headDim: 16, seed: 7 });
      const chunk = 'promptRowsAfter' in r ? { promptRowsAfter: r.promptRowsAfter } : {};
      const want = await sparseAttention(q, k, v, { method: 'tri_shape', settings: r.settings, causal: true, backend: cpuBackend, ...chunk });
      const got = await sparseAttention(q, k, v, { method: 'tri_shape', settings: r.settings, causal: true, backend, ...chunk });
      const label = `Lq=${r.Lq} Lk=${r.Lk} ${JSON.stringify(chunk)}`;
      assertSameMask(got.plan.mask, want.plan.mask, label);
      assert.deepEqual(got.plan.stats, want.plan.stats, `${label}: stats`);
      assertTensorsClose(got.output, want.output, TOL.f32, `${label}: output`);
    }
  });

  it('non-causal calls are refused as on the CPU', async () => {
    const backend = createWebGpuBackend(gpu.ctx);
    const { q, k, v } = structuredQKV({ heads: 1, length: 16, headDim: 8, seed: 1 });
    await assert.rejects(sparseAttention(q, k, v, { method: 'tri_shape', causal: false, backend }), /causal must be true: tri-shape is defined for causal attention only, got false/);
  });
});
