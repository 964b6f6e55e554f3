/// <reference types="@webgpu/types" />
/**
 * Building the CSR block list (BlockMask rowPtr/colIdx) on the GPU from a kept-block bitmap, for
 * methods whose plan is made on the GPU (XAttention, tri-shape). A planning kernel writes
 *   flags  u32 [rows, flagWords]   bit kb of word kb/32 set when key block kb is kept
 *   counts u32 [rows]              kept blocks per row (rows = B·H·nQB, in BlockMask row order)
 * and these two kernels turn them into what the block-sparse attention kernel reads:
 *   block-list-scan     one workgroup of 256: rowPtr[r] = Σ_{r' < r} counts[r'], rowPtr[rows] = total
 *                       (each thread sums a contiguous chunk of rows, a Hillis-Steele scan over the
 *                       256 chunk sums, then each thread writes its chunk's offsets)
 *   block-list-compact  one thread per row: the set bits of its flag words, ascending, into
 *                       colIdx[rowPtr[r] ..]
 * colIdx is allocated at `capacity` entries (an upper bound the planner knows, e.g. the causally
 * valid blocks), so nothing is read back before attention runs. Reference twin: BlockMask.fromDense.
 */
import { BlockMask, type BlockMaskDims } from '../../../core/block-mask.js';
import { UnsupportedError } from '../../../core/errors.js';
import type { TokenRule } from '../../../core/token-rule.js';
import { BufferUsage, MapMode } from '../runtime/webgpu-device.js';
import { compileProgram, encodeProgram, type KernelProgram, ParamsLayout } from '../runtime/program.js';

const SCAN_WORKGROUP = 256;
const COMPACT_WORKGROUP = 64;

/** A block list resident on the GPU, in BlockMask's CSR form. */
export interface GpuBlockList {
  /** i32 [rows + 1] */
  rowPtr: GPUBuffer;
  /** i32 [capacity]; the first rowPtr[rows] entries are meaningful. */
  colIdx: GPUBuffer;
  rows: number;
  capacity: number;
  dims: BlockMaskDims;
  tokenRule?: TokenRule;
}

/** Words of the kept-block bitmap per row. */
export const flagWordsPerRow = (numKeyBlocks: number): number => Math.ceil(numKeyBlocks / 32);

type NoSpec = { readonly version: number };

const scanParams = new ParamsLayout([['rows', 'u32']] as const);

export const blockListScanProgram: KernelProgram<NoSpec, 'rows'> = {
  name: 'block-list-scan',
  params: scanParams,
  bindings: () => [{ name: 'counts', kind: 'read-only-storage' }, { name: 'rowPtr', kind: 'storage' }],
  constants: () => ({ workgroupSize: SCAN_WORKGROUP }),
  workgroupSize: () => SCAN_WORKGROUP,
  supports: () => null,
  wgsl: (_spec, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> counts: array<u32>;       // [rows]
@group(0) @binding(2) var<storage, read_write> rowPtr: array<i32>; // [rows + 1]

var<workgroup> sums: array<u32, WORKGROUP_SIZE>;  // [256] chunk totals, scanned in place

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(local_invocation_index) lid: u32) {
  let per = (P.rows + WORKGROUP_SIZE - 1u) / WORKGROUP_SIZE;
  let start = min(lid * per, P.rows);
  let end = min(start + per, P.rows);
  var own = 0u;
  for (var r = start; r < end; r++) { own += counts[r]; }
  sums[lid] = own;
  workgroupBarrier();
  for (var off = 1u; off < WORKGROUP_SIZE; off *= 2u) {
    var add = 0u;
    if (lid >= off) { add = sums[lid - off]; }
    workgroupBarrier();
    sums[lid] += add;
    workgroupBarrier();
  }
  var running = sums[lid] - own;  // exclusive prefix of this chunk
  for (var r = start; r < end; r++) {
    rowPtr[r] = i32(running);
    running += counts[r];
  }
  if (lid == WORKGROUP_SIZE - 1u) { rowPtr[P.rows] = i32(sums[lid]); }
}
`,
};

const compactParams = new ParamsLayout([['rows', 'u32'], ['flagWords', 'u32'], ['groupsX', 'u32']] as const);

export const blockListCompactProgram: KernelProgram<NoSpec, 'rows' | 'flagWords' | 'groupsX'> = {
  name: 'block-list-compact',
  params: compactParams,
  bindings: () => [
    { name: 'flags', kind: 'read-only-storage' }, { name: 'rowPtr', kind: 'read-only-storage' }, { name: 'colIdx', kind: 'storage' },
  ],
  constants: () => ({ workgroupSize: COMPACT_WORKGROUP }),
  workgroupSize: () => COMPACT_WORKGROUP,
  supports: () => null,
  wgsl: (_spec, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> flags: array<u32>;        // [rows, flagWords]
@group(0) @binding(2) var<storage, read> rowPtr: array<i32>;       // [rows + 1]
@group(0) @binding(3) var<storage, read_write> colIdx: array<i32>; // [capacity]

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = (wg.y * P.groupsX + wg.x) * WORKGROUP_SIZE + lid;
  if (row >= P.rows) { return; }
  var n = rowPtr[row];
  for (var w = 0u; w < P.flagWords; w++) {
    var bits = flags[row * P.flagWords + w];
    while (bits != 0u) {
      colIdx[n] = i32(w * 32u + countTrailingZeros(bits));
      n++;
      bits &= bits - 1u;  // clear the lowest set bit
    }
  }
}
`,
};

/** A storage buffer of `bytes` (at least 4), zero-initialised by WebGPU. */
export function createStorage(device: GPUDevice, bytes: number, label: string, extraUsage = 0): GPUBuffer {
  return device.createBuffer({ label, size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST | extraUsage });
}

/** A 2-D workgroup grid of at least n groups, each axis within the device limit. */
export function grid2d(n: number, limits: GPUSupportedLimits): [number, number, number] {
  const maxX = limits.maxComputeWorkgroupsPerDimension;
  const x = Math.max(1, Math.min(n, maxX));
  const y = Math.max(1, Math.ceil(n / x));
  if (y > maxX) throw new UnsupportedError(`${n} workgroups exceed ${maxX}² (maxComputeWorkgroupsPerDimension squared)`);
  return [x, y, 1];
}

/**
 * Encodes scan + compact: flags/counts (written earlier in `encoder`) → a GpuBlockList whose
 * buffers the caller owns; the dispatches' Params uniforms are pushed to `src.uniforms` for the
 * caller to free. `capacity` must bound the total kept blocks.
 */
export async function encodeBlockList(
  device: GPUDevice, encoder: GPUCommandEncoder,
  src: { flags: GPUBuffer; counts: GPUBuffer; dims: BlockMaskDims; capacity: number; tokenRule?: TokenRule; label: string; uniforms: GPUBuffer[] },
): Promise<GpuBlockList> {
  const { dims } = src;
  const nQB = Math.ceil(dims.queryLength / dims.blockRows);
  const nKB = Math.ceil(dims.keyLength / dims.blockCols);
  const rows = dims.batch * dims.heads * nQB;
  const rowPtr = createStorage(device, (rows + 1) * 4, `${src.label}.rowPtr`);
  const colIdx = createStorage(device, src.capacity * 4, `${src.label}.colIdx`);
  const spec = { version: 1 };
  const [scan, compact] = await Promise.all([compileProgram(device, blockListScanProgram, spec), compileProgram(device, blockListCompactProgram, spec)]);
  src.uniforms.push(encodeProgram(device, encoder, blockListScanProgram, scan, { params: { rows }, buffers: { counts: src.counts, rowPtr }, workgroups: [1, 1, 1] }));
  const groups = grid2d(Math.ceil(rows / COMPACT_WORKGROUP), device.limits);
  src.uniforms.push(encodeProgram(device, encoder, blockListCompactProgram, compact, {
    params: { rows, flagWords: flagWordsPerRow(nKB), groupsX: groups[0] }, buffers: { flags: src.flags, rowPtr, colIdx }, workgroups: groups,
  }));
  return { rowPtr, colIdx, rows, capacity: src.capacity, dims, tokenRule: src.tokenRule };
}

/** Copies buffers back in one submit; each result holds the first `bytes` of its buffer. */
export async function readBuffers(device: GPUDevice, reads: readonly { buffer: GPUBuffer; bytes: number }[]): Promise<ArrayBuffer[]> {
  const encoder = device.createCommandEncoder({ label: 'readback' });
  const staging = reads.map(({ buffer, bytes }) => {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const s = device.createBuffer({ label: `${buffer.label}.readback`, size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    encoder.copyBufferToBuffer(buffer, 0, s, 0, size);
    return s;
  });
  device.queue.submit([encoder.finish()]);
  try {
    return await Promise.all(staging.map(async (s, i) => {
      await s.mapAsync(MapMode.READ);
      const out = s.getMappedRange().slice(0, reads[i].bytes);
      s.unmap();
      return out;
    }));
  } finally {
    for (const s of staging) s.destroy();
  }
}

/**
 * The block list as a BlockMask on the host: O(kept blocks) bytes, never an L×L matrix. For plan
 * statistics and tests; attention itself reads the GPU buffers.
 */
export async function readBlockMask(device: GPUDevice, list: GpuBlockList): Promise<BlockMask> {
  const [ptr, cols] = await readBuffers(device, [{ buffer: list.rowPtr, bytes: (list.rows + 1) * 4 }, { buffer: list.colIdx, bytes: list.capacity * 4 }]);
  const rowPtr = new Int32Array(ptr);
  const total = rowPtr[list.rows];
  if (total > list.capacity) throw new UnsupportedError(`GPU block list has ${total} blocks, more than its capacity ${list.capacity}`);
  return new BlockMask(list.dims, rowPtr, new Int32Array(cols, 0, total).slice(), list.tokenRule);
}
