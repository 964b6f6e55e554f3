/**
 * flash-skip-softmax in the loop: the tensor-core mode against the portable kernel and against dense
 * tensor-core attention, on device-resident f16 operands (B=1, H=32, Hkv=8, D=128, causal).
 * Inputs are peakedQKV (src/core/structured-inputs.ts: the first 8 keys score highest, a --bumps
 * share of the key blocks holds one key just below them, the rest score near zero), so the threshold decides: 1e-30 keeps every block (the "nothing skipped" cost), 0.05 skips the blocks
 * without a bump. Each br first runs a small twin against the CPU sequential kernel (kept blocks and
 * output). Writes JSON.
 *
 *   node dist/bench/flash-skip-tensor-core.js [--lengths 4096,32768] [--br 128,64] [--thresholds 1e-30,0.05] [--bumps 0.1,0.5] [--reps 3] [--out result.json]
 *     [--kernels tc,tc-late,portable] (tc: the tile decided before its softmax, the default; tc-late: voteFirst off)
 *
 * --emulate (a smoke run of this script on adapters without subgroup matrices, e.g. lavapipe; its
 * times mean nothing): the emulated kernels, 2 subgroups (br 32), 16-key tiles, H=4/2.
 */
import { parseArgs } from 'node:util';
import { createOutputTensor, createWebGpuContext, encodeAttention, uploadTensor } from '../src/backends/webgpu/index.js';
import { encodeFlashSkipAttention, flashSkipAttentionWebGpu } from '../src/backends/webgpu/methods/flash-skip-softmax/webgpu-flash-skip-attention.js';
import { createStorageBuffer, readBuffer } from '../src/backends/webgpu/runtime/buffers.js';
import { hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { attentionFlops, tflopsOf } from '../src/bench/cases.js';
import { checkOutput } from '../src/bench/check.js';
import { webgpuDeviceInfo } from '../src/bench/device-info.js';
import { timeOnDevice, timerRuns } from '../src/bench/gpu-timing.js';
import { emitReport, scriptReport } from '../src/bench/report.js';
import { peakedQKV } from '../src/core/structured-inputs.js';
import { flashSkipAttention } from '../src/methods/flash-skip-softmax/flash-skip-cpu.js';

const { values } = parseArgs({
  options: {
    lengths: { type: 'string', default: '4096,32768' }, br: { type: 'string', default: '128,64' }, thresholds: { type: 'string', default: '1e-30,0.05' },
    bumps: { type: 'string', default: '0.1,0.5' }, kernels: { type: 'string', default: 'tc,tc-late,portable' }, reps: { type: 'string', default: '3' }, out: { type: 'string' }, emulate: { type: 'boolean', default: false },
  },
});
const ctx = await createWebGpuContext();
const emulate = values.emulate!;
if (!emulate && !hasTensorCores(ctx.device)) throw new Error(`adapter "${ctx.report.description}" has no f16→f32 subgroup matrices (--emulate runs a smoke test)`);
const tensorCore = emulate ? { emulate: true, keyTile: 16 } as const : {};
/** tc: votes before the softmax (voteFirst, the default); tc-late: the softmax on every tile before the vote. */
const KERNELS = {
  tc: { kernel: 'tensor-core', tensorCore },
  'tc-late': { kernel: 'tensor-core', tensorCore: { ...tensorCore, voteFirst: false } },
  portable: { kernel: 'portable', tensorCore },
} as const;
const kernels = values.kernels!.split(',').map((name) => {
  if (!(name in KERNELS)) throw new Error(`--kernels: unknown ${name} (${Object.keys(KERNELS).join(', ')})`);
  return name as keyof typeof KERNELS;
});
const { device } = ctx;
const [H, Hkv, D, BC] = emulate ? [4, 2, 128, 128] : [32, 8, 128, 128];
const scale = 1 / Math.sqrt(D);

function peaked(L: number, heads: number, kvHeads: number, bumps: number, seed: number) {
  const t = peakedQKV({ heads, kvHeads, length: L, headDim: D, seed, blockSize: BC, bumps });
  return { q: t.q.toDType('f16'), k: t.k.toDType('f16'), v: t.v.toDType('f16') };
}

const validation: unknown[] = [];
const rows: unknown[] = [];
const date = new Date();
const brs = values.br!.split(',').map(Number);
for (const br of brs) {
  const { q, k, v } = peaked(1024, 4, 2, 0.5, 11);
  const opts = { causal: true, scale, threshold: 0.05, br, bc: BC };
  const cpu = flashSkipAttention(q, k, v, opts);
  for (const name of kernels) {
    const got = await flashSkipAttentionWebGpu(ctx, q, k, v, { ...opts, ...KERNELS[name] });
    const sameKept = JSON.stringify([...got.kept.colIdx]) === JSON.stringify([...cpu.kept.colIdx]) && got.skippedTiles === cpu.skippedTiles;
    if (!sameKept) throw new Error(`br ${br} ${name}: kept blocks differ from the CPU's`);
    const check = checkOutput(`flash-skip ${name} br ${br}`, got.output, cpu.output, 3e-3);
    validation.push({ br, kernel: name, skipped: got.skippedTiles, visited: got.visitedTiles, relativeL2: check.relativeL2 });
    console.error(JSON.stringify(validation.at(-1)));
  }
}
for (const L of values.lengths!.split(',').map(Number)) {
  const flops = attentionFlops({ batch: 1, heads: H, queryLength: L, keyLength: L, headDim: D, causal: true });
  for (const bumps of values.bumps!.split(',').map(Number)) {
    const t0 = performance.now();
    const inputs = peaked(L, H, Hkv, bumps, 5);
    const views = {
      q: uploadTensor(device, inputs.q, 'fstc.q'), k: uploadTensor(device, inputs.k, 'fstc.k'), v: uploadTensor(device, inputs.v, 'fstc.v'),
      o: createOutputTensor(device, { batch: 1, heads: H, length: L, headDim: D }, 'BHLD', 'f16', 'fstc.o'),
    };
    console.error(`L=${L} bumps ${bumps}: inputs in ${(performance.now() - t0).toFixed(0)} ms`);
    const runs = timerRuns(ctx, Number(values.reps));
    const dense = await timeOnDevice(device, (encoder) => encodeAttention(device, encoder, views, { causal: true, scale, blocks: { kind: 'all' }, kernel: 'tensor-core', tensorCore: emulate ? { ...tensorCore, subgroups: 2 } : {} }), runs);
    rows.push({ L, bumps, kernel: 'dense', ms: dense.ms, tflops: tflopsOf(flops, dense.ms), minMs: dense.minMs });
    console.error(JSON.stringify(rows.at(-1)));
    for (const br of brs)
      for (const threshold of values.thresholds!.split(',').map(Number))
        for (const name of kernels) {
          const keptBytes = H * Math.ceil(L / br) * Math.ceil(L / BC) * 4;
          // One run's buffers: the kept flags, the counters, and the Params uniform.
          const run = async (encoder: GPUCommandEncoder) => {
            const kept = createStorageBuffer(device, keptBytes, 'fstc.kept');
            const counters = createStorageBuffer(device, 12, 'fstc.counters');
            const params = await encodeFlashSkipAttention(device, encoder, views, { causal: true, scale, threshold, br, bc: BC, kept, counters, ...KERNELS[name] });
            return [kept, counters, params];
          };
          // One run for the counters: the share of visited blocks kept.
          const encoder = device.createCommandEncoder();
          const once = await run(encoder);
          device.queue.submit([encoder.finish()]);
          const [visited, skipped] = new Uint32Array(await readBuffer(device, once[1], 12));
          for (const b of once) b.destroy();
          const t = await timeOnDevice(device, run, runs);
          const density = (visited - skipped) / visited;
          rows.push({
            L, bumps, kernel: `flash-skip ${name}`, br, threshold, density, ms: t.ms, minMs: t.minMs, ofDense: dense.ms / t.ms,
            ofDensePerDensity: (dense.ms / t.ms) * density, ...(t.kernelMs ? { kernelMs: t.kernelMs } : {}),
          });
          console.error(JSON.stringify(rows.at(-1)));
        }
    for (const t of Object.values(views)) t.buffer.destroy();
  }
}
const report = scriptReport('flash-skip-tensor-core', webgpuDeviceInfo(ctx.report), {
  flopRule: 'dense causal 4·B·H·L²·D/2', timing: 'gpu-fence: median of --reps runs on device-resident inputs, after the warm-up (src/bench/gpu-timing.ts)',
  shape: { batch: 1, heads: H, kvHeads: Hkv, headDim: D, bc: BC, causal: true, dtype: 'f16' }, ...(emulate ? { emulated: true } : {}),
  readme: 'ofDense: dense ms / flash-skip ms; ofDensePerDensity: that times the kept share (1 = the dense rate on kept blocks)',
  validation, rows,
}, date);
ctx.destroy();
emitReport(report, { out: values.out });
