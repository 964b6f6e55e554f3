/**
 * The engine's WebGPU paged attention with its KV cache resident on the GPU, against the path it
 * replaced (each paged call uploaded the layer's whole K and V cache, and XAttention's planning
 * uploaded the gathered keys). Runs one prompt through the engine (synthetic model) per mode and
 * path, times every paged-attention call and mask plan on the host (wall ms, output read back
 * included: what the engine waits for), counts the bytes each step moves host → GPU, checks the
 * two paths give the same chunk records and outputs, and writes JSON:
 *
 *   npm run build && node dist/bench/engine-resident-kv.js [--prompt 2048] [--chunk 256] [--num-kv-blocks 512] [--modes dense,xattention] [--kv-dtype f32|f16] [--out f.json]
 *
 * --kv-dtype f16 keeps the resident cache (and so its attention) in f16; the upload path stays f32,
 * so outputs then agree within f16 rounding and XAttention's masks may differ on borderline blocks.
 *
 * The upload path moves 2 · numKvBlocks · Hkv · blockSize · D · 4 bytes per call, whatever the
 * sequence's length: the cost grows with the cache, not with the work. FLOPs per call: causal
 * 4 · H · D · (visible key, query) pairs of a dense chunk (effective TFLOP/s for sparse chunks).
 */
import { gpuTraffic } from '../src/bench/gpu-traffic.js';
import { parseArgs } from 'node:util';
import type { AttentionBackend, MethodHooks } from '../src/backends/backend.js';
import { pagedAttentionOnWebGpu } from '../src/backends/webgpu/attention/paged-backend.js';
import { createWebGpuBackend, createWebGpuContext, type WebGpuContext } from '../src/backends/webgpu/index.js';
import { webgpuDeviceInfo } from '../src/bench/device-info.js';
import { emitReport, scriptReport } from '../src/bench/report.js';
import { defaultResultPath } from '../src/bench/results.js';
import { Engine } from '../src/engine/engine.js';
import { syntheticModel } from '../src/engine/synthetic-model.js';

const { values } = parseArgs({
  options: {
    prompt: { type: 'string', default: '2048' }, chunk: { type: 'string', default: '256' }, 'num-kv-blocks': { type: 'string', default: '512' },
    modes: { type: 'string', default: 'dense,xattention' }, 'kv-dtype': { type: 'string', default: 'f32' }, out: { type: 'string' },
  },
});
const [LAYERS, H, HKV, D, BS] = [2, 8, 2, 64, 32] as const;
const prompt = Number(values.prompt);
const numKvBlocks = Number(values['num-kv-blocks']);
const kvDtype = values['kv-dtype'] === 'f16' ? 'f16' : 'f32';
const model = syntheticModel({ numLayers: LAYERS, heads: H, kvHeads: HKV, headDim: D, seed: 1 });
const XATTENTION = { mode: 'XATTENTION', xattentionThreshold: 0.9, xattentionBlockSize: BS, xattentionStride: 8, numLastDenseTokensInPrefill: 2 * BS } as const;

interface Timings { callMs: number[]; planMs: number[]; flops: number; uploadedPerStep: number[] }

const median = (xs: number[]) => (xs.length === 0 ? 0 : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);

/** The backend with each paged call and plan timed on the host; `upload` takes the pre-resident path. */
function timedBackend(ctx: WebGpuContext, upload: boolean, t: Timings): AttentionBackend {
  const base = createWebGpuBackend(ctx, { kvCacheDtype: kvDtype });
  const time = async <R>(into: number[], fn: () => Promise<R>): Promise<R> => {
    const t0 = performance.now();
    const r = await fn();
    into.push(performance.now() - t0);
    return r;
  };
  return {
    ...base,
    async pagedAttention(input) {
      const n = input.q.length;
      const visible = input.visibleBlocks.reduce((a, b) => a + Math.max(0, Math.min(BS, input.contextLength - b * BS)), 0);
      t.flops += 4 * H * D * (n * (visible - n) + (n * (n + 1)) / 2);
      return time(t.callMs, () => (upload ? pagedAttentionOnWebGpu(ctx, input, { upload: true }) : base.pagedAttention(input)));
    },
    methodHooks(method) {
      const h = base.methodHooks?.(method);
      if (!h?.plan) return h;
      const plan = h.plan;
      const hooks: MethodHooks = { plan: (q, k, opts) => time(t.planMs, () => plan(q, k, opts)) };
      const planPaged = h.planPaged;
      if (!upload && planPaged) hooks.planPaged = (q, keys, opts) => time(t.planMs, () => planPaged(q, keys, opts));
      return hooks;
    },
  };
}

/** Bytes moved host → GPU (queue.writeBuffer, buffers created mapped) while `fn` runs. */
async function uploaded(device: GPUDevice, fn: () => Promise<unknown>): Promise<number> {
  const t = await gpuTraffic(device, fn);
  return t.written + t.uploaded;
}

const ctx = await createWebGpuContext();
const device = webgpuDeviceInfo(ctx.report);
const rows: Record<string, unknown>[] = [];
const checks: Record<string, unknown>[] = [];
for (const mode of values.modes!.split(',')) {
  const config = {
    maxNumBatchedTokens: Number(values.chunk), numKvBlocks, kvBlockSize: BS,
    ...(mode === 'xattention' ? { useSparseAttention: true, sparseAttentionConfig: XATTENTION } : {}),
  };
  const engines: Engine[] = [];
  for (const path of ['resident', 'upload'] as const) {
    const t: Timings = { callMs: [], planMs: [], flops: 0, uploadedPerStep: [] };
    const engine = new Engine({ model, config, backend: timedBackend(ctx, path === 'upload', t) });
    engine.addRequest({ id: 0, promptLength: prompt, decodeTokens: 0 });
    // One untimed run first compiles the pipelines; the timed run is a fresh engine.
    if (engines.length === 0 && path === 'resident') {
      const warm = new Engine({ model, config, backend: createWebGpuBackend(ctx, { kvCacheDtype: kvDtype }) });
      warm.addRequest({ id: 0, promptLength: prompt });
      await warm.run();
      warm.dispose();
    }
    const t0 = performance.now();
    while (!engine.done) t.uploadedPerStep.push(await uploaded(ctx.device, () => engine.step()));
    const runMs = performance.now() - t0;
    const attentionMs = t.callMs.reduce((a, b) => a + b, 0);
    const row = {
      mode, path, calls: t.callMs.length, medianCallMs: +median(t.callMs).toFixed(3), attentionMs: +attentionMs.toFixed(1),
      planCalls: t.planMs.length, medianPlanMs: +median(t.planMs).toFixed(3), runMs: +runMs.toFixed(1),
      medianUploadedBytesPerStep: median(t.uploadedPerStep), attentionTflops: +(t.flops / (attentionMs * 1e9)).toFixed(4),
      sparsity: +engine.stats(0).prefillSparsity.toFixed(4),
    };
    console.error(JSON.stringify(row));
    rows.push(row);
    engines.push(engine);
  }
  const [resident, upload] = engines;
  const records = (e: Engine) => JSON.stringify(e.stats(0).chunks);
  let maxAbsDiff = 0;
  for (let l = 0; l < LAYERS; l++) {
    const [a, b] = [resident.output(0, l).toFloat32Array(), upload.output(0, l).toFloat32Array()];
    for (let i = 0; i < a.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i] - b[i]));
  }
  const recordsEqual = records(resident) === records(upload);
  if (kvDtype === 'f32' && (!recordsEqual || !(maxAbsDiff < 1e-4))) throw new Error(`${mode}: the two paths differ (records equal: ${recordsEqual}, max |diff| ${maxAbsDiff})`);
  checks.push({ mode, kvDtype, chunkRecordsEqual: recordsEqual, maxAbsDiff });
  for (const e of engines) e.dispose();
}
const report = scriptReport('engine-resident-kv', device, {
  timing: 'host wall ms per paged-attention call (and per mask plan), output read back included; medians over the run',
  flopRule: 'attention: 4·H·D·(visible causal key, query pairs of the chunk), dense-equivalent for sparse chunks',
  ceiling: null, peers: [],
  shape: { numLayers: LAYERS, heads: H, kvHeads: HKV, headDim: D, blockSize: BS, numKvBlocks, promptLength: prompt, chunk: Number(values.chunk), dtype: 'f32', residentKvDtype: kvDtype },
  cacheLayerBytes: numKvBlocks * HKV * BS * D * (kvDtype === 'f32' ? 4 : 2), xattention: XATTENTION, checks, rows,
});
ctx.destroy();
emitReport(report, { out: values.out ?? defaultResultPath('engine-resident-kv.json', device), print: false });
