/**
 * SageSLA on WebGPU = SageSlaMethod on the CPU: the block map exactly, the output within a
 * tolerance far below the int8 quantization noise itself (so the test tells the int8 path from
 * the float one: the GPU result must sit much closer to CPU SageSLA than CPU SageSLA sits to SLA).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { webgpuBackend } from '../src/backends/webgpu/index.js';
import { sageAttentionProgram, sageQuantizeProgram } from '../src/backends/webgpu/methods/sage-sla/sage-sla-attention.js';
import { slaAttentionWebGpu } from '../src/backends/webgpu/methods/sla/sla-attention.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { HeadTensor } from '../src/core/tensor.js';
import { SageSlaMethod } from '../src/methods/sage-sla/sage-sla.js';
import { SlaMethod } from '../src/methods/sla/sla.js';
import { assertTensorsClose, type Tolerance } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
/**
 * The GPU quantizes like the CPU (same f32 steps, V rounded to f16 ties-to-even), so the outputs
 * agree to f32 rounding (measured relative L2 about 2e-7); a rare one-unit int8 difference at a
 * rounding boundary would move one logit by about sQ·sK, which this still allows.
 */
const SAGE_TOL: Tolerance = { atol: 5e-5, rtol: 5e-4 };

interface Case { H: number; Hkv: number; batch: number; Lq: number; Lk: number; D: number; causal: boolean; settings: Record<string, unknown> }
const CASES: Case[] = [
  { D: 64, H: 2, Hkv: 2, batch: 1, Lq: 100, Lk: 100, causal: false, settings: { topkRatio: 0.5, BLKQ: 32, BLKK: 16, proj: 'identity' } },
  { D: 64, H: 4, Hkv: 2, batch: 2, Lq: 37, Lk: 90, causal: true, settings: { topkRatio: 0.4, BLKQ: 16, BLKK: 12 } },
  { D: 128, H: 2, Hkv: 1, batch: 1, Lq: 1, Lk: 50, causal: true, settings: { topkRatio: 0.5, BLKQ: 64, BLKK: 8, proj: 'identity' } },
  { D: 128, H: 2, Hkv: 1, batch: 1, Lq: 70, Lk: 70, causal: false, settings: { topkRatio: 0.3, BLKQ: 20, BLKK: 10, featureMap: 'elu', proj: 'identity' } },
];

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) (num += (a[i] - b[i]) ** 2), (den += b[i] ** 2);
  return Math.sqrt(num / den);
}

describe('WebGPU SageSLA = CPU SageSlaMethod', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  CASES.forEach((c, n) => {
    const name = `D=${c.D} H=${c.H}/${c.Hkv} B=${c.batch} Lq=${c.Lq} Lk=${c.Lk} ${c.causal ? 'causal' : 'non-causal'} ${JSON.stringify(c.settings)}`;
    it(name, async () => {
      const layout = n % 2 ? 'BLHD' : 'BHLD';
      const { q, k, v } = n % 2
        ? structuredQKV({ batch: c.batch, heads: c.H, kvHeads: c.Hkv, length: c.Lk, queryLength: c.Lq, headDim: c.D, seed: 40 + n, layout })
        : {
          q: HeadTensor.randn({ batch: c.batch, heads: c.H, length: c.Lq, headDim: c.D }, 50 * n, { layout }),
          k: HeadTensor.randn({ batch: c.batch, heads: c.Hkv, length: c.Lk, headDim: c.D }, 50 * n + 1),
          v: HeadTensor.randn({ batch: c.batch, heads: c.Hkv, length: c.Lk, headDim: c.D }, 50 * n + 2),
        };
      const sage = new SageSlaMethod(c.settings);
      const cpu = sage.attention(q, k, v, { causal: c.causal });
      const cpuMap = sage.blockMap(q, k, { causal: c.causal });
      const got = await slaAttentionWebGpu(gpu.ctx!, q, k, v, { ...sage.settings, causal: c.causal, sage: true });
      assert.deepEqual([...got.map.sparseMap], [...cpuMap.sparseMap], `${name}: sparseMap`);
      assert.deepEqual([...got.map.lut], [...cpuMap.lut], `${name}: lut`);
      assertTensorsClose(got.output, cpu.output, SAGE_TOL, name);
      const float = new SlaMethod(c.settings).attention(q, k, v, { causal: c.causal }).output.toFloat32Array();
      const gpuErr = relL2(got.output.toFloat32Array(), cpu.output.toFloat32Array());
      const quantNoise = relL2(cpu.output.toFloat32Array(), float);
      if (process.env.SPARSE_ATTN_TEST_VERBOSE) console.log(`${name}: GPU vs CPU ${gpuErr.toExponential(2)}, int8 noise ${quantNoise.toExponential(2)}`);
      assert.ok(gpuErr < quantNoise / 100, `${name}: GPU vs CPU SageSLA ${gpuErr.toExponential(2)} should be far below int8 noise ${quantNoise.toExponential(2)}`);
    });
  });

  it('sparseAttention on the WebGPU backend runs sage_sla on the GPU; head sizes other than 64/128 are refused', async () => {
    const { q, k, v } = structuredQKV({ heads: 2, length: 80, headDim: 64, seed: 2 });
    const settings = { BLKQ: 16, BLKK: 16 };
    const got = await sparseAttention(q, k, v, { method: 'sage_sla', settings, backend: webgpuBackend });
    const cpu = await sparseAttention(q, k, v, { method: 'sage_sla', settings, backend: 'cpu' });
    assert.deepEqual([...got.plan.mask.colIdx], [...cpu.plan.mask.colIdx]);
    assertTensorsClose(got.output, cpu.output, SAGE_TOL, 'sparseAttention sage_sla');
    const small = structuredQKV({ heads: 1, length: 16, headDim: 32, seed: 2 });
    await assert.rejects(sparseAttention(small.q, small.k, small.v, { method: 'sage_sla', backend: webgpuBackend }), /head size \(q.headDim\) must be 64 or 128 for sage_sla/);
  });

  it('the quantize kernel and every int8 attention variant compile', async () => {
    const { compileProgram } = await import('../src/backends/webgpu/runtime/program.js');
    for (const smooth of [false, true]) assert.match((await compileProgram(gpu.ctx!.device, sageQuantizeProgram, { smooth })).label, /^sage-quantize\{smooth=/);
    for (const headDim of [64, 128])
      for (const headDimLoop of ['rolled', 'unrolled'] as const) {
        const spec = { blocks: 'csr', tokenRule: 'none', kv: 'strided', dtype: 'f32', headDim, valueDim: headDim, headDimLoop } as const;
        assert.match((await compileProgram(gpu.ctx!.device, sageAttentionProgram, spec)).label, /^sage-attention\{/);
      }
  });
});
