/**
 * Validates the tensor-core attention kernel against the CPU reference on small shapes, then times
 * it (dense causal and block-sparse) on large ones. Writes JSON.
 *   node dist/bench/tc-probe.js --out result.json [--lengths 4096,8192] [--quick]
 */
/// <reference types="@webgpu/types" />
import { writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { naiveAttention } from '../src/backends/cpu/naive-attention.js';
import { BlockMask, blockCausallyValid } from '../src/core/block-mask.js';
import { f32ToF16Bits } from '../src/core/f16.js';
import { Rng } from '../src/core/rng.js';
import { HeadTensor } from '../src/core/tensor.js';
import { hasTensorCores, TensorCoreAttention, type TensorView, uploadBlockMask } from '../src/backends/webgpu/tensor-core-attention.js';

// Synchronous: a native crash must not swallow what was already measured.
const log = (x: unknown) => writeSync(2, (typeof x === 'string' ? x : JSON.stringify(x)) + '\n');
const { values } = parseArgs({ options: { out: { type: 'string' }, lengths: { type: 'string', default: '4096,8192,16384,32768' }, quick: { type: 'boolean', default: false } } });

// The Dawn instance must outlive every device: if it is garbage-collected, waits on the GPU crash.
let dawnInstance: GPU | undefined;

async function getDevice() {
  const { create, globals } = await import('webgpu');
  Object.assign(globalThis, globals);
  const gpu = (dawnInstance = create(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia']));
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('no WebGPU adapter');
  const wanted = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix'] as GPUFeatureName[];
  const features = wanted.filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures: features,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    },
  });
  device.lost.then((info) => log(`device lost: ${info.reason} ${info.message}`));
  device.addEventListener('uncapturederror', (e) => log('WebGPU error: ' + (e as GPUUncapturedErrorEvent).error.message.slice(0, 600)));
  return { adapter, device, features };
}

function f16Buffer(device: GPUDevice, label: string, data: Uint16Array): GPUBuffer {
  const buffer = device.createBuffer({ label, size: Math.ceil(data.byteLength / 4) * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, Math.ceil(data.byteLength / 4) * 4 === data.byteLength ? data.byteLength : data.byteLength);
  return buffer;
}

function view(t: { buffer: GPUBuffer }, x: HeadTensor): TensorView {
  return { buffer: t.buffer, offset: 0, strideB: x.strideB, strideH: x.strideH, strideL: x.strideL };
}

/** A promise that fails loudly instead of letting the process exit silently on a hung GPU. */
async function within<T>(what: string, p: Promise<T>, ms = 30000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms); });
  try { return await Promise.race([p, timeout]); } finally { clearTimeout(timer); }
}

/** One 16×16×16 f16→f32 subgroup-matrix product, checked on the CPU: is the feature usable at all? */
async function sanity(device: GPUDevice) {
  const code = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read> A: array<f16>;
@group(0) @binding(1) var<storage, read> B: array<f16>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@compute @workgroup_size(32)
fn main() {
  let a = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&A, 0u, 16u);
  let b = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&B, 0u, 16u);
  let c = subgroupMatrixMultiply<f32>(a, b);
  subgroupMatrixStore<row_major>(&C, 0u, c, 16u);
}`;
  log('sanity: module');
  const module = device.createShaderModule({ code });
  log('sanity: pipeline');
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const a = new Float32Array(256).map((_, i) => (i % 7) - 3);
  const bT = new Float32Array(256).map((_, i) => (i % 5) - 2); // B stored column-major = Bᵀ row-major
  const bufA = f16Buffer(device, 'A', Uint16Array.from(a, f32ToF16Bits));
  const bufB = f16Buffer(device, 'B', Uint16Array.from(bT, f32ToF16Bits));
  const bufC = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [0, 1, 2].map((i) => ({ binding: i, resource: { buffer: [bufA, bufB, bufC][i] } })) }));
  pass.dispatchWorkgroups(1);
  pass.end();
  device.queue.submit([enc.finish()]);
  log('sanity: submitted');
  await within('sanity work done', device.queue.onSubmittedWorkDone());
  log('sanity: work done');
  const c = await readF32(device, bufC, 1024);
  let err = 0;
  for (let i = 0; i < 16; i++) for (let j = 0; j < 16; j++) {
    let s = 0;
    for (let k = 0; k < 16; k++) s += a[i * 16 + k] * bT[j * 16 + k];
    err = Math.max(err, Math.abs(s - c[i * 16 + j]));
  }
  return { sanityMaxErr: err };
}

async function readF32(device: GPUDevice, src: GPUBuffer, bytes: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
  device.queue.submit([enc.finish()]);
  await within('readback', staging.mapAsync(GPUMapMode.READ));
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.destroy();
  return out;
}

interface Case { H: number; Hkv: number; Lq: number; Lk: number; D: 64 | 128; causal: boolean; density?: number; layout: 'BHLD' | 'BLHD' }

async function validate(tc: TensorCoreAttention, device: GPUDevice, c: Case) {
  const shapeQ = { batch: 1, heads: c.H, length: c.Lq, headDim: c.D };
  const shapeK = { batch: 1, heads: c.Hkv, length: c.Lk, headDim: c.D };
  const q = HeadTensor.randn(shapeQ, 11, { dtype: 'f16', layout: c.layout });
  const k = HeadTensor.randn(shapeK, 12, { dtype: 'f16', layout: c.layout });
  const v = HeadTensor.randn(shapeK, 13, { dtype: 'f16', layout: c.layout });
  const dims = { batch: 1, heads: c.H, queryLength: c.Lq, keyLength: c.Lk, blockRows: 64 * (tc.subgroups / 4) * 2, blockCols: 64, causal: c.causal };
  const rng = new Rng(5);
  const mask = c.density === undefined ? undefined : BlockMask.fromPredicate(dims, (_b, _h, qb, kb) => blockCausallyValid(dims, qb, kb) && (kb === 0 || rng.next() < c.density!));
  const out = HeadTensor.zeros({ ...shapeQ, headDim: c.D }, c.layout);
  const outBuf = device.createBuffer({ size: out.size * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const gm = mask ? { ...uploadBlockMask(device, mask), numQueryBlocks: mask.numQueryBlocks, blockRows: mask.blockRows, blockCols: mask.blockCols } : undefined;
  log(`validate ${JSON.stringify(c)} sg${tc.subgroups}: encode`);
  const enc = device.createCommandEncoder();
  tc.encode(enc, {
    batch: 1, heads: c.H, kvHeads: c.Hkv, queryLength: c.Lq, keyLength: c.Lk, headDim: c.D, causal: c.causal, scale: 1 / Math.sqrt(c.D),
    q: view({ buffer: f16Buffer(device, 'q', q.data as Uint16Array) }, q), k: view({ buffer: f16Buffer(device, 'k', k.data as Uint16Array) }, k),
    v: view({ buffer: f16Buffer(device, 'v', v.data as Uint16Array) }, v), out: view({ buffer: outBuf }, out), mask: gm,
  });
  device.queue.submit([enc.finish()]);
  log('  submitted');
  const got = await readF32(device, outBuf, out.size * 4);
  log('  read back');
  const ref = naiveAttention(q.toDType('f32'), k.toDType('f32'), v.toDType('f32'), { causal: c.causal, visible: mask ? (b, h, i, j) => mask.visible(b, h, i, j) : undefined }).toLayout(c.layout).toFloat32Array();
  let maxErr = 0;
  let bad = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i] - ref[i]);
    if (!(e <= 4e-3 + 2e-2 * Math.abs(ref[i]))) bad++;
    if (!(e <= maxErr)) maxErr = e;
  }
  return { case: c, maxAbsError: maxErr, mismatches: bad, ok: bad === 0 };
}

async function time(device: GPUDevice, run: (enc: GPUCommandEncoder) => void, reps: number): Promise<number> {
  for (let w = 0; w < 2; w++) {
    const enc = device.createCommandEncoder();
    run(enc);
    device.queue.submit([enc.finish()]);
  }
  await within('warm-up', device.queue.onSubmittedWorkDone(), 120000);
  const t0 = performance.now();
  const enc = device.createCommandEncoder();
  for (let r = 0; r < reps; r++) run(enc);
  device.queue.submit([enc.finish()]);
  await within('timed runs', device.queue.onSubmittedWorkDone(), 120000);
  return (performance.now() - t0) / reps;
}

async function main() {
  const { adapter, device, features } = await getDevice();
  const info = adapter.info;
  const report: Record<string, unknown> = {
    date: new Date().toISOString(), host: os.hostname(), adapter: { vendor: info.vendor, architecture: info.architecture, description: info.description, features },
    tensorCores: hasTensorCores(info),
  };
  log(report);
  log(await sanity(device));
  const results: unknown[] = [];
  const validation: unknown[] = [];
  for (const [sg, stage] of [[4, true], [4, false], [8, false]] as const) {
    const tc = new TensorCoreAttention(device, sg, stage);
    const rows = 16 * sg;
    for (const c of [
      { H: 4, Hkv: 2, Lq: 2 * rows, Lk: 256, D: 128, causal: true, layout: 'BHLD' },
      { H: 4, Hkv: 4, Lq: 4 * rows, Lk: 4 * rows, D: 64, causal: false, layout: 'BLHD' },
      { H: 4, Hkv: 1, Lq: 4 * rows, Lk: 4 * rows, D: 128, causal: true, layout: 'BHLD' },
      { H: 2, Hkv: 1, Lq: 4 * rows, Lk: 512, D: 128, causal: true, density: 0.4, layout: 'BHLD' },
      { H: 2, Hkv: 2, Lq: 512, Lk: 512, D: 128, causal: false, density: 0.3, layout: 'BLHD' },
    ] as Case[]) {
      const v = { subgroups: sg, stage, ...(await validate(tc, device, c)) };
      log(v);
      if (values.out) writeFileSync(values.out, JSON.stringify({ ...report, validation, results }, null, 1));
      validation.push(v);
    }
    const H = 32;
    const D = 128;
    for (const L of values.lengths!.split(',').map(Number)) {
      const n = H * L * D;
      const pattern = new Uint16Array(1 << 20);
      const rng = new Rng(L);
      for (let i = 0; i < pattern.length; i++) pattern[i] = f32ToF16Bits(rng.normal());
      const mk = (label: string, size: number) => {
        const b = device.createBuffer({ label, size: size * 2, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
        for (let o = 0; o < size; o += pattern.length) device.queue.writeBuffer(b, o * 2, pattern, 0, Math.min(pattern.length, size - o));
        return b;
      };
      const q = mk('q', n); const k = mk('k', n); const v = mk('v', n);
      const out = device.createBuffer({ label: 'o', size: n * 4, usage: GPUBufferUsage.STORAGE });
      const st = { offset: 0, strideB: n, strideH: L * D, strideL: D };
      const base = { batch: 1, heads: H, kvHeads: H, queryLength: L, keyLength: L, headDim: D, causal: true, scale: 1 / Math.sqrt(D),
        q: { buffer: q, ...st }, k: { buffer: k, ...st }, v: { buffer: v, ...st }, out: { buffer: out, ...st } };
      const flops = 4 * H * L * L * D / 2;
      const reps = L >= 32768 ? 3 : 5;
      const denseMs = await time(device, (enc) => tc.encode(enc, base), reps);
      const row = { subgroups: sg, stage, L, H, D, dtype: 'f16', causal: true, kind: 'dense', ms: denseMs, tflops: flops / denseMs / 1e9 };
      log(row);
      if (values.out) writeFileSync(values.out, JSON.stringify({ ...report, validation, results }, null, 1));
      results.push(row);
      for (const density of values.quick ? [0.1] : [0.05, 0.1, 0.25, 0.5]) {
        const dims = { batch: 1, heads: H, queryLength: L, keyLength: L, blockRows: 128, blockCols: 128, causal: true };
        const r = new Rng(7);
        const mask = BlockMask.fromPredicate(dims, (_b, _h, qb, kb) => blockCausallyValid(dims, qb, kb) && (kb === 0 || kb === qb || r.next() < density));
        const gm = { ...uploadBlockMask(device, mask), numQueryBlocks: mask.numQueryBlocks, blockRows: 128, blockCols: 128 };
        const ms = await time(device, (enc) => tc.encode(enc, { ...base, mask: gm }), reps);
        const d = mask.density;
        const sr = { subgroups: sg, stage, L, H, D, dtype: 'f16', causal: true, kind: 'block-sparse', density: d, ms, tflopsEffective: (flops * d) / ms / 1e9, speedup: denseMs / ms, target: 0.8 / d };
        log(sr);
      if (values.out) writeFileSync(values.out, JSON.stringify({ ...report, validation, results }, null, 1));
        results.push(sr);
        gm.rowPtr.destroy(); gm.colIdx.destroy();
      }
      q.destroy(); k.destroy(); v.destroy(); out.destroy();
    }
  }
  const json = JSON.stringify({ ...report, validation, results }, null, 1);
  if (values.out) writeFileSync(values.out, json);
  log('done');
  device.destroy();
}

try {
  await main();
} catch (err) {
  log(`FAILED: ${(err as Error).stack ?? err}`);
  process.exitCode = 1;
}
