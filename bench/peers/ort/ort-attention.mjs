#!/usr/bin/env node
/**
 * ONNX Runtime's WebGPU execution provider as a benchmark peer: one attention node
 * (com.microsoft GroupQueryAttention for causal, MultiHeadAttention for non-causal), validated
 * against our CPU reference on a small shape, then timed over a length sweep.
 *
 *   node bench/peers/ort/ort-attention.mjs --lengths 4096,8192 --kv-heads 32,8 --out ort.json
 *
 * Two timings per shape:
 *   wallMs   session.run() awaited (fenced: outputs are on the CPU), median of the timed runs.
 *            Includes uploading Q/K/V and reading back output + present K/V (the node binding
 *            has no GPU-resident IO binding), so at long lengths it is mostly PCIe traffic.
 *   kernelMs the sum of the EP's GPU kernel durations per run, from ORT's profiler, which on the
 *            WebGPU EP reads timestamp queries around every dispatch. This is the figure to
 *            compare with SDPA's CUDA-event time.
 * `--ep cpu` runs the same model on ORT's CPU kernels: a check of the hand-encoded model anywhere.
 * Needs: `npm ci --onnxruntime-node-install=skip` in this folder, and the project's dist/ built.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { HeadTensor, toF16Bits, fromF16Bits } from '../../../dist/src/index.js';
import { naiveAttention } from '../../../dist/src/backends/cpu/reference.js';
import { attentionModel } from './onnx-model.mjs';

const { values: a } = parseArgs({
  options: {
    lengths: { type: 'string', default: '1024,4096' },
    'non-causal-lengths': { type: 'string', default: '' },
    heads: { type: 'string', default: '32' },
    'kv-heads': { type: 'string', default: '32,8' },
    'head-dim': { type: 'string', default: '128' },
    dtype: { type: 'string', default: 'float16' },
    'budget-s': { type: 'string', default: '120' },
    'min-runs': { type: 'string', default: '2' },
    out: { type: 'string' },
    // Time a case whose validation failed (the record keeps passed: false); for diagnosis only.
    'time-unvalidated': { type: 'boolean', default: false },
    'f32-if-no-f16': { type: 'boolean', default: false },
    // 'cpu' checks the hand-encoded model on ORT's own CPU kernels (any machine, no GPU).
    ep: { type: 'string', default: 'webgpu' },
    'warmup-length': { type: 'string', default: '0' },
  },
});
const ints = (s) => s.split(',').filter(Boolean).map((x) => {
  const n = Number(x);
  if (!Number.isInteger(n) || n < 1) throw new Error(`expected positive integers, got ${JSON.stringify(x)}`);
  return n;
});
const H = Number(a.heads);
const D = Number(a['head-dim']);
const budgetMs = Number(a['budget-s']) * 1000;
const started = performance.now();

const flops = (L, heads, causal) => (4 * heads * L * L * D) / (causal ? 2 : 1);

function sessionOptions(profilePrefix) {
  return {
    executionProviders: [a.ep],
    graphOptimizationLevel: 'disabled',
    // Fail instead of silently running the node on the CPU EP.
    ...(a.ep === 'cpu' ? {} : { extra: { session: { disable_cpu_ep_fallback: '1' } } }),
    ...(profilePrefix ? { enableProfiling: true, profileFilePrefix: profilePrefix } : {}),
  };
}

/** Q/K/V as ORT tensors in BSNH-packed layout, from BLHD head tensors. */
function feedsFrom(q, k, v, dtype, op) {
  const L = q.length;
  const tensorOf = (t, name) => {
    const f32 = t.toLayout('BLHD').toFloat32Array();
    const data = dtype === 'float16' ? toF16Bits(f32) : Float32Array.from(f32);
    return [name, new ort.Tensor(dtype, data, [1, L, t.heads * t.headDim])];
  };
  const feeds = Object.fromEntries([tensorOf(q, 'query'), tensorOf(k, 'key'), tensorOf(v, 'value')]);
  if (op === 'GroupQueryAttention') {
    feeds.seqlens_k = new ort.Tensor('int32', Int32Array.of(L - 1), [1]);
    feeds.total_sequence_length = new ort.Tensor('int32', Int32Array.of(L), []);
  }
  return feeds;
}

/**
 * Timing inputs: a random pattern tiled by doubling copies (values do not change the work, and an
 * element-wise RNG or f16 conversion over 1 GiB would take longer than the run).
 */
function tiled(n, dtype, seed) {
  const patternF32 = HeadTensor.randn({ batch: 1, heads: 1, length: 1, headDim: 65521 }, seed).toFloat32Array();
  const pattern = dtype === 'float16' ? toF16Bits(patternF32) : patternF32;
  const out = dtype === 'float16' ? new Uint16Array(n) : new Float32Array(n);
  out.set(pattern.subarray(0, Math.min(n, pattern.length)));
  for (let filled = Math.min(n, pattern.length); filled < n; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, n - filled));
  return out;
}

function timingFeeds(L, kvHeads, dtype, op) {
  const feeds = {
    query: new ort.Tensor(dtype, tiled(L * H * D, dtype, 1), [1, L, H * D]),
    key: new ort.Tensor(dtype, tiled(L * kvHeads * D, dtype, 2), [1, L, kvHeads * D]),
    value: new ort.Tensor(dtype, tiled(L * kvHeads * D, dtype, 3), [1, L, kvHeads * D]),
  };
  if (op === 'GroupQueryAttention') {
    feeds.seqlens_k = new ort.Tensor('int32', Int32Array.of(L - 1), [1]);
    feeds.total_sequence_length = new ort.Tensor('int32', Int32Array.of(L), []);
  }
  return feeds;
}

/** The EP's per-kernel GPU events (they carry a cache_key arg) from ORT's profile JSON. */
function kernelEvents(file) {
  const events = JSON.parse(readFileSync(file, 'utf8'));
  return events.filter((e) => e.args && 'cache_key' in e.args).sort((x, y) => x.ts - y.ts);
}

async function validate(cfg) {
  const L = 67; // not a multiple of any tile
  const heads = 4;
  const kvHeads = cfg.kvHeads === H ? heads : 2;
  const q = HeadTensor.randn({ batch: 1, heads, length: L, headDim: D }, 11, { layout: 'BLHD' });
  const k = HeadTensor.randn({ batch: 1, heads: kvHeads, length: L, headDim: D }, 12, { layout: 'BLHD' });
  const v = HeadTensor.randn({ batch: 1, heads: kvHeads, length: L, headDim: D }, 13, { layout: 'BLHD' });
  const model = attentionModel({ op: cfg.op, heads, kvHeads, headDim: D, dtype: cfg.dtype });
  const session = await ort.InferenceSession.create(model, sessionOptions());
  try {
    const out = await session.run(feedsFrom(q, k, v, cfg.dtype, cfg.op));
    const got = out.output.data instanceof Uint16Array ? fromF16Bits(out.output.data) : out.output.data;
    // Reference on the same rounded inputs the GPU saw.
    const round = (t) => (cfg.dtype === 'float16' ? t.toDType('f16').toDType('f32') : t);
    const want = naiveAttention(round(q), round(k), round(v), { causal: cfg.causal }).toLayout('BLHD').toFloat32Array();
    let maxAbs = 0;
    for (let i = 0; i < want.length; i++) maxAbs = Math.max(maxAbs, Math.abs(got[i] - want[i]));
    if (!Number.isFinite(maxAbs)) maxAbs = Infinity;
    const tol = cfg.dtype === 'float16' ? 1e-2 : 1e-4;
    return { shape: { heads, kvHeads, length: L, headDim: D }, maxAbsError: maxAbs, tolerance: tol, passed: maxAbs <= tol };
  } finally {
    await session.release();
  }
}

async function timeShape(cfg, L) {
  const dir = mkdtempSync(join(tmpdir(), 'ort-prof-'));
  const model = attentionModel({ op: cfg.op, heads: H, kvHeads: cfg.kvHeads, headDim: D, dtype: cfg.dtype });
  const session = await ort.InferenceSession.create(model, sessionOptions(join(dir, 'p')));
  const feeds = timingFeeds(L, cfg.kvHeads, cfg.dtype, cfg.op);
  try {
    // Warm-up (pipeline compilation, buffer pools) in an unprofiled session: the EP's program cache
    // is per device, so the timed session finds compiled pipelines and its profile holds only timed
    // runs. Shapes are uniforms, so a short warm-up (--warmup-length) warms the same pipelines.
    const wl = Number(a['warmup-length']);
    const warm = await ort.InferenceSession.create(model, sessionOptions());
    try {
      await warm.run(wl > 0 && wl < L ? timingFeeds(wl, cfg.kvHeads, cfg.dtype, cfg.op) : feeds);
    } finally {
      await warm.release();
    }
    const walls = [];
    const t0 = performance.now();
    const minRuns = Number(a['min-runs']);
    while (walls.length < minRuns || (walls.length < 10 && performance.now() - t0 < 2000)) {
      const t = performance.now();
      await session.run(feeds);
      walls.push(performance.now() - t);
    }
    session.endProfiling();
    const file = readdirSync(dir).map((f) => join(dir, f)).find((f) => f.endsWith('.json'));
    const ev = file ? kernelEvents(file) : [];
    const runs = walls.length;
    let kernelMs = null;
    let attentionKernelMs = null;
    const kernels = {};
    if (ev.length > 0 && ev.length % runs === 0) {
      for (const e of ev) {
        const name = e.name.split('&').slice(-1)[0]; // "<node>&<op>&<program>" -> program
        kernels[name] = (kernels[name] ?? 0) + e.dur / 1000 / walls.length;
      }
      kernelMs = Object.values(kernels).reduce((x, y) => x + y, 0);
      // CopyKVCache writes present K/V, which SDPA has no counterpart for: also report without it.
      attentionKernelMs = Object.entries(kernels).filter(([n]) => !/Copy/i.test(n)).reduce((x, [, ms]) => x + ms, 0);
    }
    walls.sort((x, y) => x - y);
    const wallMs = walls[Math.floor(walls.length / 2)];
    const f = flops(L, H, cfg.causal);
    return {
      length: L, runs: walls.length, wallMs, kernelMs, attentionKernelMs, kernels,
      wallTflops: f / (wallMs * 1e9), kernelTflops: kernelMs ? f / (kernelMs * 1e9) : null,
      attentionKernelTflops: attentionKernelMs ? f / (attentionKernelMs * 1e9) : null, flops: f,
      profileNote: ev.length % runs === 0 ? undefined : `profile had ${ev.length} kernel events for ${runs} runs; kernel time not attributed`,
    };
  } finally {
    await session.release();
    rmSync(dir, { recursive: true, force: true });
  }
}

const configs = [];
for (const dtype of a.dtype.split(',')) {
  for (const kvHeads of ints(a['kv-heads'])) configs.push({ op: 'GroupQueryAttention', kvHeads, dtype, causal: true, lengths: ints(a.lengths) });
  const nc = ints(a['non-causal-lengths']);
  if (nc.length) configs.push({ op: 'MultiHeadAttention', kvHeads: H, dtype, causal: false, lengths: nc });
}

async function runConfig(cfg, deadline) {
  const entry = { op: cfg.op, heads: H, kvHeads: cfg.kvHeads, headDim: D, dtype: cfg.dtype, causal: cfg.causal, validation: null, shapes: [], skipped: [] };
  try {
    entry.validation = await validate(cfg);
  } catch (err) {
    entry.validation = { passed: false, error: String(err.message ?? err).slice(0, 500) };
  }
  console.error(`${cfg.op} H=${H}/${cfg.kvHeads} ${cfg.dtype} causal=${cfg.causal}: validation ${JSON.stringify(entry.validation)}`);
  // Never report a kernel that computes the wrong thing as a figure; --time-unvalidated times it
  // anyway for diagnosis, and the record keeps validation.passed = false beside the figures.
  if (!entry.validation.passed && !(a['time-unvalidated'] && entry.validation.maxAbsError !== undefined)) return entry;
  let lastTotal = 0;
  for (const L of cfg.lengths) {
    const left = deadline - performance.now();
    // A doubling costs ~4x the GPU time and 2x the copies; a shape expected to overrun is skipped.
    if (left <= 0 || lastTotal * 3.5 > left) {
      entry.skipped.push({ length: L, reason: `time budget (${(Math.max(0, left) / 1000).toFixed(0)} s left for this case)` });
      continue;
    }
    const t = performance.now();
    try {
      const r = await timeShape(cfg, L);
      entry.shapes.push(r);
      console.error(`  L=${L}: wall ${r.wallMs.toFixed(1)} ms (${r.wallTflops.toFixed(2)} TFLOP/s), kernels ${r.kernelMs?.toFixed(1) ?? '-'} ms (${r.kernelTflops?.toFixed(2) ?? '-'} TFLOP/s) ${JSON.stringify(r.kernels)}`);
    } catch (err) {
      entry.skipped.push({ length: L, reason: String(err.message ?? err).slice(0, 300) });
      console.error(`  L=${L}: failed: ${err.message ?? err}`);
    }
    lastTotal = performance.now() - t;
  }
  return entry;
}

const results = [];
const queue = [...configs];
while (queue.length > 0) {
  const cfg = queue.shift();
  // Each remaining case gets an equal share of what is left, so later cases are not starved.
  const share = (budgetMs - (performance.now() - started)) / (queue.length + 1);
  const entry = await runConfig(cfg, performance.now() + share);
  results.push(entry);
  // No shader-f16 on the adapter (Dawn hides it on NVIDIA unless a toggle ORT does not set):
  // the f16 session cannot be placed on the EP, so measure the same case in f32 instead.
  if (a['f32-if-no-f16'] && cfg.dtype === 'float16' && entry.validation.error) queue.unshift({ ...cfg, dtype: 'float32' });
}

const report = {
  peer: a.ep === 'webgpu' ? 'onnxruntime-node WebGPU EP' : `onnxruntime-node ${a.ep} EP`,
  onnxruntimeVersion: ort.env.versions?.common ?? null,
  date: new Date().toISOString(),
  flopRule: '4·B·H·Lq·Lk·D, halved when causal',
  note: 'wallMs includes host<->device copies of Q/K/V/output/present K,V; kernelMs is GPU time from timestamp queries (ORT profiler)',
  results,
};
const json = JSON.stringify(report, null, 2);
if (a.out) writeFileSync(a.out, json);
else console.log(json);
