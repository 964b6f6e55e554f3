/**
 * The XAttention selection kernel (xattention-select.ts) driven on its own: W rows written here,
 * both of its algorithms (the workgroup sort and the tiled rank scan) on the same rows, compared
 * bit for bit with selectBlocks. W are multiples of 1/64 below 4 and thresholds have three bits,
 * so every partial sum and tau·Σ W is exact in f32 and f64: any order of summation decides alike,
 * and a differing block is a wrong rank (the tie rule) or a wrong rule, never rounding.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createStorage, flagWordsPerRow, readBuffers } from '../src/backends/webgpu/attention/block-list.js';
import { selectXAttentionBlocksWebGpu } from '../src/backends/webgpu/methods/xattention/xattention-plan.js';
import { SELECT_SORT_CAPACITY, SELECT_TILED_UP_TO, selectSpec, type XAttentionSelectSpec, xattentionSelectProgram } from '../src/backends/webgpu/methods/xattention/xattention-select.js';
import { uploadArray } from '../src/backends/webgpu/runtime/buffers.js';
import { compileProgram, encodeProgram } from '../src/backends/webgpu/runtime/program.js';
import { BufferUsage } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { BlockMask, type BlockMaskDims } from '../src/core/block-mask.js';
import { UnsupportedError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { diagonalBlock, selectBlocks, stridedGeometry } from '../src/methods/xattention/antidiagonal-estimate.js';
import { assertSameMask } from './helpers/masks.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const BLOCK = 4;
const POISON = 0xdeadbeef;

type Case = { name: string; batch: number; heads: number; Lq: number; Lk: number; causal: boolean; tau: number };

const geometry = (c: Case) => stridedGeometry(c.Lq, c.Lk, { threshold: c.tau, blockSize: BLOCK, stride: 1 }, c.causal);
const dimsOf = (c: Case): BlockMaskDims => ({ batch: c.batch, heads: c.heads, queryLength: c.Lq, keyLength: c.Lk, blockRows: BLOCK, blockCols: BLOCK, causal: c.causal });

/**
 * W [rows, nKB], row r of kind r % 5: spread (k/64, k < 256: many values, some ties), heavy ties
 * (k < 4), all equal, mostly zero with a few spikes, and all zero (tau·Σ W = 0 keeps no candidate).
 */
function wRows(rows: number, nKB: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const w = new Float32Array(rows * nKB);
  for (let r = 0; r < rows; r++)
    for (let kb = 0; kb < nKB; kb++) {
      const kind = r % 5;
      const k = kind === 0 ? Math.floor(rng.next() * 256) : kind === 1 ? Math.floor(rng.next() * 4) : kind === 2 ? 3 : kind === 3 ? (rng.next() < 0.05 ? 100 : 0) : 0;
      w[r * nKB + kb] = k / 64;
    }
  return w;
}

/** selectBlocks on every row: the bitmap words and counts the kernel must write. */
function cpuSelect(c: Case, w: Float32Array): { flags: Uint32Array; counts: Uint32Array; dense: Uint8Array } {
  const g = geometry(c);
  const nKB = g.numKeyBlocks;
  const rows = c.batch * c.heads * g.numQueryBlocks;
  const words = flagWordsPerRow(nKB);
  const flags = new Uint32Array(rows * words);
  const counts = new Uint32Array(rows);
  const dense = new Uint8Array(rows * nKB);
  for (let r = 0; r < rows; r++) {
    const kept = selectBlocks(w.subarray(r * nKB, (r + 1) * nKB), c.tau, c.causal ? diagonalBlock(g, r % g.numQueryBlocks) : null);
    counts[r] = kept.length;
    for (const kb of kept) {
      flags[r * words + (kb >> 5)] |= 1 << (kb & 31);
      dense[r * nKB + kb] = 1;
    }
  }
  return { flags, counts, dense };
}

/** One dispatch of a variant; counts poisoned first, flags zeroed (the kernel ORs into them). */
async function runKernel(device: GPUDevice, spec: XAttentionSelectSpec, c: Case, w: Float32Array): Promise<{ flags: Uint32Array; counts: Uint32Array }> {
  const g = geometry(c);
  const rows = c.batch * c.heads * g.numQueryBlocks;
  const words = flagWordsPerRow(g.numKeyBlocks);
  const compiled = await compileProgram(device, xattentionSelectProgram, spec);
  const blockSums = uploadArray(device, w, 'test.blockSums');
  const flags = createStorage(device, rows * words * 4, 'test.flags');
  const counts = uploadArray(device, new Int32Array(new Uint32Array(rows).fill(POISON).buffer), 'test.counts', BufferUsage.COPY_SRC);
  const encoder = device.createCommandEncoder({ label: 'test.select' });
  const uniform = encodeProgram(device, encoder, xattentionSelectProgram, compiled, {
    params: {
      heads: c.heads, numQueryBlocks: g.numQueryBlocks, numKeyBlocks: g.numKeyBlocks, blockSize: BLOCK,
      queryLength: c.Lq, keyLength: c.Lk, causal: c.causal ? 1 : 0, threshold: c.tau, flagWords: words,
    },
    buffers: { blockSums, flags, counts },
    workgroups: [g.numQueryBlocks, c.heads, c.batch],
  });
  device.queue.submit([encoder.finish()]);
  try {
    const [f, n] = await readBuffers(device, [{ buffer: flags, bytes: rows * words * 4 }, { buffer: counts, bytes: rows * 4 }]);
    return { flags: new Uint32Array(f), counts: new Uint32Array(n) };
  } finally {
    for (const b of [blockSums, flags, counts, uniform]) b.destroy();
  }
}

/** Equal words and counts; on failure names the first differing rows with the blocks they differ in. */
function assertSameSelection(got: { flags: Uint32Array; counts: Uint32Array }, want: { flags: Uint32Array; counts: Uint32Array }, words: number, label: string): void {
  const bad: string[] = [];
  for (let r = 0; r < want.counts.length && bad.length < 5; r++) {
    const diff: number[] = [];
    for (let i = 0; i < words; i++) for (let bit = 0; bit < 32; bit++) if (((got.flags[r * words + i] ^ want.flags[r * words + i]) >>> bit) & 1) diff.push(i * 32 + bit);
    if (diff.length || got.counts[r] !== want.counts[r]) bad.push(`  row ${r}: blocks differing ${diff.slice(0, 8).join(',')}; count ${got.counts[r]}, want ${want.counts[r]}`);
  }
  assert.equal(bad.length, 0, `${label}: first differing rows\n${bad.join('\n')}`);
}

const cases: Case[] = [
  { name: 'causal, 300 key blocks (candidates per row 0 .. 298)', batch: 1, heads: 2, Lq: 1200, Lk: 1200, causal: true, tau: 0.875 },
  { name: 'causal, Lq < Lk, lengths not block multiples', batch: 2, heads: 3, Lq: 149, Lk: 1003, causal: true, tau: 0.75 },
  { name: 'causal, length 1 and 5', batch: 1, heads: 1, Lq: 5, Lk: 5, causal: true, tau: 0.5 },
  { name: 'non-causal, 37 key blocks, q longer than k', batch: 2, heads: 1, Lq: 190, Lk: 147, causal: false, tau: 0.625 },
  { name: 'non-causal, 1 key block', batch: 1, heads: 2, Lq: 9, Lk: 3, causal: false, tau: 0.5 },
  { name: `non-causal, ${SELECT_SORT_CAPACITY} key blocks (the sort's capacity)`, batch: 1, heads: 1, Lq: 20, Lk: SELECT_SORT_CAPACITY * BLOCK, causal: false, tau: 0.875 },
  { name: `causal, ${SELECT_SORT_CAPACITY} key blocks, q shorter than k`, batch: 1, heads: 1, Lq: 13, Lk: SELECT_SORT_CAPACITY * BLOCK - 1, causal: true, tau: 0.75 },
];

describe('XAttention selection kernel: choice of algorithm (no device needed)', () => {
  it('sorts rows of more than 128 blocks up to its capacity where the device allows its workgroup, else scans tiles', () => {
    const limits = { maxComputeWorkgroupsPerDimension: 65535, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupStorageSize: 32768 } as GPUSupportedLimits;
    assert.equal(selectSpec(1, limits).algorithm, 'tiled');
    assert.equal(selectSpec(SELECT_TILED_UP_TO, limits).algorithm, 'tiled');
    assert.equal(selectSpec(SELECT_TILED_UP_TO + 1, limits).algorithm, 'sort');
    assert.equal(selectSpec(SELECT_SORT_CAPACITY, limits).algorithm, 'sort');
    assert.equal(selectSpec(SELECT_SORT_CAPACITY + 1, limits).algorithm, 'tiled');
    assert.equal(selectSpec(1024, { ...limits, maxComputeWorkgroupStorageSize: 16384 }).algorithm, 'tiled');
    assert.equal(selectSpec(1024, { ...limits, maxComputeInvocationsPerWorkgroup: 128 }).algorithm, 'tiled');
    assert.match(xattentionSelectProgram.supports(selectSpec(9, limits, 'sort'), { workgroupsX: 1, numKeyBlocks: SELECT_SORT_CAPACITY + 1 }, limits) ?? '', /2049 key blocks exceed the sort capacity 2048/);
    assert.equal(xattentionSelectProgram.supports(selectSpec(9, limits, 'tiled'), { workgroupsX: 1, numKeyBlocks: 100000 }, limits), null);
  });
});

const gpu = await acquireTestGpu();

describe('XAttention selection kernel on WebGPU', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  for (const [i, c] of cases.entries()) {
    it(`sort and tiled flags and counts = selectBlocks: ${c.name}`, async (t) => {
      const device = gpu.ctx!.device;
      const g = geometry(c);
      const w = wRows(c.batch * c.heads * g.numQueryBlocks, g.numKeyBlocks, 100 + i);
      const want = cpuSelect(c, w);
      for (const algorithm of ['sort', 'tiled'] as const) {
        const spec = selectSpec(g.numKeyBlocks, device.limits, algorithm);
        const reason = xattentionSelectProgram.supports(spec, { workgroupsX: g.numQueryBlocks, numKeyBlocks: g.numKeyBlocks }, device.limits);
        if (reason) {
          t.diagnostic(`${algorithm} skipped: ${reason}`);
          continue;
        }
        assertSameSelection(await runKernel(device, spec, c, w), want, flagWordsPerRow(g.numKeyBlocks), `${c.name} (${algorithm})`);
      }
      assertSameMask(await selectXAttentionBlocksWebGpu(gpu.ctx!, w, dimsOf(c), c.tau), BlockMask.fromDense(dimsOf(c), want.dense), `${c.name} (auto, CSR)`);
    });
  }

  it('rows over the sort capacity fall back to the tiled scan (auto), and forcing the sort names why not', async () => {
    const c: Case = { name: 'non-causal, capacity + 1 key blocks', batch: 1, heads: 1, Lq: 8, Lk: (SELECT_SORT_CAPACITY + 1) * BLOCK, causal: false, tau: 0.875 };
    const g = geometry(c);
    const w = wRows(g.numQueryBlocks, g.numKeyBlocks, 7);
    assert.equal(selectSpec(g.numKeyBlocks, gpu.ctx!.device.limits).algorithm, 'tiled');
    const got = await selectXAttentionBlocksWebGpu(gpu.ctx!, w, dimsOf(c), c.tau);
    assertSameMask(got, BlockMask.fromDense(dimsOf(c), cpuSelect(c, w).dense), c.name);
    await assert.rejects(selectXAttentionBlocksWebGpu(gpu.ctx!, w, dimsOf(c), c.tau, 'sort'), (err: unknown) => err instanceof UnsupportedError && /exceed the sort capacity/.test(err.message));
  });
});
