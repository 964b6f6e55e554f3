#!/usr/bin/env node
/**
 * Time to first token of a whole Llama prefill on ONNX Runtime (the engine transformers.js runs
 * on), the peer of `sparse-attn ttft`: the checkpoint becomes one ONNX graph (llama-graph.mjs:
 * GroupQueryAttention with RoPE inside, fused residual + RMSNorm, LM head on the last position),
 * then `session.run` is timed on a prompt of each length (the same random token ids as ttft's,
 * so the first tokens can be compared too).
 *
 *   node bench/peers/ort/ort-llama.mjs --model DIR --lengths 4096,32768 --ep webgpu --out ttft-ort.json
 *   node bench/peers/ort/ort-llama.mjs --model test/fixtures/bytes-llama-dev --check --lengths '' --ep cpu
 *
 * --check first compares the last position's logits (and every layer's present K, i.e. RoPE'd
 * keys) with our CPU forward pass (LlamaModel) on a --check-length prompt, and exits 1 when they
 * differ beyond the dtype's tolerance or the top-1 token disagrees.
 * Timing: one warm-up run (pipeline compilation), then runs until --reps or the length's share of
 * --budget-s; the median is the figure. Only `logits` is fetched, as our runner reads back only the
 * first token's logits; inputs are 8 bytes a token. One more run per length in a profiled session
 * splits ORT's GPU kernel time (WebGPU timestamp queries) into attention (GroupQueryAttention) and
 * the rest, like ttft's attentionMs / restMs.
 * Needs: `npm ci --onnxruntime-node-install=skip` in this folder, and the project's dist/ built.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { argmax, fromF16Bits, LlamaModel } from '../../../dist/src/index.js';
import { parseLengths } from '../../../dist/src/bench/ttft.js';
import { buildLlamaOnnx } from './llama-graph.mjs';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    lengths: { type: 'string', default: '4096,32768' },
    ep: { type: 'string', default: 'webgpu' },
    dtype: { type: 'string', default: 'f16' },
    'f32-if-no-f16': { type: 'boolean', default: false },
    reps: { type: 'string', default: '5' },
    'budget-s': { type: 'string', default: '300' },
    seed: { type: 'string', default: '1' },
    check: { type: 'boolean', default: false },
    'check-length': { type: 'string', default: '67' },
    // Time even when --check failed (the report keeps check.passed: false); for diagnosis only.
    'time-unvalidated': { type: 'boolean', default: false },
    'no-profile': { type: 'boolean', default: false },
    'opt-level': { type: 'string', default: 'all' },
    'onnx-dir': { type: 'string' },
    out: { type: 'string' },
  },
});
if (!a.model) throw new Error('--model DIR is required (a Hugging Face Llama checkpoint folder)');
if (!['f16', 'f32'].includes(a.dtype)) throw new Error(`--dtype must be f16 or f32, got ${a.dtype}`);
const lengths = a.lengths.trim() ? parseLengths(a.lengths) : [];
const checkLength = Number(a['check-length']);
const reps = Number(a.reps);
const budgetMs = Number(a['budget-s']) * 1000;
const started = performance.now();
const say = (s) => console.error(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${s}`);

/** ttft's prompt: the same generator and seed (seed + length), so both runs see the same ids. */
function prompt(length, vocab, seed) {
  let s = (seed + length) >>> 0;
  return Array.from({ length }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % vocab);
}

function feeds(ids) {
  const L = ids.length;
  return {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, L]),
    seqlens_k: new ort.Tensor('int32', Int32Array.of(L - 1), [1]),
    total_sequence_length: new ort.Tensor('int32', Int32Array.of(L), []),
  };
}

function sessionOptions(profilePrefix) {
  return {
    executionProviders: [a.ep],
    graphOptimizationLevel: a['opt-level'],
    // Fail instead of silently running nodes on the CPU EP.
    ...(a.ep === 'cpu' ? {} : { extra: { session: { disable_cpu_ep_fallback: '1' } } }),
    ...(profilePrefix ? { enableProfiling: true, profileFilePrefix: profilePrefix } : {}),
  };
}

const f32Of = (t) => (t.data instanceof Uint16Array ? fromF16Bits(t.data) : Float32Array.from(t.data));
const maxAbs = (x) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** ORT's last-position logits and present K against LlamaModel's on the same prompt. */
async function check(session, built, dtype) {
  const c = built.config;
  const ids = prompt(checkLength, c.vocabSize, 7);
  const ref = LlamaModel.load(a.model);
  const cache = ref.newCache(ids.length);
  const want = (await ref.forward(ids, cache)).logits;
  const out = await session.run(feeds(ids));
  const got = f32Of(out.logits);
  let dLogit = 0;
  for (let i = 0; i < want.length; i++) dLogit = Math.max(dLogit, Math.abs(got[i] - want[i]));
  if (!Number.isFinite(maxAbs(got))) dLogit = Infinity;
  let keyScale = 0;
  const dKeyPerLayer = [];
  for (let l = 0; l < c.numLayers; l++) {
    const k = cache.view(l, ids.length).k.toLayout('BHLD').toFloat32Array();
    const pk = f32Of(out[`present_key.${l}`]);
    keyScale = Math.max(keyScale, maxAbs(k));
    let d = 0;
    for (let i = 0; i < k.length; i++) d = Math.max(d, Math.abs(pk[i] - k[i]));
    dKeyPerLayer.push(Number.isNaN(d) ? Infinity : d);
  }
  const dKey = Math.max(...dKeyPerLayer);
  // f32: only the summation order differs. f16: one f16 rounding unit (2^-11) times √K of the
  // longest sum, of the largest magnitude: what sums rounded to f16 at every step drift by (ORT's
  // WebGPU EP in f16 was off by 1.2% of the logit scale on bytes-llama-dev, K = 1536, and 2.7% on
  // a 2-layer llama-1b shape, K = 8192: bounds 1.9% and 4.4%; its CPU EP 0.04%). A wrong RoPE
  // pairing or attention window moved the logits by 40-70% of their scale.
  const logitScale = maxAbs(want);
  const f16Rel = 2 ** -11 * Math.sqrt(Math.max(c.hiddenSize, c.intermediateSize));
  const bound = (scale) => (dtype === 'float16' ? f16Rel * scale : 1e-4 * Math.max(1, scale));
  const tolLogit = bound(logitScale);
  const top = argmax(want, c.vocabSize);
  const gotTop = argmax(got, c.vocabSize);
  // ORT may pick another token only where the reference itself has a near tie.
  const top1Agrees = gotTop === top || want[top] - want[gotTop] <= 2 * tolLogit;
  const runnerUp = want.reduce((best, v, i) => (i !== top && v > best ? v : best), -Infinity);
  const result = {
    length: ids.length, maxAbsLogitDiff: dLogit, logitScale, tolerance: tolLogit, top1: top, ortTop1: gotTop, top1Agrees, referenceTop2Margin: want[top] - runnerUp,
    maxAbsPresentKeyDiff: dKey, maxAbsPresentKeyDiffPerLayer: dKeyPerLayer, presentKeyScale: keyScale, keyTolerance: bound(keyScale),
  };
  result.passed = dLogit <= tolLogit && top1Agrees && dKey <= result.keyTolerance;
  return result;
}

/** Adapter report from a child process: our Dawn and ORT's own in one process could clash. */
function deviceInfo() {
  const info = {};
  const smi = spawnSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total,clocks.max.sm', '--format=csv,noheader'], { encoding: 'utf8' });
  if (smi.status === 0) info.nvidiaSmi = smi.stdout.trim();
  if (a.ep !== 'webgpu') return info;
  const root = new URL('../../../dist/src/', import.meta.url).href;
  const code = `const w = await import('${root}backends/webgpu/index.js'); const d = await import('${root}bench/device-info.js');
    const ctx = await w.defaultWebGpuContext(); console.log(JSON.stringify(d.webgpuDeviceInfo(ctx.report))); await w.releaseDefaultWebGpuContext(); process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 120000 });
  try {
    // The adapter ORT's Dawn picks is the default one, as ours: the report is the same GPU's.
    info.adapter = JSON.parse(r.stdout.trim().split('\n').pop());
    delete info.adapter.limits;
  } catch {
    info.adapterError = (r.stderr || r.error?.message || 'no output').slice(0, 300);
  }
  return info;
}

/** GPU ms per op type of one run, from ORT's profile (kernel events carry the node name). */
async function profiledRun(modelPath, ids) {
  const dir = mkdtempSync(join(tmpdir(), 'ort-llama-prof-'));
  const session = await ort.InferenceSession.create(modelPath, sessionOptions(join(dir, 'p')));
  try {
    await session.run(feeds(ids), ['logits']);
    session.endProfiling();
    const file = readdirSync(dir).map((f) => join(dir, f)).find((f) => f.endsWith('.json'));
    const events = file ? JSON.parse(readFileSync(file, 'utf8')).filter((e) => e.args && 'cache_key' in e.args) : [];
    if (events.length === 0) return { profileNote: 'no GPU kernel events in the profile' };
    const byOp = {};
    for (const e of events) {
      // "<node>&<op>&<program>"; our node names are "<OpType>_<index>", ORT's fusions
      // "<first node>/<Name>Fusion/" (Sigmoid + Mul becomes QuickGelu with alpha 1, i.e. SiLU).
      const nodeName = e.name.split('&')[0];
      const op = /\/(\w+)Fusion\//.exec(nodeName)?.[1] ?? (nodeName.replace(/_\d+$/, '') || 'unknown');
      byOp[op] = (byOp[op] ?? 0) + e.dur / 1000;
    }
    const attentionMs = byOp.GroupQueryAttention ?? 0;
    const total = Object.values(byOp).reduce((x, y) => x + y, 0);
    return { attentionMs, restMs: total - attentionMs, kernelMs: byOp, kernelEvents: events.length };
  } finally {
    await session.release();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function timeLength(session, modelPath, L, vocab, deadline) {
  const ids = prompt(L, vocab, Number(a.seed));
  const f = feeds(ids);
  const row = { length: L, method: 'dense', engine: `onnxruntime-${a.ep}`, settings: {}, ms: [], medianMs: NaN };
  let t = performance.now();
  let out = await session.run(f, ['logits']);
  row.warmupMs = performance.now() - t;
  say(`L=${L}: warm-up ${row.warmupMs.toFixed(0)} ms`);
  while (row.ms.length < 1 || (row.ms.length < reps && performance.now() + row.ms[row.ms.length - 1] < deadline)) {
    t = performance.now();
    out = await session.run(f, ['logits']);
    row.ms.push(performance.now() - t);
  }
  row.medianMs = [...row.ms].sort((x, y) => x - y)[Math.floor(row.ms.length / 2)];
  row.firstToken = argmax(f32Of(out.logits), vocab);
  say(`L=${L}: ${row.ms.map((x) => x.toFixed(0)).join(', ')} ms; median ${row.medianMs.toFixed(1)} ms, first token ${row.firstToken}`);
  return row;
}

async function main() {
  const modelDir = resolve(a.model);
  const raw = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
  const maxLength = Math.max(a.check ? checkLength : 1, ...lengths);
  const tmp = a['onnx-dir'] ? null : mkdtempSync(join(tmpdir(), 'ort-llama-'));
  let dtype = a.dtype === 'f16' ? 'float16' : 'float32';
  const report = {
    bench: 'ttft', peer: `onnxruntime-node ${a.ep} EP`, onnxruntimeVersion: ort.env.versions?.common ?? null, date: new Date().toISOString(),
    device: deviceInfo(), model: { dir: a.model, config: null, parameters: 0, randomWeights: raw.random_weights === true }, dtype: null, ep: a.ep,
    graph: null, check: null, seed: Number(a.seed),
    timing: 'wall clock of session.run (prompt ids uploaded, every layer, last-position logits read back), median; warm-up run first',
    command: `node bench/peers/ort/ort-llama.mjs ${process.argv.slice(2).join(' ')}`,
    rows: [],
  };
  say(`device: ${JSON.stringify(report.device.nvidiaSmi ?? report.device.adapter?.name ?? report.device.adapterError ?? a.ep)}`);
  const write = () => (a.out ? writeFileSync(a.out, JSON.stringify(report, null, 2)) : undefined);
  let exit = 0;
  try {
    let built;
    let session;
    for (;;) {
      const outDir = a['onnx-dir'] ? join(a['onnx-dir'], dtype) : join(tmp, dtype);
      built = buildLlamaOnnx({ modelDir, outDir, dtype, maxLength, log: say });
      try {
        const t = performance.now();
        session = await ort.InferenceSession.create(built.modelPath, sessionOptions());
        say(`session on ${a.ep} (${dtype}, optimization ${a['opt-level']}) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
        // A short run proves every node found a kernel on this EP before anything is timed.
        await session.run(feeds(prompt(Math.min(17, maxLength), built.config.vocabSize, 3)), ['logits']);
        break;
      } catch (err) {
        await session?.release();
        session = undefined;
        // No shader-f16 on the adapter: the f16 graph cannot be placed on the EP; time it in f32.
        if (dtype === 'float16' && a['f32-if-no-f16']) {
          say(`f16 session failed (${String(err.message ?? err).slice(0, 200)}); rebuilding in f32`);
          report.f16Error = String(err.message ?? err).slice(0, 500);
          dtype = 'float32';
          continue;
        }
        throw err;
      }
    }
    const c = built.config;
    report.model.config = c;
    report.model.parameters = built.parameters;
    report.dtype = dtype === 'float16' ? 'f16' : 'f32';
    report.graph = {
      nodes: built.nodes, weightBytes: built.weightBytes, maxLength, graphOptimizationLevel: a['opt-level'],
      ops: 'Gather, SimplifiedLayerNormalization, SkipSimplifiedLayerNormalization, MatMul, com.microsoft GroupQueryAttention (do_rotary=1), Sigmoid, Mul, Slice, Reshape, Gemm (last position)',
    };
    if (a.check) {
      report.check = await check(session, built, dtype);
      write();
      const r = report.check;
      say(`check (L=${r.length}, ${a.ep}, ${dtype}): max |Δlogit| ${r.maxAbsLogitDiff.toExponential(2)} (tolerance ${r.tolerance.toExponential(2)}, max |logit| ${r.logitScale.toFixed(3)}), `
        + `top-1 ${r.top1} vs ORT ${r.ortTop1} (${r.top1 === r.ortTop1 ? 'agree' : r.top1Agrees ? 'differ within a near tie of the reference' : 'DISAGREE'}; reference top-2 margin ${r.referenceTop2Margin.toFixed(3)}), max |Δ present K| ${r.maxAbsPresentKeyDiff.toExponential(2)} (tolerance ${r.keyTolerance.toExponential(2)})`);
      if (!r.passed) {
        console.error(`CHECK FAILED: ORT ${a.ep} ${dtype} logits differ from the CPU forward pass${a['time-unvalidated'] ? '' : '; nothing is timed'}`);
        exit = 1;
        if (!a['time-unvalidated']) return exit;
      }
    }
    let left = lengths.length;
    for (const L of lengths) {
      const deadline = performance.now() + (budgetMs - (performance.now() - started)) / left--;
      try {
        const row = await timeLength(session, built.modelPath, L, c.vocabSize, deadline);
        report.rows.push(row);
        write();
        if (!a['no-profile'] && a.ep === 'webgpu') {
          await session.release();
          session = undefined;
          Object.assign(row, await profiledRun(built.modelPath, prompt(L, c.vocabSize, Number(a.seed))));
          say(`L=${L}: GPU kernels: attention ${row.attentionMs?.toFixed(1) ?? '-'} ms, rest ${row.restMs?.toFixed(1) ?? '-'} ms ${JSON.stringify(row.kernelMs ?? row.profileNote)}`);
          session = await ort.InferenceSession.create(built.modelPath, sessionOptions());
        }
      } catch (err) {
        report.rows.push({ length: L, method: 'dense', engine: `onnxruntime-${a.ep}`, skipped: String(err.message ?? err).slice(0, 500) });
        say(`L=${L}: failed: ${err.message ?? err}`);
        exit = 1;
      }
      write();
    }
    await session?.release();
  } finally {
    write();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
  if (a.out) say(`wrote ${a.out}`);
  else console.log(JSON.stringify(report, null, 2));
  return exit;
}

process.exitCode = await main();
