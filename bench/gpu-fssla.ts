/**
 * flash-skip-softmax and SLA / SageSLA on WebGPU. Validates first (on a small input the GPU's kept
 * tiles / block map must equal the CPU's, outputs within tolerance), then times, per length, GPU
 * dense flash attention, flash-skip in the loop, SLA and SageSLA on structuredQKV, and writes JSON
 * (adapter, date, shapes, ms, density, TFLOP/s of the dense-equivalent work, relative L2 vs dense).
 * Times are host-level calls (upload, one submit, readback), median of --reps after one warm-up.
 *
 *   npx tsc -p . && node dist/bench/gpu-fssla.js [--lengths 4096,16384] [--heads 8] [--reps 3] [--out gpu-fssla-bench.json]
 *   H100: bash .gpu-kit/gpu.sh node dist/bench/gpu-fssla.js --out "$OUT/gpu-fssla.json"
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { flashSkipAttention } from '../src/methods/flash-skip-softmax/flash-skip-cpu.js';
import { flashAttentionWebGpu } from '../src/backends/webgpu/attention/webgpu-flash-attention.js';
import { flashSkipAttentionWebGpu } from '../src/backends/webgpu/methods/flash-skip-softmax/webgpu-flash-skip-attention.js';
import { createWebGpuContext } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { slaAttentionWebGpu } from '../src/backends/webgpu/methods/sla/sla-attention.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import type { HeadTensor } from '../src/core/tensor.js';
import { SageSlaMethod } from '../src/methods/sage-sla/sage-sla.js';
import { SlaMethod } from '../src/methods/sla/sla.js';
import { relativeL2Error as relL2 } from '../src/core/error-metrics.js';

const { values } = parseArgs({
  options: {
    lengths: { type: 'string', default: '4096,16384' }, heads: { type: 'string', default: '8' },
    reps: { type: 'string', default: '3' }, out: { type: 'string', default: 'gpu-fssla-bench.json' },
  },
});
const ctx = await createWebGpuContext();
const reps = Number(values.reps);

// Validate on a small input before timing anything.
{
  const { q, k, v } = structuredQKV({ heads: 2, kvHeads: 1, length: 300, headDim: 64, seed: 7 });
  const opts = { causal: true, threshold: 0.05, scale: 0.5, br: 64, bc: 32 };
  const gpu = await flashSkipAttentionWebGpu(ctx, q, k, v, opts);
  const cpu = flashSkipAttention(q, k, v, opts);
  if (JSON.stringify([...gpu.kept.colIdx]) !== JSON.stringify([...cpu.kept.colIdx])) throw new Error('validation failed: flash-skip kept tiles differ from the CPU');
  if (relL2(gpu.output.toFloat32Array(), cpu.output.toFloat32Array()) > 1e-5) throw new Error('validation failed: flash-skip output');
  for (const m of [new SlaMethod({ topkRatio: 0.3, BLKQ: 64, BLKK: 32, proj: 'identity' }), new SageSlaMethod({ BLKQ: 64, BLKK: 32, proj: 'identity' })]) {
    const g = await slaAttentionWebGpu(ctx, q, k, v, { ...m.settings, causal: false, sage: m instanceof SageSlaMethod });
    const c = m.attention(q, k, v, { causal: false });
    if (relL2(g.output.toFloat32Array(), c.output.toFloat32Array()) > 1e-4) throw new Error(`validation failed: ${m.name} output`);
    if (JSON.stringify([...g.map.lut]) !== JSON.stringify([...m.blockMap(q, k, { causal: false }).lut])) throw new Error(`validation failed: ${m.name} block map`);
  }
}

async function time(run: () => Promise<HeadTensor>): Promise<{ ms: number; out: Float32Array }> {
  let out = (await run()).toFloat32Array();
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    out = (await run()).toFloat32Array();
    ms.push(performance.now() - t);
  }
  return { ms: ms.sort((a, b) => a - b)[Math.floor(ms.length / 2)], out };
}

const rows: Record<string, unknown>[] = [];
const H = Number(values.heads);
for (const L of values.lengths!.split(',').map(Number)) {
  const { q, k, v } = structuredQKV({ heads: H, kvHeads: H, length: L, headDim: 64, seed: 1 });
  for (const causal of [true, false]) {
    const flops = (4 * H * L * L * 64) / (causal ? 2 : 1);
    const dense = await time(() => flashAttentionWebGpu(ctx, q, k, v, { causal }));
    const row = (method: string, r: { ms: number; out: Float32Array }, density: number) => rows.push({
      method, L, heads: H, headDim: 64, causal, ms: Math.round(r.ms * 10) / 10, density,
      denseEquivalentTflops: flops / (r.ms * 1e9), speedupVsDense: dense.ms / r.ms, relL2VsDense: relL2(r.out, dense.out),
    });
    row('dense (GPU flash)', dense, 1);
    let density = 1;
    const fs = await time(async () => {
      const r = await flashSkipAttentionWebGpu(ctx, q, k, v, { causal, threshold: 1e-3, br: 128, bc: 128 });
      density = 1 - r.skippedTiles / r.visitedTiles;
      return r.output;
    });
    row('flash_skip_softmax (t=1e-3, 128×128)', fs, density);
    for (const m of [new SlaMethod({ proj: 'identity' }), new SageSlaMethod({ proj: 'identity' })]) {
      let d = 1;
      const r = await time(async () => {
        const g = await slaAttentionWebGpu(ctx, q, k, v, { ...m.settings, causal, sage: m instanceof SageSlaMethod });
        d = g.map.sparseMap.reduce((a, x) => a + x, 0) / g.map.sparseMap.length;
        return g.output;
      });
      row(`${m.name} (topk ${m.settings.topkRatio}, identity proj)`, r, d);
    }
    console.error(rows.slice(-4).map((r) => `${r.method} L=${L} ${causal ? 'causal' : 'non-causal'}: ${r.ms} ms`).join('\n'));
  }
}
const report = { date: new Date().toISOString(), adapter: ctx.report.description || ctx.report.device, vendor: ctx.report.vendor, reps, rows };
writeFileSync(values.out!, JSON.stringify(report, null, 2));
console.log(JSON.stringify(report, null, 2));
ctx.destroy();
