/**
 * The GPU model kernels (backends/webgpu/model/) against their CPU twins (model/ops.ts, model/rope.ts)
 * on awkward sizes (not multiples of the tiles), with offsets and strides, outputs poisoned first.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { f16BitsToF32, toF16Bits } from '../src/core/f16.js';
import type { StorageType } from '../src/backends/webgpu/model/gemm.js';
import { copyRowsProgram, embedProgram, flatGrid, ropeProgram, ropeTable, rmsNormProgram, rowGrid, siluMulProgram } from '../src/backends/webgpu/model/layer-ops.js';
import { KernelEncoder } from '../src/backends/webgpu/model/model-kernels.js';
import { tiledGemmProgram, tiledGemmWorkgroups } from '../src/backends/webgpu/model/tiled-gemm.js';
import { readBuffer, uploadArray } from '../src/backends/webgpu/runtime/buffers.js';
import { BufferUsage, hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { linearReference, rmsNorm, siluMul } from '../src/model/ops.js';
import { RopeTable } from '../src/model/rope.js';
import { acquireTestGpu, type TestGpu } from './helpers/webgpu.js';

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return out;
}

const roundF16 = (a: Float32Array): Float32Array => Float32Array.from(toF16Bits(a), f16BitsToF32);

let gpu: TestGpu;
before(async () => {
  gpu = await acquireTestGpu();
});
after(async () => gpu?.release());

describe('WebGPU model kernels vs their CPU twins', { skip: (await acquireTestGpu()).skip }, () => {
  const device = () => gpu.ctx!.device;
  const up = (a: Float32Array | Uint16Array | Uint32Array, t: StorageType = 'f32') =>
    uploadArray(device(), a instanceof Float32Array && t === 'f16' ? toF16Bits(a) : (a as Float32Array), 'test', BufferUsage.COPY_SRC);
  const read = async (b: GPUBuffer, n: number, t: StorageType = 'f32') => {
    const raw = await readBuffer(device(), b, n * (t === 'f32' ? 4 : 2));
    return t === 'f32' ? new Float32Array(raw) : Float32Array.from(new Uint16Array(raw), f16BitsToF32);
  };
  const poisoned = (n: number, t: StorageType = 'f32') => up(new Float32Array(n).fill(NaN), t);

  for (const [m, n, k] of [[37, 70, 45], [1, 129, 64], [65, 3, 17]]) {
    for (const [types, staging] of [
      [{ x: 'f32', w: 'f32', y: 'f32' }, 'shared'], [{ x: 'f16', w: 'f16', y: 'f16' }, 'shared'], [{ x: 'f32', w: 'f16', y: 'f32' }, 'shared'],
      [{ x: 'f32', w: 'f32', y: 'f32' }, 'direct'], [{ x: 'f16', w: 'f16', y: 'f16' }, 'direct'],
    ] as const) {
      it(`gemm ${m}×${n}×${k} x ${types.x} w ${types.w} y ${types.y}, ${staging}: into a strided slice, with bias`, async () => {
        const x = rand(m * (k + 3), 1, 1);
        const w = rand(n * k, 2, 0.5);
        const bias = rand(n, 3, 0.1);
        const yStride = n + 5;
        const enc = new KernelEncoder(device(), 'gemm-test');
        const yBuf = poisoned(2 + m * yStride, types.y);
        // x rows start at element 3 of each (k + 3)-wide row: offset 3, stride k + 3.
        await enc.gemm({ ...types, bias: true, accumulate: false, staging }, { m, n, k, xOffset: 3, xStride: k + 3, wOffset: 0, yOffset: 2, yStride }, { x: up(x, types.x), w: up(w, types.w), y: yBuf, bias: up(bias) });
        enc.submit();
        const y = await read(yBuf, 2 + m * yStride, types.y);
        enc.release();
        const xs = types.x === 'f16' ? roundF16(x) : x;
        const ws = types.w === 'f16' ? roundF16(w) : w;
        const xRows = new Float32Array(m * k);
        for (let i = 0; i < m; i++) xRows.set(xs.subarray(i * (k + 3) + 3, i * (k + 3) + 3 + k), i * k);
        const want = linearReference(xRows, m, ws, n, k, bias);
        const tol = types.y === 'f16' ? 2e-3 * Math.sqrt(k) : 1e-5 * k;
        for (let i = 0; i < m; i++)
          for (let j = 0; j < n; j++) {
            const got = y[2 + i * yStride + j];
            assert.ok(Math.abs(got - want[i * n + j]) <= tol * Math.max(1, Math.abs(want[i * n + j])), `y[${i},${j}] = ${got}, want ${want[i * n + j]}`);
          }
        // Padding between rows and before the first is left alone (still NaN).
        assert.ok(Number.isNaN(y[0]) && Number.isNaN(y[2 + n]));
      });
    }
  }

  for (const staging of ['shared', 'direct'] as const) it(`gemm accumulate adds into y (the residual stream), ${staging}`, async () => {
    const [m, n, k] = [19, 33, 70];
    const x = rand(m * k, 4), w = rand(n * k, 5, 0.3), y0 = rand(m * n, 6);
    const yBuf = up(y0);
    const enc = new KernelEncoder(device(), 'gemm-acc');
    await enc.gemm({ x: 'f32', w: 'f32', y: 'f32', bias: false, accumulate: true, staging }, { m, n, k, xOffset: 0, xStride: k, wOffset: 0, yOffset: 0, yStride: n }, { x: up(x), w: up(w), y: yBuf });
    enc.submit();
    const y = await read(yBuf, m * n);
    const want = linearReference(x, m, w, n, k);
    for (let i = 0; i < m * n; i++) assert.ok(Math.abs(y[i] - (y0[i] + want[i])) < 1e-4, `y[${i}]`);
  });

  // Runs where the adapter has f16→f32 16×16×16 subgroup matrices (the H200 machine), not on lavapipe.
  for (const [m, n, k, y, accumulate] of [[80, 48, 64, 'f32', false], [16, 208, 96, 'f16', false], [144, 80, 32, 'f32', true]] as const) {
    it(`tensor-core gemm ${m}×${n}×${k} y ${y}${accumulate ? ' accumulate' : ''}: tiles past the edge, strided x, bias`, async (t) => {
      if (!hasTensorCores(device())) return t.skip('no subgroup matrices on this adapter');
      const x = rand(m * (k + 8), 12, 1), w = rand(n * k, 13, 0.5), bias = rand(n, 14, 0.1), y0 = rand(m * n, 15);
      const yBuf = accumulate ? up(y0) : poisoned(m * n, y);
      const enc = new KernelEncoder(device(), 'gemm-tc');
      await enc.gemm({ x: 'f16', w: 'f16', y, bias: true, accumulate, kernel: 'tensor-core' }, { m, n, k, xOffset: 8, xStride: k + 8, wOffset: 0, yOffset: 0, yStride: n }, { x: up(x, 'f16'), w: up(w, 'f16'), y: yBuf, bias: up(bias) });
      enc.submit();
      const got = await read(yBuf, m * n, y);
      const xs = roundF16(x), ws = roundF16(w);
      const xRows = new Float32Array(m * k);
      for (let i = 0; i < m; i++) xRows.set(xs.subarray(i * (k + 8) + 8, i * (k + 8) + 8 + k), i * k);
      const want = linearReference(xRows, m, ws, n, k, bias);
      for (let i = 0; i < m * n; i++) {
        const ref = want[i] + (accumulate ? y0[i] : 0);
        assert.ok(Math.abs(got[i] - ref) <= 2e-3 * Math.sqrt(k) * Math.max(1, Math.abs(ref)), `y[${i}] = ${got[i]}, want ${ref}`);
      }
    });
  }

  // The tiled GEMM's staging, panels and epilogue with plain-WGSL fragments (every adapter), and with
  // subgroup matrices where the adapter has them; awkward M and N, strided x, y a strided slice.
  const tiledCases = [[37, 70, 48, 'f32', false], [130, 136, 32, 'f16', false], [1, 20, 16, 'f32', true], [257, 129, 64, 'f32', true]] as const;
  // Emulated: two cases (each spec compiles its own kernel, slowly on lavapipe) that still cross both tile edges.
  for (const emulate of [true, false]) {
    for (const [m, n, k, y, accumulate] of emulate ? [tiledCases[0], tiledCases[3]] : tiledCases) {
      it(`tiled gemm ${m}×${n}×${k} y ${y}${accumulate ? ' accumulate' : ''}${emulate ? ' (emulated fragments)' : ''}: edges, strided x and y, bias`, async (t) => {
        if (!emulate && !hasTensorCores(device())) return t.skip('no subgroup matrices on this adapter');
        const xStride = k + 8, yStride = n + 3, yOffset = 5;
        const x = rand(8 + m * xStride, 22, 1), w = rand(8 + n * k, 23, 0.5), bias = rand(n, 24, 0.1), y0 = rand(yOffset + m * yStride, 25);
        const yBuf = accumulate ? up(y0) : poisoned(yOffset + m * yStride, y);
        const enc = new KernelEncoder(device(), 'gemm-tiled');
        const p = { m, n, k, xOffset: 8, xStride, wOffset: 8, yOffset, yStride };
        if (emulate) await enc.dispatch(tiledGemmProgram, { y, bias: true, accumulate, emulate }, p, { x: up(x, 'f16'), w: up(w, 'f16'), bias: up(bias), y: yBuf }, tiledGemmWorkgroups(p));
        else await enc.gemm({ x: 'f16', w: 'f16', y, bias: true, accumulate, kernel: 'tiled' }, p, { x: up(x, 'f16'), w: up(w, 'f16'), y: yBuf, bias: up(bias) });
        enc.submit();
        const got = await read(yBuf, yOffset + m * yStride, y);
        const xs = roundF16(x), ws = roundF16(w).subarray(8);
        const xRows = new Float32Array(m * k);
        for (let i = 0; i < m; i++) xRows.set(xs.subarray(8 + i * xStride, 8 + i * xStride + k), i * k);
        const want = linearReference(xRows, m, ws, n, k, bias);
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < yStride; j++) {
            const o = yOffset + i * yStride + j;
            if (j >= n) {
              // Padding between rows stays as it was: poisoned (NaN) or the accumulate input.
              assert.ok(accumulate ? got[o] === Math.fround(y === 'f32' ? y0[o] : got[o]) : Number.isNaN(got[o]), `y[${o}] outside the slice was written`);
              continue;
            }
            const ref = want[i * n + j] + (accumulate ? y0[o] : 0);
            assert.ok(Math.abs(got[o] - ref) <= 2e-3 * Math.sqrt(k) * Math.max(1, Math.abs(ref)), `y[${i}, ${j}] = ${got[o]}, want ${ref}`);
          }
        }
      });
    }
  }

  it('embed gathers rows of the table', async () => {
    const [vocab, hidden] = [11, 37];
    const table = rand(vocab * hidden, 7);
    const ids = new Uint32Array([3, 0, 10, 3, 7]);
    const xBuf = poisoned(ids.length * hidden);
    const enc = new KernelEncoder(device(), 'embed');
    await enc.dispatch(embedProgram, { t: 'f16' }, { tokens: ids.length, hidden, vocab }, { ids: up(ids), table: up(table, 'f16'), x: xBuf }, flatGrid(ids.length * hidden));
    enc.submit();
    const x = await read(xBuf, ids.length * hidden);
    const t16 = roundF16(table);
    ids.forEach((id, t) => assert.deepEqual(x.subarray(t * hidden, (t + 1) * hidden), t16.subarray(id * hidden, (id + 1) * hidden)));
  });

  for (const t of ['f32', 'f16'] as const) {
    it(`rmsNorm (${t} out) matches ops.rmsNorm, from a row offset`, async () => {
      const [rows, hidden] = [5, 300];
      const x = rand((rows + 2) * hidden, 8, 3);
      const w = rand(hidden, 9);
      const yBuf = poisoned(rows * hidden, t);
      const enc = new KernelEncoder(device(), 'rmsnorm');
      await enc.dispatch(rmsNormProgram, { t }, { rows, hidden, eps: 1e-5, xOffset: 2 * hidden, yOffset: 0 }, { x: up(x), weight: up(w), y: yBuf }, rowGrid(rows));
      enc.submit();
      const y = await read(yBuf, rows * hidden, t);
      const want = rmsNorm(x.subarray(2 * hidden), rows, hidden, w, 1e-5);
      const tol = t === 'f16' ? 2e-3 : 1e-5;
      for (let i = 0; i < rows * hidden; i++) assert.ok(Math.abs(y[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i])), `y[${i}] ${y[i]} vs ${want[i]}`);
    });
  }

  it('rope rotates q and k heads of a strided row in place, as RopeTable does, at a start position', async () => {
    const [tokens, heads, D, extra, start] = [7, 3, 10, 4, 1000];
    const rowStride = heads * D + extra;
    const x = rand(tokens * rowStride, 10);
    const xBuf = up(x);
    const rope = new RopeTable(D, 10000);
    const positions = start + tokens;
    const enc = new KernelEncoder(device(), 'rope');
    await enc.dispatch(ropeProgram, { t: 'f32' }, { tokens, heads, half: D / 2, rowStride, offset: 0, start, sinOffset: positions * (D / 2) },
      { table: up(ropeTable(rope.invFreq, positions)), x: xBuf }, flatGrid(tokens * heads * D));
    enc.submit();
    const y = await read(xBuf, tokens * rowStride);
    const dense = new Float32Array(tokens * heads * D);
    for (let t = 0; t < tokens; t++) dense.set(x.subarray(t * rowStride, t * rowStride + heads * D), t * heads * D);
    rope.apply(dense, tokens, heads, start);
    for (let t = 0; t < tokens; t++) {
      for (let i = 0; i < heads * D; i++) assert.ok(Math.abs(y[t * rowStride + i] - dense[t * heads * D + i]) < 1e-6, `t ${t} i ${i}`);
      for (let i = heads * D; i < rowStride; i++) assert.equal(y[t * rowStride + i], x[t * rowStride + i]);
    }
  });

  it('siluMul of a fused gate|up and copyRows into a strided slice', async () => {
    const [rows, inter] = [9, 77];
    const gu = rand(rows * 2 * inter, 11, 4);
    const outBuf = poisoned(rows * inter);
    const dstBuf = poisoned(3 + rows * 80);
    const enc = new KernelEncoder(device(), 'silu');
    await enc.dispatch(siluMulProgram, { t: 'f32' }, { rows, inter }, { gu: up(gu), out: outBuf }, flatGrid(rows * inter));
    await enc.dispatch(copyRowsProgram, { t: 'f32' }, { rows, width: inter, srcOffset: 0, srcStride: inter, dstOffset: 3, dstStride: 80 }, { src: outBuf, dst: dstBuf }, flatGrid(rows * inter));
    enc.submit();
    const out = await read(outBuf, rows * inter);
    const dst = await read(dstBuf, 3 + rows * 80);
    const gate = new Float32Array(rows * inter), upv = new Float32Array(rows * inter);
    for (let r = 0; r < rows; r++) {
      gate.set(gu.subarray(r * 2 * inter, r * 2 * inter + inter), r * inter);
      upv.set(gu.subarray(r * 2 * inter + inter, (r + 1) * 2 * inter), r * inter);
    }
    const want = siluMul(gate, upv);
    for (let i = 0; i < rows * inter; i++) assert.ok(Math.abs(out[i] - want[i]) < 1e-5 * Math.max(1, Math.abs(want[i])), `out[${i}]`);
    for (let r = 0; r < rows; r++) {
      assert.deepEqual(dst.subarray(3 + r * 80, 3 + r * 80 + inter), out.subarray(r * inter, (r + 1) * inter));
      if (r + 1 < rows) assert.ok(Number.isNaN(dst[3 + r * 80 + inter]));
    }
  });
});
