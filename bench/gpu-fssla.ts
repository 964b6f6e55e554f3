/**
 * flash-skip-softmax and SLA / SageSLA on WebGPU. Validates first (on a small input the GPU's kept
 * tiles / block map must equal the CPU's, outputs within tolerance), then times, per length, GPU
 * dense flash attention, flash-skip in the loop, SLA and SageSLA on structuredQKV, and writes JSON
 * (device, date, shapes, ms, density, TFLOP/s of the dense-equivalent work, relative L2 vs dense).
 * Times are host-level calls (upload, one submit, readback), median of --reps after one warm-up;
 * `kernelMs` is the GPU time per kernel of one more call, from timestamp queries.
 *
 *   node dist/bench/gpu-fssla.js [--lengths 4096,16384] [--heads 8] [--reps 3] [--out FILE]
 * (default FILE: bench/results/<date>-<machine>/gpu-fssla.json)
 */
import { parseArgs } from 'node:util';
import { flashSkipAttention } from '../src/methods/flash-skip-softmax/flash-skip-cpu.js';
import { createWebGpuContext, flashAttentionWebGpu, flashSkipAttentionWebGpu } from '../src/backends/webgpu/index.js';
import { profileRun } from '../src/backends/webgpu/runtime/pass-profiler.js';
import { slaAttentionWebGpu } from '../src/backends/webgpu/methods/sla/sla-attention.js';
import { attentionFlops, tflopsOf } from '../src/bench/cases.js';
import { checkOutput, checkSameValues, type ReferenceCheck } from '../src/bench/check.js';
import { webgpuDeviceInfo } from '../src/bench/device-info.js';
import { median, wallClock } from '../src/bench/harness.js';
import { emitReport, scriptReport } from '../src/bench/report.js';
import { defaultResultPath } from '../src/bench/results.js';
import { relativeL2Error as relL2 } from '../src/core/error-metrics.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import type { HeadTensor } from '../src/core/tensor.js';
import { SageSlaMethod } from '../src/methods/sage-sla/sage-sla.js';
import { SlaMethod } from '../src/methods/sla/sla.js';

const { values } = parseArgs({
  options: {
    lengths: { type: 'string', default: '4096,16384' }, heads: { type: 'string', default: '8' },
    reps: { type: 'string', default: '3' }, out: { type: 'string' },
  },
});
const ctx = await createWebGpuContext();
const device = webgpuDeviceInfo(ctx.report);
const out = values.out ?? defaultResultPath('gpu-fssla.json', device);
const reps = Number(values.reps);
const date = new Date();

// Validate on a small input before timing anything.
const validation: ReferenceCheck[] = [];
{
  const { q, k, v } = structuredQKV({ heads: 2, kvHeads: 1, length: 300, headDim: 64, seed: 7 });
  const opts = { causal: true, threshold: 0.05, scale: 0.5, br: 64, bc: 32 };
  const gpu = await flashSkipAttentionWebGpu(ctx, q, k, v, opts);
  const cpu = flashSkipAttention(q, k, v, opts);
  checkSameValues('flash-skip kept tiles', gpu.kept.colIdx, cpu.kept.colIdx);
  validation.push(checkOutput('flash-skip output', gpu.output, cpu.output, 1e-5));
  for (const m of [new SlaMethod({ topkRatio: 0.3, BLKQ: 64, BLKK: 32, proj: 'identity' }), new SageSlaMethod({ BLKQ: 64, BLKK: 32, proj: 'identity' })]) {
    const g = await slaAttentionWebGpu(ctx, q, k, v, { ...m.settings, causal: false, sage: m instanceof SageSlaMethod });
    validation.push(checkOutput(`${m.name} output`, g.output, m.attention(q, k, v, { causal: false }).output, 1e-4));
    checkSameValues(`${m.name} block map`, g.map.lut, m.blockMap(q, k, { causal: false }).lut);
  }
}

/** Median wall-clock ms of host-level calls (output read back included), the last output, and the kernels of one more call. */
async function time(run: () => Promise<HeadTensor>) {
  let out: Float32Array = new Float32Array();
  const ms = median(await wallClock(async () => { out = (await run()).toFloat32Array(); }, { warmup: 1, minIters: reps, maxIters: reps, targetMs: 0 }));
  return { ms, out, kernelMs: await profileRun(ctx.device, run) };
}

const rows: Record<string, unknown>[] = [];
const H = Number(values.heads);
for (const L of values.lengths!.split(',').map(Number)) {
  const { q, k, v } = structuredQKV({ heads: H, kvHeads: H, length: L, headDim: 64, seed: 1 });
  for (const causal of [true, false]) {
    const flops = attentionFlops({ batch: 1, heads: H, queryLength: L, keyLength: L, headDim: 64, causal });
    const dense = await time(() => flashAttentionWebGpu(ctx, q, k, v, { causal }));
    const row = (method: string, r: Awaited<ReturnType<typeof time>>, density: number) => rows.push({
      method, L, heads: H, headDim: 64, causal, ms: Math.round(r.ms * 10) / 10, density,
      denseEquivalentTflops: tflopsOf(flops, r.ms), speedupVsDense: dense.ms / r.ms, relL2VsDense: relL2(r.out, dense.out),
      ...(r.kernelMs ? { kernelMs: r.kernelMs } : {}),
    });
    row('dense (GPU flash)', dense, 1);
    let density = 1;
    const fs = await time(async () => {
      const r = await flashSkipAttentionWebGpu(ctx, q, k, v, { causal, threshold: 1e-3, br: 128, bc: 128 });
      density = 1 - r.skippedTiles / r.visitedTiles;
      return r.output;
    });
    row('flash_skip_softmax (t=1e-3, 128×128)', fs, density);
    // SageSLA at its own default and at SLA's keep ratio, so that the two sparse parts compare at one density.
    const slaTopk = new SlaMethod({}).settings.topkRatio;
    for (const m of [new SlaMethod({ proj: 'identity' }), new SageSlaMethod({ proj: 'identity' }), new SageSlaMethod({ proj: 'identity', topkRatio: slaTopk })]) {
      let d = 1;
      const r = await time(async () => {
        const g = await slaAttentionWebGpu(ctx, q, k, v, { ...m.settings, causal, sage: m instanceof SageSlaMethod });
        d = g.map.sparseMap.reduce((a, x) => a + x, 0) / g.map.sparseMap.length;
        return g.output;
      });
      row(`${m.name} (topk ${m.settings.topkRatio}, identity proj)`, r, d);
    }
    console.error(rows.slice(-5).map((r) => `${r.method} L=${L} ${causal ? 'causal' : 'non-causal'}: ${r.ms} ms`).join('\n'));
  }
}
const report = scriptReport('gpu-fssla', device, {
  flopRule: 'dense 4·B·H·L²·D, halved when causal; denseEquivalentTflops = those dense FLOPs / ms',
  timing: 'wall-clock: median of --reps host-level calls (upload, submit, readback) after one warm-up; kernelMs from timestamp queries',
  adapter: ctx.report.description || ctx.report.device, vendor: ctx.report.vendor, reps, validation, rows,
}, date);
ctx.destroy();
emitReport(report, { out, print: true });
