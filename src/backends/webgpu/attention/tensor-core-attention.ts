/// <reference types="@webgpu/types" />
/**
 * The tensor-core attention kernel as a KernelProgram (see program.ts), and when the dispatcher
 * may use it. What it computes and its tiles: tensor-core-attention.wgsl.ts. It serves f16 Q/K/V
 * on adapters with an f16→f32 16×16×16 subgroup-matrix configuration, with no token rule or one
 * whose visibility hook has tensor-core WGSL; everything else (f32, paged KV, awkward lengths) stays on the portable skeleton in
 * attention-program.ts.
 */
import { UnsupportedError } from '../../../core/errors.js';
import { TOKEN_RULE_PARAMS, type TokenRuleParam, tokenRuleHook, tokenRuleParams } from '../methods/gpu-token-rules.js';
import type { AttentionDispatchOptions, AttentionViews, TensorCoreOptions } from './attention-views.js';
import { oneRuleOptions } from './head-rule-split.js';
import type { GpuTensorView } from '../runtime/buffers.js';
import { hasTensorCores } from '../runtime/webgpu-device.js';
import { compileProgram, encodeProgram, type KernelProgram, ParamsLayout } from '../runtime/program.js';
import { emulationWorkgroupBytes } from './tensor-core-emulation.wgsl.js';
import { TC_ROWS_PER_SUBGROUP, tcKeyTile, type TensorCoreAttentionSpec, tensorCoreAttentionWgsl, tensorCoreGrid } from './tensor-core-attention.wgsl.js';

const SHAPE_FIELDS = [
  ['qLen', 'u32'], ['kLen', 'u32'], ['heads', 'u32'], ['group', 'u32'],
  ['qOffset', 'u32'], ['qStrideB', 'u32'], ['qStrideH', 'u32'], ['qStrideL', 'u32'],
  ['kOffset', 'u32'], ['kStrideB', 'u32'], ['kStrideH', 'u32'], ['kStrideL', 'u32'],
  ['vOffset', 'u32'], ['vStrideB', 'u32'], ['vStrideH', 'u32'], ['vStrideL', 'u32'],
  ['oOffset', 'u32'], ['oStrideB', 'u32'], ['oStrideH', 'u32'], ['oStrideL', 'u32'],
  ['scaleLog2', 'f32'], ['numQueryBlocks', 'u32'], ['blockRows', 'u32'], ['blockCols', 'u32'],
  // flash-skip-softmax in the loop (spec.flashSkip): log2 of its threshold, key tiles per method
  // block, method blocks per key row.
  ['log2Threshold', 'f32'], ['skipTiles', 'u32'], ['numKeyBlocks', 'u32'],
] as const;

export type TcParam = (typeof SHAPE_FIELDS)[number][0] | TokenRuleParam;

/** Shape, offsets and strides, then every token rule's fields (the tokenRule hook, as in the portable skeleton). */
export const tensorCoreParams = new ParamsLayout<TcParam>([...SHAPE_FIELDS, ...TOKEN_RULE_PARAMS.map((f) => [f, 'u32'] as const)]);

export interface TensorCoreShape {
  queryLength: number;
  keyLength: number;
  workgroupsX: number;
  heads: number;
  batch: number;
}

/** Workgroup memory of a variant: score and probability scratch, the staged K/V tile, the rescale flags. */
export function tensorCoreWorkgroupBytes(spec: TensorCoreAttentionSpec): number {
  const BC = tcKeyTile(spec);
  const scratch = spec.subgroups * 16 * BC * (4 + 2);
  return scratch + (spec.stage ? BC * (spec.headDim + 8) * 2 : 0) + (spec.passes === 1 ? spec.subgroups * 4 : 0)
    + (spec.emulate ? emulationWorkgroupBytes(spec.subgroups) : 0);
}

export const tensorCoreAttentionProgram: KernelProgram<TensorCoreAttentionSpec, TcParam, TensorCoreShape> = {
  name: 'tc-attention',
  params: tensorCoreParams,
  bindings(spec) {
    const b = [
      { name: 'q', kind: 'read-only-storage' }, { name: 'k', kind: 'read-only-storage' },
      { name: 'v', kind: 'read-only-storage' }, { name: 'o', kind: 'storage' },
    ] as const;
    if (spec.flashSkip) return [...b, { name: 'kept', kind: 'storage' }, { name: 'counters', kind: 'storage' }];
    return spec.blocks === 'csr' ? [...b, { name: 'rowPtr', kind: 'read-only-storage' }, { name: 'colIdx', kind: 'read-only-storage' }] : b;
  },
  constants: (spec) => ({ d: spec.headDim, sg: spec.subgroups, bc: tcKeyTile(spec), causal: spec.causal }),
  workgroupSize: (spec) => spec.subgroups * 32,
  wgsl: tensorCoreAttentionWgsl,
  supports(spec, shape, limits) {
    const rows = TC_ROWS_PER_SUBGROUP * spec.subgroups;
    if (shape.queryLength % rows !== 0) return `query length ${shape.queryLength} is not a multiple of ${rows}`;
    if (shape.keyLength % tcKeyTile(spec) !== 0) return `key length ${shape.keyLength} is not a multiple of ${tcKeyTile(spec)}`;
    const bytes = tensorCoreWorkgroupBytes(spec);
    if (bytes > limits.maxComputeWorkgroupStorageSize) return `needs ${bytes} B of workgroup memory, device has ${limits.maxComputeWorkgroupStorageSize}`;
    for (const [axis, n] of [['query tiles', shape.workgroupsX], ['heads', shape.heads], ['batch', shape.batch]] as const) {
      if (n > limits.maxComputeWorkgroupsPerDimension) return `${axis} = ${n} workgroups exceeds maxComputeWorkgroupsPerDimension`;
    }
    return null;
  },
};

/**
 * The spec this call would run with, or the reason the tensor-core kernel cannot take it (the
 * dispatcher then uses the portable kernel, or throws when the caller asked for tensor cores).
 */
export function tensorCoreSpecFor(device: GPUDevice, views: AttentionViews, call: AttentionDispatchOptions, tc: TensorCoreOptions = {}): TensorCoreAttentionSpec | string {
  const { q, k, v, o } = views;
  const opts = oneRuleOptions(call);
  // The emulated kernel (tests only, never chosen here) needs just f16 shaders.
  if (tc.emulate) {
    if (call.kernel !== 'tensor-core') return "the emulated tensor-core kernel runs only with kernel: 'tensor-core'";
    if (!device.features.has('shader-f16')) return 'the adapter has no shader-f16 (needed even by the emulated tensor-core kernel)';
  } else if (!hasTensorCores(device)) return 'the adapter has no f16→f32 16×16×16 subgroup-matrix configuration';
  if (q.dtype !== 'f16' || k.dtype !== 'f16' || v.dtype !== 'f16') return 'tensor cores take f16 Q, K and V';
  if (q.headDim !== 64 && q.headDim !== 128) return `head dim ${q.headDim} is not 64 or 128`;
  if (v.headDim !== q.headDim) return 'value dim differs from head dim';
  if (opts.tokenRule && tokenRuleHook(opts.tokenRule.kind).tensorCoreWgsl === undefined) return `token rule "${opts.tokenRule.kind}" runs on the portable kernel`;
  // The kernel places query i at key position Lk - Lq + i, which only a causal call (Lq <= Lk) keeps in u32.
  if (opts.tokenRule && !opts.causal) return 'token rules of non-causal calls run on the portable kernel';
  if (opts.paged) return 'paged KV runs on the portable kernel';
  const subgroups = tc.subgroups ?? 4;
  if (subgroups === 2 && !tc.emulate) return '2 subgroups per workgroup only in the emulated kernel';
  const rows = TC_ROWS_PER_SUBGROUP * subgroups;
  // 32-key tiles with prefetched staging: 93.7 against 34.5 TFLOP/s (64 keys, staged synchronously)
  // at D128, 32K, causal on the H200 (bench/results/2026-12-04-h200/tc-staging.json); 16-key tiles
  // 107.7 at D128 and 97.7 (from 58.9) at D64 with 4 subgroups (bench/results/2026-12-04b-h200/tc-keys.json), but
  // 4–5× slower with 8 subgroups.
  const BC = tc.keyTile ?? (subgroups === 4 ? 16 : 32);
  const keyLength = opts.keyLength ?? k.length;
  if (q.length % rows !== 0) return `query length ${q.length} is not a multiple of ${rows}`;
  if (keyLength % BC !== 0) return `key length ${keyLength} is not a multiple of ${BC}`;
  if (opts.blocks.kind === 'csr' && (opts.blocks.blockRows % rows || opts.blocks.blockCols % BC)) {
    return `mask blocks ${opts.blocks.blockRows}×${opts.blocks.blockCols} are not multiples of ${rows}×${BC}`;
  }
  const aligned = (t: GpuTensorView) => t.offset % 8 === 0 && t.strideB % 8 === 0 && t.strideH % 8 === 0 && t.strideL % 8 === 0;
  // 8 subgroups with 64-key tiles fill 48 KiB with their scratch alone: two passes, unstaged.
  const roomy = subgroups !== 8 || BC === 32;
  const stage = (tc.stage ?? true) && roomy && aligned(k) && aligned(v);
  const passes = tc.passes ?? (roomy ? 1 : 2);
  const swizzle = tc.swizzle ?? 'scores';
  const wholeChunks = (BC * q.headDim / 8) % (subgroups * 32) === 0;
  const prefetch = (tc.prefetch ?? true) && stage && passes === 1 && swizzle !== 'staging' && swizzle !== 'both' && wholeChunks;
  const rule = opts.tokenRule?.kind ?? 'none';
  // Only where there is something to skip: causal block lists (diagonal blocks taller than a
  // workgroup) and rules with a hidden-tile hook.
  const skippable = (opts.blocks.kind === 'csr' && opts.causal) || (opts.tokenRule !== undefined && tokenRuleHook(rule).tensorCoreTileHiddenWgsl !== undefined);
  // Off by default: the next-visible-tile search on the loop's critical path cost 4–6% at 32K on the
  // H200 (block lists and tri-shape's defaults, bench/results/2026-12-04c-h200/tc-rule*.json), more
  // than the few hidden tiles it skips; it pays where a rule hides many tiles (narrow windows).
  const skipHidden = (tc.skipHidden ?? false) && skippable;
  const heavyFirst = (tc.heavyFirst ?? true) && opts.causal;
  // Heads innermost: tri-shape 23.9 → 19.8 ms at 32K (its dense last rows' tiles no longer start last),
  // dense 4K 1.44 → 1.25, dense 32K within 0.4% on the H200 (bench/results/2026-12-04g-h200/tc-grid*.json).
  const headsInner = (tc.headsInner ?? true) && heavyFirst;
  const splitFull = (tc.splitFull ?? true) && passes === 1;
  return {
    headDim: q.headDim, causal: opts.causal, blocks: opts.blocks.kind, out: o.dtype, subgroups, stage, passes, swizzle,
    interleave: tc.interleave ?? stage, ...(tc.diag ? { diag: tc.diag } : {}), tokenRule: rule,
    ...(tc.emulate ? { emulate: true } : {}), ...(BC !== 64 ? { keyTile: BC } : {}), ...(prefetch ? { prefetch } : {}),
    ...(skipHidden ? { skipHidden } : {}), ...(heavyFirst ? { heavyFirst } : {}), ...(headsInner ? { headsInner } : {}), ...(splitFull ? { splitFull } : {}),
    ...(prefetch && tc.prefetchClamp ? { prefetchClamp: true } : {}), ...(rule !== 'none' && tc.ruleExpression ? { ruleExpression: true } : {}),
    ...(rule !== 'none' && tc.ruleRowwise && splitFull && tokenRuleHook(rule).tensorCoreTileRowwiseWgsl !== undefined ? { ruleRowwise: true } : {}),
  };
}

/**
 * Encodes one dispatch; returns its Params uniform. `extra`: Params fields and buffers of a mode
 * built on the kernel (flash-skip-softmax's threshold, blocks, kept flags and counters).
 */
export async function encodeTensorCoreAttention(
  device: GPUDevice, encoder: GPUCommandEncoder, views: AttentionViews, call: AttentionDispatchOptions, spec: TensorCoreAttentionSpec,
  extra: { params?: Partial<Record<TcParam, number>>; buffers?: Record<string, GPUBuffer> } = {},
): Promise<GPUBuffer> {
  const { q, k, v, o } = views;
  const opts = oneRuleOptions(call);
  const Lk = opts.keyLength ?? k.length;
  const rows = TC_ROWS_PER_SUBGROUP * spec.subgroups;
  const shape = { queryLength: q.length, keyLength: Lk, workgroupsX: q.length / rows, heads: q.heads, batch: q.batch };
  const reason = tensorCoreAttentionProgram.supports(spec, shape, device.limits);
  if (reason) throw new UnsupportedError(`tensor-core attention cannot run this shape: ${reason}`);
  const compiled = await compileProgram(device, tensorCoreAttentionProgram, spec);
  const csr = opts.blocks.kind === 'csr' ? opts.blocks : undefined;
  if ((opts.tokenRule?.kind ?? 'none') !== spec.tokenRule) throw new UnsupportedError(`tensor-core spec tokenRule=${spec.tokenRule} does not match the call's token rule`);
  const params: Record<TcParam, number> = {
    qLen: q.length, kLen: Lk, heads: q.heads, group: q.heads / k.heads,
    qOffset: q.offset, qStrideB: q.strideB, qStrideH: q.strideH, qStrideL: q.strideL,
    kOffset: k.offset, kStrideB: k.strideB, kStrideH: k.strideH, kStrideL: k.strideL,
    vOffset: v.offset, vStrideB: v.strideB, vStrideH: v.strideH, vStrideL: v.strideL,
    oOffset: o.offset, oStrideB: o.strideB, oStrideH: o.strideH, oStrideL: o.strideL,
    scaleLog2: opts.scale * Math.LOG2E,
    numQueryBlocks: csr ? Math.ceil(q.length / csr.blockRows) : 1, blockRows: csr?.blockRows ?? rows, blockCols: csr?.blockCols ?? tcKeyTile(spec),
    log2Threshold: 0, skipTiles: 1, numKeyBlocks: 0,
    ...tokenRuleParams(opts.tokenRule, q.length, Lk),
    ...extra.params,
  };
  const buffers: Record<string, GPUBuffer> = { q: q.buffer, k: k.buffer, v: v.buffer, o: o.buffer };
  if (csr) Object.assign(buffers, { rowPtr: csr.rowPtr, colIdx: csr.colIdx });
  Object.assign(buffers, extra.buffers);
  return encodeProgram(device, encoder, tensorCoreAttentionProgram, compiled, { params, buffers, workgroups: tensorCoreGrid(spec, shape.workgroupsX, q.heads, q.batch) });
}
