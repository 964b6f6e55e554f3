/**
 * One behaviour on every backend: each registered method, run through sparseAttention with every
 * option left out (causality, scale, settings), gives the same plan and the same output on the CPU
 * and on WebGPU, and the output follows the rule of docs/api.md (q's dtype and layout).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { webgpuBackend } from '../src/backends/webgpu/index.js';
import { type DType, HeadTensor, type Layout } from '../src/core/tensor.js';
import { BUILTIN_METHODS } from '../src/methods/index.js';
import { assertTensorsClose, TOL, type Tolerance } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();

// Lk = 200 spans several blocks of every method's default sizes (64 / 128) and ends in a partial one;
// D = 64 is a head size every method takes (sage_sla's int8 kernels need 64 or 128).
const SHAPE = { batch: 1, heads: 2, headDim: 64 };
const L = 200;
// SageSLA quantizes to int8 on both backends; its own suite's tolerance.
const SAGE_TOL: Tolerance = { atol: 5e-5, rtol: 5e-4 };

describe('every method, every option left out: WebGPU = CPU', { skip: gpu.skip }, () => {
  after(() => gpu.release());
  for (const d of BUILTIN_METHODS) {
    for (const [dtype, layout] of [['f32', 'BHLD'], ['f16', 'BLHD']] as [DType, Layout][]) {
      it(`${d.name} ${d.version}, ${dtype} ${layout}`, async () => {
        const q = HeadTensor.randn({ ...SHAPE, length: L }, 11, { dtype, layout });
        const k = HeadTensor.randn({ ...SHAPE, length: L }, 12, { dtype, layout });
        const v = HeadTensor.randn({ ...SHAPE, length: L }, 13, { dtype, layout });
        // Each version by its class (a name alone would pick the newest), constructed with no settings.
        const method = () => new d.cls();
        const cpu = await sparseAttention(q, k, v, { method: method() });
        const got = await sparseAttention(q, k, v, { method: method(), backend: webgpuBackend });
        for (const [name, r] of [['cpu', cpu], ['webgpu', got]] as const) {
          assert.equal(r.output.dtype, dtype, `${name}: output dtype follows q`);
          assert.equal(r.output.layout, layout, `${name}: output layout follows q`);
          assert.deepEqual(r.output.shape, q.shape, `${name}: output shape [B, H, Lq, Dv]`);
        }
        assert.equal(got.plan.mask.causal, cpu.plan.mask.causal, 'the same causality on both backends');
        assert.deepEqual([got.plan.mask.blockRows, got.plan.mask.blockCols], [cpu.plan.mask.blockRows, cpu.plan.mask.blockCols], 'the same block sizes');
        assert.deepEqual(Array.from(got.plan.mask.rowPtr), Array.from(cpu.plan.mask.rowPtr), 'the same kept blocks (rowPtr)');
        assert.deepEqual(Array.from(got.plan.mask.colIdx), Array.from(cpu.plan.mask.colIdx), 'the same kept blocks (colIdx)');
        const tol = d.name === 'sage_sla' ? SAGE_TOL : TOL[dtype];
        assertTensorsClose(got.output, cpu.output, dtype === 'f16' ? TOL.f16 : tol, `${d.name} ${d.version}`);
      });
    }
  }
});
