/// <reference types="@webgpu/types" />
/**
 * flash-skip-softmax inside the WebGPU flash loop: the attention skeleton (attention-program.ts)
 * with the `tiles` block list (every key tile of bc keys, in order) and a `gate` hook that decides,
 * before a tile's V is touched, whether to skip it. The decision is the sequential (v2) rule of
 * methods/flash-skip-softmax.ts at the same br × bc tiling:
 *   keep ⇔ ∃ row r of the query tile: tileMax[r] − max(m[r], tileMax[r]) > log(threshold)
 *   (m[r] = running max over kept tiles; the first tile any row sees is always kept)
 * Reference twin: backends/cpu/flash-skip-attention.ts (same decisions, same counters).
 *
 *   q [B, H, Lq, D], k/v [B, Hkv, Lk, D|Dv] → out [B, H, Lq, Dv] in q's layout and dtype
 *   workgroup = one whole query tile (br ≤ rows threads, one per row), so the vote covers every row
 *   per key tile: pass 1 loads K only (kTile [TILE_KEYS, D/4] vec4) and takes each row's max in the
 *   log2 domain; the [br, bc] scores do not fit workgroup memory, so a kept tile's pass 2 (the
 *   skeleton's online softmax) recomputes them: a kept tile costs 2·QKᵀ, a skipped one 1·QKᵀ, no P·V.
 *   kept [B, H, nQB, nKB] u32 (1 = computed) and counters [visited, skipped, raised rows] are written
 *   by the same dispatch (atomics), so the statistics need no second pass and no L×L readback.
 */
import { type AttentionOptions, describeAttention } from '../../../../core/attention-shape.js';
import { BlockMask } from '../../../../core/block-mask.js';
import { InvalidArgumentError, UnsupportedError } from '../../../../core/errors.js';
import { type Phase, phaseOf } from '../../../../core/stats.js';
import type { HeadTensor } from '../../../../core/tensor.js';
import { type AttentionDispatchOptions, attentionDispatch, attentionSpecFor, type AttentionViews } from '../../attention/attention-dispatch.js';
import { attentionParams, attentionProgram, type AttentionShape, type AttentionSpec, attentionWgsl, tileKeys } from '../../attention/attention-program.js';
import { createOutputTensor, createStorageBuffer, readBuffer, readTensor, uploadTensor } from '../../runtime/buffers.js';
import type { WebGpuContext } from '../../runtime/webgpu-device.js';
import type { TensorCoreOptions } from '../../attention/attention-views.js';
import { encodeTensorCoreFlashSkip, tensorCoreFlashSkipSpec } from './tensor-core-flash-skip.js';
import { type BindingSpec, compileProgram, encodeProgram, type KernelProgram, ParamsLayout } from '../../runtime/program.js';

export type FlashSkipAttentionSpec = AttentionSpec & {
  /** Threads (= query rows) per workgroup: a power of two ≥ br, so one workgroup votes for the whole tile. */
  readonly rows: number;
};

export const flashSkipParams = new ParamsLayout([...attentionParams.fields, ['log2Threshold', 'f32'], ['numKeyBlocks', 'u32']] as const);
type FlashSkipParamName = (typeof flashSkipParams.fields)[number][0];

function flashSkipBindings(spec: FlashSkipAttentionSpec): BindingSpec[] {
  return [...attentionProgram.bindings(spec), { name: 'kept', kind: 'storage' }, { name: 'counters', kind: 'storage' }];
}

export const flashSkipAttentionProgram: KernelProgram<FlashSkipAttentionSpec, FlashSkipParamName, AttentionShape> = {
  name: 'flash-skip-attention',
  params: flashSkipParams,
  bindings: flashSkipBindings,
  constants: (spec) => ({ headDim: spec.headDim, valueDim: spec.valueDim, workgroupSize: spec.rows, tileKeys: tileKeys(spec) }),
  workgroupSize: (spec) => spec.rows,
  wgsl: (spec, header) => attentionWgsl(spec, header, {
    bindings: flashSkipBindings(spec), tiles: true, gate: gateWgsl(spec, flashSkipBindings(spec)),
    init: '  if (lid == 0u) { seenFirst = 0u; }  // only thread 0 reads or writes it: no barrier needed',
  }),
  supports(spec, shape, limits) {
    if (spec.rows > limits.maxComputeInvocationsPerWorkgroup) {
      return `a query tile of ${spec.rows} rows needs ${spec.rows} invocations per workgroup, device allows ${limits.maxComputeInvocationsPerWorkgroup}`;
    }
    return attentionProgram.supports(spec, shape, limits);
  },
};

function gateWgsl(spec: FlashSkipAttentionSpec, bindings: readonly BindingSpec[]): string {
  const binding = (name: string) => bindings.findIndex((b) => b.name === name) + 1;
  const dLoop = spec.headDimLoop === 'rolled' ? 'P.headDimVec4' : 'D4';
  return /* wgsl */ `
@group(0) @binding(${binding('kept')}) var<storage, read_write> kept: array<u32>;  // [B, H, nQB, nKB]
@group(0) @binding(${binding('counters')}) var<storage, read_write> counters: array<atomic<u32>, 3>;  // visited, skipped, raised rows
var<workgroup> keepVotes: atomic<u32>;     // rows that keep the current tile
var<workgroup> visibleVotes: atomic<u32>;  // rows that see any key of it
var<workgroup> decision: u32;              // 1 = keep, read back uniformly
var<workgroup> seenFirst: u32;             // some earlier tile held a visible score (thread 0 only)

fn loadKeyTile(b: u32, kh: u32, t0: u32, cols: u32, lid: u32) {
  for (var e = lid; e < TILE_KEYS * D4; e += WORKGROUP_SIZE) {
    let c = e / D4;
    kTile[e] = select(vec4<f32>(0.0), loadK4(keyRow(b, kh, t0 + min(c, cols - 1u)) + (e % D4) * 4u), c < cols);
  }
}

fn keepBlock(b: u32, h: u32, kh: u32, qb: u32, n: u32, j0: u32, j1: u32, lid: u32, rowActive: bool, keyPos: u32, i: u32,
             qv: ptr<function, array<vec4<${spec.dtype}>, D4>>, m: f32) -> bool {
  if (lid == 0u) { atomicStore(&keepVotes, 0u); atomicStore(&visibleVotes, 0u); }
  // Pass 1: the row's max over the tile, with exactly the arithmetic pass 2 will use.
  var tileMax = MASKED;
  for (var t0 = j0; t0 < j1; t0 += TILE_KEYS) {
    let cols = min(TILE_KEYS, j1 - t0);
    loadKeyTile(b, kh, t0, cols, lid);
    workgroupBarrier();
    if (rowActive) {
      for (var c = 0u; c < cols; c++) {
        if (P.causal == 0u || t0 + c <= keyPos) {
          var x = 0.0;
          for (var d = 0u; d < ${dLoop}; d++) { x += dot(vec4<f32>((*qv)[d]), kTile[c * D4 + d]); }
          tileMax = max(tileMax, x * P.scaleLog2e);
        }
      }
    }
    workgroupBarrier();
  }
  let visible = rowActive && tileMax > MASKED;
  if (visible) {
    atomicAdd(&visibleVotes, 1u);
    if (tileMax - max(m, tileMax) > P.log2Threshold) { atomicAdd(&keepVotes, 1u); }
  }
  workgroupBarrier();
  if (lid == 0u) {
    let any = atomicLoad(&visibleVotes) > 0u;
    let keep = atomicLoad(&keepVotes) > 0u || (any && seenFirst == 0u);
    if (any) { seenFirst = 1u; }
    decision = select(0u, 1u, keep);
    atomicAdd(&counters[0], 1u);
    if (!keep) { atomicAdd(&counters[1], 1u); }
    kept[((b * P.heads + h) * P.numQueryBlocks + qb) * P.numKeyBlocks + n] = decision;
  }
  let keep = workgroupUniformLoad(&decision) == 1u;
  // FlashAttention rescales a row whenever a kept tile raises its max (ModelOpt's correction_factor).
  if (keep && visible && tileMax > m) { atomicAdd(&counters[2], 1u); }
  return keep;
}
`;
}

export interface FlashSkipGpuOptions extends AttentionOptions {
  /** Skip when exp(s − m) < threshold for every entry of the tile; in (0, 1]. */
  threshold: number;
  br?: number;
  bc?: number;
  phase?: Phase;
  /**
   * 'auto' (the default: tensor cores where the call fits them, tensor-core-flash-skip.ts; else the
   * portable kernel), 'tensor-core' (throws with the reason a call cannot run there) or 'portable'.
   * On the H200 the tensor-core mode ran 5.6–18× faster than the portable kernel (2026-12-04).
   */
  kernel?: 'portable' | 'tensor-core' | 'auto';
  /** Tensor-core variant options (subgroups follow br; `emulate` for tests on adapters without subgroup matrices). */
  tensorCore?: TensorCoreOptions;
}

export interface FlashSkipGpuResult {
  output: HeadTensor;
  /** The tiles the loop computed, as a block mask over the call. */
  kept: BlockMask;
  visitedTiles: number;
  skippedTiles: number;
  /** (row, kept tile) steps in which the row's running maximum rose. */
  raisedRows: number;
  /** The kept tiles as a dense [B, H, nQB, nKB] view (1 = computed). */
  keptView: Uint8Array;
}

/** The workgroup rows for a tile of br query rows: the next power of two, at least 64. */
export function flashSkipRows(br: number): number {
  return Math.max(64, 2 ** Math.ceil(Math.log2(br)));
}

/**
 * Encodes the in-loop flash-skip dispatch on GPU views; `kept` (u32 [B, H, nQB, nKB], zeroed) and
 * `counters` (u32 [3], zeroed) are written. br = 1 in the decode phase, as on the CPU. Returns the
 * Params uniform (destroy it once the work is done).
 */
export async function encodeFlashSkipAttention(
  device: GPUDevice, encoder: GPUCommandEncoder, views: AttentionViews,
  opts: { causal: boolean; scale: number; threshold: number; br: number; bc: number; kept: GPUBuffer; counters: GPUBuffer } & Pick<FlashSkipGpuOptions, 'kernel' | 'tensorCore'>,
): Promise<GPUBuffer> {
  if (!(opts.threshold > 0 && opts.threshold <= 1)) throw new InvalidArgumentError('threshold', opts.threshold, 'in (0, 1]');
  for (const [name, x] of [['br', opts.br], ['bc', opts.bc]] as const) {
    if (!Number.isInteger(x) || x < 1) throw new InvalidArgumentError(name, x, 'an integer >= 1');
  }
  const kernel = opts.kernel ?? 'auto';
  if (kernel !== 'portable' && kernel !== 'tensor-core' && kernel !== 'auto') throw new InvalidArgumentError('kernel', kernel, "'portable', 'tensor-core' or 'auto'");
  if (kernel !== 'portable') {
    const tc = tensorCoreFlashSkipSpec(device, views, opts, opts.tensorCore, kernel === 'tensor-core');
    if (typeof tc !== 'string') return encodeTensorCoreFlashSkip(device, encoder, views, opts, tc);
    if (kernel === 'tensor-core') throw new UnsupportedError(`flash-skip on tensor cores cannot run this call: ${tc}`);
  }
  const dispatchOpts: AttentionDispatchOptions = { causal: opts.causal, scale: opts.scale, blocks: { kind: 'all' } };
  const spec: FlashSkipAttentionSpec = { ...attentionSpecFor(device, views, dispatchOpts), rows: flashSkipRows(opts.br) };
  const d = attentionDispatch(device, views, dispatchOpts, spec, spec.rows);
  const numQueryBlocks = Math.ceil(views.q.length / opts.br);
  const numKeyBlocks = Math.ceil(d.params.keyLength / opts.bc);
  const shape = { ...d.shape, workgroupsX: numQueryBlocks };
  const reason = flashSkipAttentionProgram.supports(spec, shape, device.limits);
  if (reason) throw new UnsupportedError(`WebGPU flash-skip attention cannot run this shape: ${reason}`);
  const params = { ...d.params, blockRows: opts.br, blockCols: opts.bc, numQueryBlocks, chunksPerBlock: 1, log2Threshold: Math.log2(opts.threshold), numKeyBlocks };
  const compiled = await compileProgram(device, flashSkipAttentionProgram, spec);
  return encodeProgram(device, encoder, flashSkipAttentionProgram, compiled, {
    params, buffers: { ...d.buffers, kept: opts.kept, counters: opts.counters }, workgroups: [numQueryBlocks, views.q.heads, views.q.batch],
  });
}

/** Host level: uploads, runs the in-loop kernel once, reads back the output, kept tiles and counters. */
export async function flashSkipAttentionWebGpu(ctx: WebGpuContext, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: FlashSkipGpuOptions): Promise<FlashSkipGpuResult> {
  const p = describeAttention(q, k, v, opts);
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) t.assertFinite(name);
  const phase = opts.phase ?? phaseOf(p.queryLength);
  const br = phase === 'decode' ? 1 : opts.br ?? 128;
  const bc = opts.bc ?? 128;
  const nQB = Math.ceil(p.queryLength / br);
  const nKB = Math.ceil(p.keyLength / bc);
  const { device } = ctx;
  const label = 'flash-skip-attention';
  const views = {
    q: uploadTensor(device, q, `${label}.q`),
    k: uploadTensor(device, k.toDType(q.dtype), `${label}.k`),
    v: uploadTensor(device, v.toDType(q.dtype), `${label}.v`),
    o: createOutputTensor(device, { batch: p.batch, heads: p.heads, length: p.queryLength, headDim: p.valueDim }, q.layout, q.dtype, `${label}.o`),
  };
  const keptBytes = p.batch * p.heads * nQB * nKB * 4;
  const kept = createStorageBuffer(device, keptBytes, `${label}.kept`);
  const counters = createStorageBuffer(device, 12, `${label}.counters`);
  const owned = [views.q.buffer, views.k.buffer, views.v.buffer, views.o.buffer, kept, counters];
  try {
    const encoder = device.createCommandEncoder({ label });
    owned.push(await encodeFlashSkipAttention(device, encoder, views, {
      causal: p.causal, scale: p.scale, threshold: opts.threshold, br, bc, kept, counters, kernel: opts.kernel, tensorCore: opts.tensorCore,
    }));
    device.queue.submit([encoder.finish()]);
    const output = await readTensor(device, views.o, q.layout);
    const keptFlags = new Uint32Array(await readBuffer(device, kept, keptBytes));
    const [visitedTiles, skippedTiles, raisedRows] = new Uint32Array(await readBuffer(device, counters, 12));
    const dims = { batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, blockRows: br, blockCols: bc, causal: p.causal };
    const keptView = Uint8Array.from(keptFlags);
    return { output, kept: BlockMask.fromDense(dims, keptView), visitedTiles, skippedTiles, raisedRows, keptView };
  } finally {
    for (const b of owned) b.destroy();
  }
}
