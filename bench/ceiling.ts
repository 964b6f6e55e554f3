/**
 * The WGSL GEMM ceiling: the fastest subgroup-matrix GEMM we have (f16 in, f32 accumulate, kernel in
 * ceiling-kernel.ts), timed at Dawn's default toggles, without robustness, and with robustness kept
 * but made cheaper (integer range analysis, robustBufferAccess2 in place of index clamps).
 * Every attention figure is quoted against the best of these.
 *
 * Per toggle set (one child process each, since Dawn toggles are per instance): every variant at the
 * first size (screening), validated on sampled outputs against an f64 CPU dot product before it is
 * timed; the --top fastest then run at the later sizes; diagnostics of the fastest that leave
 * stages out (multiplies only, staging only, global reads only, workgroup stores only) show
 * which stage bounds it. Times are GPU timestamps around a pass of --iters back-to-back
 * dispatches, median over --reps passes.
 *
 *   node dist/bench/ceiling.js [--out ceiling.json] [--sizes 4096,8192] [--top 3]
 *        [--toggles default,no-robustness,robust-cheap] [--variants 0,3] [--emulate]
 *   node dist/bench/ceiling.js --summarize ceiling.json   (recompute best/headline in place)
 *
 * What the H200 showed (bench/results/2026-12-03-h200, 4096³ at default toggles): against the
 * probe's shape with bitcast staging (111 TFLOP/s), padding workgroup rows gives +52% (unpadded,
 * the 128-byte B rows put all 8 rows of a fragment load in the same banks), per-subgroup panels with constant offsets +16% (robustness
 * no longer predicates every fragment load), double buffering +18%; 16-deep K steps beat 32-deep.
 *
 * --emulate runs plain-WGSL stand-ins for the subgroup-matrix builtins (adapters without them,
 * e.g. lavapipe) to check the indexing; its times mean nothing. Without it, an adapter lacking
 * chromium-experimental-subgroup-matrix (f16→f32 16×16×16) is refused with that message.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type GemmShape, type GemmVariant, gemmProgram, variantName } from './ceiling-kernel.js';

const BASE_TOGGLES = ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'];
const TOGGLE_SETS: Record<string, string[]> = {
  default: [],
  'no-robustness': ['disable_robustness'],
  'robust-cheap': ['enable_integer_range_analysis_in_robustness', 'vulkan_use_buffer_robust_access_2'],
};

const V = (bm: number, bn: number, bk: number, sgm: number, sgn: number, rest: Partial<GemmVariant> = {}): GemmVariant =>
  ({ bm, bn, bk, sgm, sgn, stages: 2, staging: 'vec', panels: true, pad: 8, ...rest });
/** 0–4 are a ladder from the probe's best shape (scalar-addressed, unpadded, one stage) up; the rest vary the tile. */
const VARIANTS: GemmVariant[] = [
  V(128, 256, 16, 2, 4, { stages: 1, panels: false, pad: 0 }),
  V(128, 256, 16, 2, 4, { stages: 1, panels: false }),
  V(128, 256, 16, 2, 4, { stages: 1 }),
  V(128, 256, 16, 2, 4),
  V(128, 256, 16, 2, 4, { staging: 'matrix' }),
  V(128, 256, 16, 4, 4),
  V(256, 128, 16, 4, 2),
  V(128, 128, 16, 2, 2),
  V(128, 128, 32, 2, 2),
  V(128, 128, 32, 2, 4),
  V(128, 256, 32, 2, 4, { stages: 1 }),
  V(64, 256, 32, 1, 4),
  V(64, 128, 32, 1, 2),
  V(128, 128, 16, 2, 2, { prefetch: 2 }),
  V(128, 256, 16, 2, 4, { prefetch: 2 }),
  V(256, 128, 16, 4, 2, { prefetch: 2 }),
  V(128, 128, 16, 2, 2, { prefetch: 2, staging: 'matrix' }),
];

/** The probe this beats (shared/gpu/probes/gemm.mjs, log gemm-h200-2026-12-01.log), 8192³. */
const PROBE = {
  source: 'shared/gpu/probes/gemm.mjs, log gemm-h200-2026-12-01.log (H200, 2026-12-01)',
  tile: '128x256, BK 16, 2x4 subgroups of 4x4 16x16 accumulators, scalar f16 staging stores, one stage',
  default: { M: 8192, N: 8192, K: 8192, ms: 20.492, tflops: 53.7 },
  noRobustness: { M: 8192, N: 8192, K: 8192, ms: 15.170, tflops: 72.5, toggles: ['disable_robustness', 'skip_validation'] },
};

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: 'ceiling.json' }, sizes: { type: 'string', default: '4096,8192' },
    top: { type: 'string', default: '3' }, toggles: { type: 'string', default: 'default,no-robustness,robust-cheap' },
    variants: { type: 'string' }, reps: { type: 'string', default: '9' }, iters: { type: 'string' },
    emulate: { type: 'boolean', default: false }, child: { type: 'string' }, part: { type: 'string' },
    summarize: { type: 'string' },
  },
});

type Row = Record<string, unknown> & { variant: string; index: number; M: number; tflops?: number; pass?: boolean; diag?: string };
type SetResult = { name: string; rows: Row[] };

/**
 * best: the fastest validated variant per toggle set and size; headline: the largest size at
 * default toggles and without robustness, beside the probe's figures.
 */
function summarize(result: Record<string, unknown>): void {
  const best: Record<string, Row> = {};
  for (const set of result.toggleSets as SetResult[]) {
    const ok = set.rows.filter((x) => x.pass && !x.diag && typeof x.tflops === 'number');
    for (const size of [...new Set(ok.map((x) => x.M))].sort((a, b) => a - b)) {
      best[`${set.name} ${size}`] = ok.filter((x) => x.M === size).sort((a, b) => b.tflops! - a.tflops!)[0];
    }
  }
  result.best = Object.fromEntries(Object.entries(best).map(([k, r]) => [k, { variant: r.variant, M: r.M, ms: r.ms, tflops: r.tflops }]));
  const top = (set: string) => Object.entries(best).filter(([k]) => k.startsWith(`${set} `)).map(([, r]) => r).sort((a, b) => b.M - a.M)[0];
  const line = (r: Row | undefined, probe: number) => r && { variant: r.variant, M: r.M, N: r.N, K: r.K, ms: r.ms, tflops: r.tflops, probeTflops: probe, overProbe: +(r.tflops! / probe).toFixed(2) };
  result.headline = { default: line(top('default'), PROBE.default.tflops), noRobustness: line(top('no-robustness'), PROBE.noRobustness.tflops) };
}

function parent(): void {
  const self = fileURLToPath(import.meta.url);
  const sets = args.toggles!.split(',');
  for (const s of sets) if (!TOGGLE_SETS[s]) throw new Error(`--toggles: unknown set "${s}", expected some of ${Object.keys(TOGGLE_SETS).join(', ')}`);
  const smi = (q: string): string | null => {
    try { return execFileSync('nvidia-smi', [`--query-gpu=${q}`, '--format=csv,noheader'], { encoding: 'utf8' }).trim(); } catch { return null; } // no NVIDIA tools here
  };
  // Clocks, power and throttle reasons around each toggle set: a pass that runs several times
  // slower than its neighbours is the GPU, not the kernel.
  const STATE = 'clocks.sm,clocks.max.sm,power.draw,temperature.gpu,clocks_throttle_reasons.active';
  const gpuName = smi('name,driver_version');
  const result: Record<string, unknown> = {
    benchmark: 'wgsl-subgroup-matrix-gemm-ceiling', date: new Date().toISOString(), gpu: gpuName, adapter: null,
    dtype: { a: 'f16', b: 'f16', accumulate: 'f32', c: 'f32' }, layout: 'A [M,K], B [K,N], C [M,N], all row-major',
    flops: '2·M·N·K per GEMM', timing: 'GPU timestamps around one pass of `iters` dispatches, median of `reps` passes',
    emulate: args.emulate, probe: PROBE, toggleSets: [] as unknown[], best: {} as Record<string, unknown>,
  };
  const passthrough = ['--sizes', args.sizes!, '--top', args.top!, '--reps', args.reps!,
    ...(args.iters ? ['--iters', args.iters] : []), ...(args.variants ? ['--variants', args.variants] : []), ...(args.emulate ? ['--emulate'] : [])];
  let failed = false;
  for (const set of sets) {
    const part = `${args.out}.${set}.jsonl`;
    rmSync(part, { force: true });
    console.error(`== toggles: ${set} (${[...BASE_TOGGLES, ...TOGGLE_SETS[set]].join(',')})`);
    const before = smi(STATE);
    const r = spawnSync(process.execPath, [self, '--child', set, '--part', part, ...passthrough], { stdio: ['ignore', 'inherit', 'inherit'] });
    const lines = existsSync(part) ? readFileSync(part, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Row) : [];
    rmSync(part, { force: true });
    const adapter = lines.find((l) => l.type === 'adapter');
    const refused = lines.find((l) => l.type === 'refused');
    if (adapter && !result.adapter) result.adapter = adapter.info;
    const rows = lines.filter((l) => l.type === 'row');
    const gpuState = before === null ? null : { query: STATE, before, after: smi(STATE) };
    (result.toggleSets as unknown[]).push({ name: set, toggles: [...BASE_TOGGLES, ...TOGGLE_SETS[set]], exitCode: r.status, refused: refused?.reason, gpuState, rows });
    summarize(result);
    writeFileSync(args.out!, JSON.stringify(result, null, 1));
    if (r.status !== 0) failed = true;
  }
  console.error(`wrote ${args.out}`);
  if (failed) process.exitCode = 1;
}

// ---- one toggle set, in its own process ----

const F16 = (() => {
  const t = new Float64Array(65536);
  for (let h = 0; h < 65536; h++) {
    const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

/** Seeded f16 values of magnitude in [1/16, 1) with random signs, as bits. */
function randomF16(n: number, seed: number): Uint16Array<ArrayBuffer> {
  const out = new Uint16Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = ((x >>> 16) & 0x8000) | ((11 + ((x >>> 19) & 3)) << 10) | (x >>> 22);
  }
  return out;
}

const U = { MAP_READ: 1, COPY_SRC: 4, COPY_DST: 8, STORAGE: 128, QUERY_RESOLVE: 512 };

async function child(set: string, part: string): Promise<void> {
  const emit = (o: Record<string, unknown>) => appendFileSync(part, JSON.stringify(o) + '\n');
  const { create } = (await import('webgpu')) as unknown as { create(o: string[]): GPU };
  const gpu = create([`enable-dawn-features=${[...BASE_TOGGLES, ...TOGGLE_SETS[set]].join(',')}`]);
  (globalThis as { keepDawn?: unknown }).keepDawn = gpu; // a collected instance aborts the process
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) { emit({ type: 'refused', reason: 'no WebGPU adapter (Dawn sees no GPU)' }); process.exit(3); }
  const info = adapter.info as unknown as Record<string, unknown> & { subgroupMatrixConfigs?: Iterable<Record<string, unknown>> };
  const configs = [...(info.subgroupMatrixConfigs ?? [])].map((c) => `${c.componentType}->${c.resultComponentType} ${c.M}x${c.N}x${c.K}`);
  const lim = adapter.limits as unknown as Record<string, number>;
  emit({ type: 'adapter', info: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description, subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize, subgroupMatrixConfigs: configs, maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize } });
  const tc = adapter.features.has('chromium-experimental-subgroup-matrix') && configs.includes('f16->f32 16x16x16');
  if (!tc && !args.emulate) {
    const reason = `adapter "${info.description || info.device || info.vendor}" lacks chromium-experimental-subgroup-matrix with f16->f32 16x16x16 (has: ${configs.join(', ') || 'none'}); this benchmark needs tensor cores (run with --emulate to check the kernels' indexing on this adapter)`;
    emit({ type: 'refused', reason });
    console.error(reason);
    process.exit(2);
  }
  const features = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix', 'timestamp-query'].filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  if (!features.includes('shader-f16') || !features.includes('timestamp-query')) throw new Error(`adapter lacks shader-f16 or timestamp-query (has ${features.join(', ')})`);
  const requiredLimits: Record<string, number> = {};
  for (const k of ['maxComputeWorkgroupStorageSize', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX']) requiredLimits[k] = lim[k];
  const device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits });
  (globalThis as { keepDevice?: unknown }).keepDevice = device;

  const sizes = args.sizes!.split(',').map(Number);
  let chosen = args.variants ? args.variants.split(',').map(Number) : VARIANTS.map((_, i) => i);
  for (const [si, size] of sizes.entries()) {
    const shape: GemmShape = { M: size, N: size, K: size };
    const bench = await makeBench(device, shape);
    const rows: Row[] = [];
    for (const i of chosen) {
      const row = await bench.run(VARIANTS[i], i, set);
      emit({ type: 'row', ...row });
      rows.push(row);
    }
    const ranked = rows.filter((r) => r.pass && typeof r.tflops === 'number').sort((a, b) => b.tflops! - a.tflops!);
    if (si === 0 && ranked.length) {
      const best = ranked[0].index;
      const diags = VARIANTS[best].staging === 'vec' ? ['mma-only', 'staging-only', 'global-only', 'stores-only'] as const : ['mma-only', 'staging-only'] as const;
      for (const diag of diags) emit({ type: 'row', ...(await bench.run({ ...VARIANTS[best], diag }, best, set)) });
      chosen = ranked.slice(0, Number(args.top)).map((r) => r.index);
    }
    bench.destroy();
  }
  device.destroy();
  process.exit(0);
}

async function makeBench(device: GPUDevice, s: GemmShape) {
  const t0 = performance.now();
  const Ah = randomF16(s.M * s.K, 1), Bh = randomF16(s.K * s.N, 2);
  const mk = (data: Uint16Array<ArrayBuffer>) => { const b = device.createBuffer({ size: data.byteLength, usage: U.STORAGE | U.COPY_DST }); device.queue.writeBuffer(b, 0, data); return b; };
  const bufA = mk(Ah), bufB = mk(Bh);
  const bufC = device.createBuffer({ size: s.M * s.N * 4, usage: U.STORAGE | U.COPY_SRC });
  // Sampled outputs: one in every 16×16 block position of a 256×256 super-tile (so every
  // subgroup's every accumulator of any variant is checked), at seeded tiles and offsets.
  const S = 256;
  const rnd = randomF16(3 * S, 3);
  const samples = Array.from({ length: S }, (_, k) => {
    const r = (((rnd[3 * k] % Math.max(1, s.M / 256)) * 256) + (k % 16) * 16 + (rnd[3 * k + 1] & 15)) % s.M;
    const c = (((rnd[3 * k + 2] % Math.max(1, s.N / 256)) * 256) + Math.floor(k / 16) * 16 + ((rnd[3 * k + 1] >> 4) & 15)) % s.N;
    let ref = 0, abs = 0;
    for (let t = 0; t < s.K; t++) { const p = F16[Ah[r * s.K + t]] * F16[Bh[t * s.N + c]]; ref += p; abs += Math.abs(p); }
    return { r, c, ref, abs };
  });
  const gather = device.createBuffer({ size: S * 4, usage: U.COPY_DST | U.MAP_READ });
  // C is filled with NaN before the checked run so that an output the kernel never writes fails.
  const fill = device.createComputePipeline({ layout: 'auto', compute: { entryPoint: 'main', module: device.createShaderModule({ code: `
@group(0) @binding(0) var<storage, read_write> C: array<u32>;
@compute @workgroup_size(256) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(num_workgroups) n: vec3u) {
  let i = g.x + g.y * n.x * 256u;
  if (i < arrayLength(&C)) { C[i] = 0x7fc00000u; }
}` }) } });
  const fillBg = device.createBindGroup({ layout: fill.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: bufC } }] });
  const fillWgs = Math.ceil((s.M * s.N) / 256);
  const reps = Number(args.reps);
  const iters = Number(args.iters ?? (args.emulate ? 1 : s.M * s.N * s.K >= 2 ** 39 ? 5 : 10));
  const qs = device.createQuerySet({ type: 'timestamp', count: 2 * reps });
  const resolve = device.createBuffer({ size: 16 * reps, usage: U.QUERY_RESOLVE | U.COPY_SRC });
  const tsRead = device.createBuffer({ size: 16 * reps, usage: U.COPY_DST | U.MAP_READ });
  console.error(`  ${s.M}x${s.N}x${s.K}: data and CPU reference ${(performance.now() - t0).toFixed(0)} ms`);

  async function run(v: GemmVariant, index: number, set: string): Promise<Row> {
    const name = variantName(v);
    const base: Row = { variant: name, index, set, M: s.M, N: s.N, K: s.K, diag: v.diag };
    try {
      const prog = gemmProgram(v, s, args.emulate);
      Object.assign(base, { tile: { bm: v.bm, bn: v.bn, bk: v.bk, subgroups: [v.sgm, v.sgn], perSubgroup: [prog.rm, prog.rn], threads: prog.threads, stages: v.stages, staging: v.staging, panels: v.panels, pad: v.pad, smemBytes: prog.smemBytes } });
      const limits = device.limits;
      if (prog.smemBytes > limits.maxComputeWorkgroupStorageSize) return { ...base, skipped: `workgroup memory ${prog.smemBytes} B > ${limits.maxComputeWorkgroupStorageSize}` };
      if (prog.threads > limits.maxComputeInvocationsPerWorkgroup) return { ...base, skipped: `${prog.threads} threads > ${limits.maxComputeInvocationsPerWorkgroup}` };
      const c0 = performance.now();
      device.pushErrorScope('validation');
      const module = device.createShaderModule({ code: prog.code, label: name });
      const msgs = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
      if (msgs.length) throw new Error(`WGSL: ${msgs.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
      const pipe = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: name });
      const bg = device.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: [bufA, bufB, bufC].map((buffer, binding) => ({ binding, resource: { buffer } })) });
      const scopeErr = await device.popErrorScope();
      if (scopeErr) throw new Error(scopeErr.message);
      const compileMs = performance.now() - c0;
      const gemm = (pass: GPUComputePassEncoder, n: number) => { pass.setPipeline(pipe); pass.setBindGroup(0, bg); for (let i = 0; i < n; i++) pass.dispatchWorkgroups(prog.grid[0], prog.grid[1]); };

      let check: Record<string, unknown> = { pass: true, checked: 'not checked (diagnostic variant computes a wrong product on purpose)' };
      if (!v.diag) check = await validate(gemm);
      if (!check.pass) return { ...base, compileMs, ...check };
      // Warm-up, then timed passes.
      let enc = device.createCommandEncoder();
      const w = enc.beginComputePass(); gemm(w, 2); w.end();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      enc = device.createCommandEncoder();
      for (let r = 0; r < reps; r++) {
        const p = enc.beginComputePass({ timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * r, endOfPassWriteIndex: 2 * r + 1 } });
        gemm(p, iters); p.end();
      }
      enc.resolveQuerySet(qs, 0, 2 * reps, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, tsRead, 0, 16 * reps);
      const w0 = performance.now();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      const wallMs = (performance.now() - w0) / (reps * iters);
      await tsRead.mapAsync(1);
      const ts = new BigInt64Array(tsRead.getMappedRange().slice(0));
      tsRead.unmap();
      const per = Array.from({ length: reps }, (_, r) => Number(ts[2 * r + 1] - ts[2 * r]) / 1e6 / iters); // in run order
      const ms = [...per].sort((a, b) => a - b)[Math.floor(reps / 2)];
      const tflops = (2 * s.M * s.N * s.K) / (ms * 1e-3) / 1e12;
      const row = { ...base, compileMs: Math.round(compileMs), ms: +ms.toFixed(4), tflops: +tflops.toFixed(2), msMin: +Math.min(...per).toFixed(4), wallMs: +wallMs.toFixed(4), msPerRep: per.map((x) => +x.toFixed(4)), iters, reps, ...check };
      console.error(`  ${name.padEnd(46)} ${ms.toFixed(3).padStart(9)} ms ${tflops.toFixed(1).padStart(7)} TFLOP/s  ${v.diag ? '(diagnostic)' : `max err ${(check.maxAbsErr as number).toExponential(1)}`}`);
      return row;
    } catch (err) {
      console.error(`  ${name.padEnd(46)} FAILED ${(err as Error).message.slice(0, 400)}`);
      return { ...base, pass: false, error: (err as Error).message.slice(0, 2000) };
    }
  }

  async function validate(gemm: (pass: GPUComputePassEncoder, n: number) => void): Promise<Record<string, unknown>> {
    const enc = device.createCommandEncoder();
    const f = enc.beginComputePass();
    f.setPipeline(fill); f.setBindGroup(0, fillBg);
    const fx = Math.min(fillWgs, 32768);
    f.dispatchWorkgroups(fx, Math.ceil(fillWgs / fx)); f.end();
    const p = enc.beginComputePass(); gemm(p, 1); p.end();
    samples.forEach((x, k) => enc.copyBufferToBuffer(bufC, 4 * (x.r * s.N + x.c), gather, 4 * k, 4));
    device.queue.submit([enc.finish()]);
    await gather.mapAsync(1);
    const got = new Float32Array(gather.getMappedRange().slice(0));
    gather.unmap();
    // f32 accumulation of K products: allow 1e-4 of Σ|a·b| (a missing 16-deep K step or a wrong
    // tile is off by far more: about |ref|, i.e. ~Σ|a·b|/√K).
    let maxAbsErr = 0, maxRelErr = 0, bad = 0;
    let first: unknown = null;
    samples.forEach((x, k) => {
      const e = Math.abs(got[k] - x.ref);
      if (!(e <= 1e-4 * x.abs + 1e-6)) { bad++; first ??= { row: x.r, col: x.c, got: got[k], ref: x.ref }; }
      if (Number.isFinite(e)) { maxAbsErr = Math.max(maxAbsErr, e); maxRelErr = Math.max(maxRelErr, e / x.abs); } else maxAbsErr = Infinity;
    });
    return { pass: bad === 0, samples: samples.length, bad, maxAbsErr, maxErrOverAbsSum: maxRelErr, firstMismatch: first };
  }

  return { run, destroy: () => { for (const b of [bufA, bufB, bufC, gather, resolve, tsRead]) b.destroy(); qs.destroy(); } };
}

// Last, so that every module-level constant above is initialised before the entry point runs.
if (args.child) await child(args.child, args.part!);
else if (args.summarize) { // recompute best and headline of a result file in place
  const result = JSON.parse(readFileSync(args.summarize, 'utf8')) as Record<string, unknown>;
  summarize(result);
  writeFileSync(args.summarize, JSON.stringify(result, null, 1));
} else parent();
