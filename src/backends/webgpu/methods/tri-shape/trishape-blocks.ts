/// <reference types="@webgpu/types" />
/**
 * Tri-shape's block list on the GPU (spec trishape.md part A; CPU twin: triShapeBlockMask in
 * methods/tri-shape.ts). One thread per (b, h, query block) row writes the row's kept-block bitmap
 * and count; block-list.ts turns them into rowPtr/colIdx:
 *
 *   keep(qb, kb) = causally valid, and: the call is dense (Lq = 1 or Lk <= localWindow), or the
 *   block's last row is a dense row (>= Lq - min(lastDenseQueries, Lq - 1)), or its first key is a
 *   sink (< sinkTokens), or it meets the union of the block rows' windows (off + i0 - W, off + i1]
 *
 * The same pattern for every (b, h); the token rule travels with the list (the attention kernel
 * applies it inside kept blocks) except when the call is dense, as on the CPU.
 */
import type { BlockMask, BlockMaskDims } from '../../../../core/block-mask.js';
import { InvalidArgumentError } from '../../../../core/errors.js';
import type { TriShapeTokenRule } from '../../../../core/token-rule.js';
import { createStorage, encodeBlockList, flagWordsPerRow, grid2d, type GpuBlockList, readBlockMask } from '../../attention/block-list.js';
import type { WebGpuContext } from '../../runtime/webgpu-device.js';
import { compileProgram, encodeProgram, type KernelProgram, ParamsLayout } from '../../runtime/program.js';

const WORKGROUP = 64;

export const trishapeBlocksParams = new ParamsLayout([
  ['rows', 'u32'], ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'], ['queryLength', 'u32'],
  ['keyLength', 'u32'], ['blockRows', 'u32'], ['blockCols', 'u32'], ['sinkTokens', 'u32'],
  ['localWindow', 'u32'], ['lastDenseQueries', 'u32'], ['flagWords', 'u32'], ['groupsX', 'u32'],
] as const);

export type TrishapeBlocksParamName = (typeof trishapeBlocksParams.fields)[number][0];

export const trishapeBlocksProgram: KernelProgram<{ readonly version: number }, TrishapeBlocksParamName> = {
  name: 'trishape-blocks',
  params: trishapeBlocksParams,
  bindings: () => [{ name: 'flags', kind: 'storage' }, { name: 'counts', kind: 'storage' }],
  constants: () => ({ workgroupSize: WORKGROUP }),
  workgroupSize: () => WORKGROUP,
  supports: () => null,
  wgsl: (_spec, header) => /* wgsl */ `${header}
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> flags: array<u32>;   // [B·H·nQB, flagWords]
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;  // [B·H·nQB]

fn keep(qb: u32, kb: u32) -> bool {
  let Lq = P.queryLength;
  let Lk = P.keyLength;
  let off = Lk - Lq;  // causal: Lq <= Lk
  let i0 = qb * P.blockRows;
  let i1 = min(i0 + P.blockRows, Lq) - 1u;  // the block's last row
  let j0 = kb * P.blockCols;
  if (j0 > off + i1) { return false; }      // no causally visible token
  if (Lq == 1u || Lk <= P.localWindow) { return true; }
  let firstDenseRow = Lq - min(P.lastDenseQueries, Lq - 1u);
  if (i1 >= firstDenseRow) { return true; }
  if (j0 < P.sinkTokens) { return true; }
  let j1 = min(j0 + P.blockCols, Lk) - 1u;
  return j1 + P.localWindow > off + i0;     // j1 > off + i0 - W, and j0 <= off + i1 held above
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = (wg.y * P.groupsX + wg.x) * WORKGROUP_SIZE + lid;
  if (row >= P.rows) { return; }
  let qb = row % P.numQueryBlocks;
  var n = 0u;
  for (var w = 0u; w < P.flagWords; w++) {
    var bits = 0u;
    for (var x = 0u; x < 32u; x++) {
      let kb = w * 32u + x;
      if (kb < P.numKeyBlocks && keep(qb, kb)) { bits |= 1u << x; }
    }
    flags[row * P.flagWords + w] = bits;
    n += countOneBits(bits);
  }
  counts[row] = n;
}
`,
};

export interface GpuTriShapePlan {
  blocks: GpuBlockList;
  destroy(): void;
}

/**
 * Encodes tri-shape's block list for a causal call of `dims` (blockRows = br, blockCols = bc).
 * The list carries the token rule unless the whole call is dense (decode, or Lk <= localWindow).
 */
export async function encodeTriShapePlan(device: GPUDevice, encoder: GPUCommandEncoder, dims: Omit<BlockMaskDims, 'causal'>, rule: TriShapeTokenRule): Promise<GpuTriShapePlan> {
  const { queryLength: Lq, keyLength: Lk } = dims;
  if (Lq > Lk) throw new InvalidArgumentError('queryLength', Lq, `at most keyLength (${Lk}) for causal tri-shape`);
  const nQB = Math.ceil(Lq / dims.blockRows);
  const nKB = Math.ceil(Lk / dims.blockCols);
  const rows = dims.batch * dims.heads * nQB;
  const words = flagWordsPerRow(nKB);
  const compiled = await compileProgram(device, trishapeBlocksProgram, { version: 1 });
  const flags = createStorage(device, rows * words * 4, 'trishape.flags');
  const counts = createStorage(device, rows * 4, 'trishape.counts');
  const groups = grid2d(Math.ceil(rows / WORKGROUP), device.limits);
  const uniforms = [encodeProgram(device, encoder, trishapeBlocksProgram, compiled, {
    params: {
      rows, numQueryBlocks: nQB, numKeyBlocks: nKB, queryLength: Lq, keyLength: Lk, blockRows: dims.blockRows, blockCols: dims.blockCols,
      sinkTokens: rule.sinkTokens, localWindow: rule.localWindow, lastDenseQueries: rule.lastDenseQueries, flagWords: words, groupsX: groups[0],
    },
    buffers: { flags, counts },
    workgroups: groups,
  })];
  // Every kept block is causally valid: bound colIdx by the causally valid blocks.
  let perHead = 0;
  for (let qb = 0; qb < nQB; qb++) perHead += Math.min(nKB, Math.floor((Lk - Lq + Math.min((qb + 1) * dims.blockRows, Lq) - 1) / dims.blockCols) + 1);
  const dense = Lq === 1 || Lk <= rule.localWindow;
  const blocks = await encodeBlockList(device, encoder, {
    flags, counts, dims: { ...dims, causal: true }, capacity: perHead * dims.batch * dims.heads, tokenRule: dense ? undefined : rule, label: 'trishape', uniforms,
  });
  const owned = [flags, counts, blocks.rowPtr, blocks.colIdx, ...uniforms];
  return { blocks, destroy: () => owned.forEach((b) => b.destroy()) };
}

/** Host-level twin of triShapeBlockMask: the block list made on the GPU, read back. */
export async function triShapeBlockMaskWebGpu(ctx: WebGpuContext, dims: Omit<BlockMaskDims, 'causal'>, rule: TriShapeTokenRule): Promise<BlockMask> {
  const encoder = ctx.device.createCommandEncoder({ label: 'trishape-plan' });
  const plan = await encodeTriShapePlan(ctx.device, encoder, dims, rule);
  try {
    ctx.device.queue.submit([encoder.finish()]);
    return await readBlockMask(ctx.device, plan.blocks);
  } finally {
    plan.destroy();
  }
}
