/// <reference types="@webgpu/types" />
/**
 * flash-skip-softmax in the loop on tensor cores: the tensor-core attention kernel in its flashSkip
 * mode (tensor-core-attention.wgsl.ts). A workgroup is the method's query tile (br = 16 rows per
 * subgroup), the method's key tile is bc / keyTile of the kernel's key tiles, and the decision is
 * the sequential rule of the portable kernel (webgpu-flash-skip-attention.ts), taken tile by tile:
 * the block is kept from its first tile on which some row votes, and computed from its first tile.
 * A tile is decided before its softmax (voteFirst): a skipped block costs its QKᵀ and row max, no
 * exp2, P or V; a block decided on a later tile costs the QKᵀ of its earlier tiles twice.
 */
import type { AttentionDispatchOptions, AttentionViews, TensorCoreOptions } from '../../attention/attention-views.js';
import { encodeTensorCoreAttention, tensorCoreSpecFor } from '../../attention/tensor-core-attention.js';
import { tcKeyTile, type TensorCoreAttentionSpec, TC_ROWS_PER_SUBGROUP } from '../../attention/tensor-core-attention.wgsl.js';

export interface TensorCoreFlashSkipCall {
  causal: boolean;
  scale: number;
  threshold: number;
  br: number;
  bc: number;
  kept: GPUBuffer;
  counters: GPUBuffer;
}

/** The attention call the flash-skip mode runs as: every key tile, no block list. */
const dispatchOf = (call: Pick<TensorCoreFlashSkipCall, 'causal' | 'scale'>, forced = false): AttentionDispatchOptions =>
  ({ causal: call.causal, scale: call.scale, blocks: { kind: 'all' }, ...(forced ? { kernel: 'tensor-core' as const } : {}) });

/**
 * The tensor-core spec for a flash-skip call, or why it cannot run there: br must be a workgroup's
 * rows (64 by default: 4 subgroups; 128 with 8), bc a multiple of the key tile, and the query and
 * key lengths multiples of br and of the key tile.
 */
export function tensorCoreFlashSkipSpec(
  device: GPUDevice, views: AttentionViews, call: Pick<TensorCoreFlashSkipCall, 'causal' | 'scale' | 'br' | 'bc'>, tc: TensorCoreOptions = {}, forced = false,
): TensorCoreAttentionSpec | string {
  if (call.br % TC_ROWS_PER_SUBGROUP !== 0) return `br ${call.br} is not a multiple of ${TC_ROWS_PER_SUBGROUP}`;
  const subgroups = call.br / TC_ROWS_PER_SUBGROUP;
  if (subgroups !== 2 && subgroups !== 4 && subgroups !== 8) return `br ${call.br} is not 32, 64 or 128 rows`;
  if (tc.subgroups !== undefined && tc.subgroups !== subgroups) return `br ${call.br} needs ${subgroups} subgroups, tensorCore.subgroups is ${tc.subgroups}`;
  if (tc.passes === 2) return 'flash-skip runs in the one-pass kernel';
  if (tc.skipHidden) return 'flash-skip visits every key tile (skipHidden is off)';
  const spec = tensorCoreSpecFor(device, views, dispatchOf(call, forced), { ...tc, subgroups, passes: 1 });
  if (typeof spec === 'string') return spec;
  const BC = tcKeyTile(spec);
  if (call.bc % BC !== 0) return `bc ${call.bc} is not a multiple of the key tile ${BC}`;
  if (views.q.length % call.br !== 0) return `query length ${views.q.length} is not a multiple of br ${call.br}`;
  if (views.k.length % BC !== 0) return `key length ${views.k.length} is not a multiple of the key tile ${BC}`;
  return { ...spec, flashSkip: true, ...((tc.voteFirst ?? true) ? { voteFirst: true } : {}) };
}

/** Encodes the dispatch; `kept` (u32 [B, H, nQB, nKB]) and `counters` (u32 [3]) must be zeroed. Returns the Params uniform. */
export function encodeTensorCoreFlashSkip(
  device: GPUDevice, encoder: GPUCommandEncoder, views: AttentionViews, call: TensorCoreFlashSkipCall, spec: TensorCoreAttentionSpec,
): Promise<GPUBuffer> {
  return encodeTensorCoreAttention(device, encoder, views, dispatchOf(call), spec, {
    params: {
      log2Threshold: Math.log2(call.threshold), skipTiles: call.bc / tcKeyTile(spec), numKeyBlocks: Math.ceil(views.k.length / call.bc),
      numQueryBlocks: views.q.length / call.br, blockRows: call.br,
    },
    buffers: { kept: call.kept, counters: call.counters },
  });
}
