/**
 * flash-skip-softmax in the loop on tensor cores (tensor-core-flash-skip.ts) = the CPU sequential
 * kernel: the same kept blocks, visited and skipped counts, the portable GPU kernel's raised-row
 * count, and the output. The emulated kernel (plain WGSL in place of subgroup matrices) runs on any
 * adapter with shader-f16, lavapipe included; the real one where subgroup matrices exist. Key tiles
 * narrower than the method's blocks, so blocks are decided on a later tile and computed again from
 * their first. Outputs start as NaN.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { TensorCoreOptions } from '../src/backends/webgpu/attention/attention-views.js';
import { flashSkipAttentionWebGpu, type FlashSkipGpuOptions } from '../src/backends/webgpu/methods/flash-skip-softmax/webgpu-flash-skip-attention.js';
import { hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import type { BlockMask } from '../src/core/block-mask.js';
import { peakedQKV, structuredQKV } from '../src/core/structured-inputs.js';
import type { HeadTensor } from '../src/core/tensor.js';
import { flashSkipAttention } from '../src/methods/flash-skip-softmax/flash-skip-cpu.js';
import { assertTensorsClose } from './helpers/compare.js';
import { TOL_TC } from './helpers/tensor-core-cases.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
const noF16 = gpu.ctx && !gpu.ctx.device.features.has('shader-f16') ? `adapter "${gpu.ctx.report.description}" has no shader-f16` : false;
const noTc = gpu.ctx && !hasTensorCores(gpu.ctx.device) ? `adapter "${gpu.ctx.report.description}" has no f16→f32 subgroup matrices` : false;
after(() => gpu.release());

/** peaked: peakedQKV (half the key blocks hold a bump), else structuredQKV. */
interface Case { D: number; H: number; Hkv: number; Lq: number; Lk: number; br: number; bc: number; causal: boolean; threshold: number; scale?: number; peaked?: boolean; tc: TensorCoreOptions }

function inputs(c: Case, n: number): { q: HeadTensor; k: HeadTensor; v: HeadTensor } {
  const layout = n % 2 ? 'BLHD' : 'BHLD';
  const shape = { heads: c.H, kvHeads: c.Hkv, length: c.Lk, queryLength: c.Lq, headDim: c.D, seed: 5 + n, layout } as const;
  const t = c.peaked ? peakedQKV({ ...shape, blockSize: c.bc, bumps: 0.5 }) : structuredQKV(shape);
  return { q: t.q.toDType('f16'), k: t.k.toDType('f16'), v: t.v.toDType('f16') };
}

const lists = (m: BlockMask) => ({ rowPtr: [...m.rowPtr], colIdx: [...m.colIdx] });

async function check(c: Case, n: number): Promise<number> {
  const { q, k, v } = inputs(c, n);
  const opts: FlashSkipGpuOptions = { causal: c.causal, scale: c.scale, threshold: c.threshold, br: c.br, bc: c.bc };
  const cpu = flashSkipAttention(q, k, v, opts);
  for (const f of [Math.exp(-1e-3), Math.exp(1e-3)]) {
    const moved = flashSkipAttention(q, k, v, { ...opts, threshold: Math.min(1, c.threshold * f) });
    assert.deepEqual(lists(moved.kept), lists(cpu.kept), 'a decision sits at a float tie; pick other inputs');
  }
  const portable = await flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, { ...opts, kernel: 'portable' });
  const got = await flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, { ...opts, kernel: 'tensor-core', tensorCore: c.tc });
  assert.deepEqual(lists(got.kept), lists(cpu.kept), 'kept blocks');
  assert.deepEqual([got.visitedTiles, got.skippedTiles], [cpu.visitedTiles, cpu.skippedTiles], 'visited, skipped');
  assert.equal(got.raisedRows, portable.raisedRows, 'raised rows (the portable kernel\'s count)');
  assertTensorsClose(got.output.toDType('f32'), cpu.output, TOL_TC, 'output');
  return got.skippedTiles;
}

// lavapipe: 2 subgroups (br 32) fit its 32 KiB of workgroup memory; each variant compiles in about a minute.
const EMULATED: Case[] = [
  // 16-key tiles in 64-key blocks (4 tiles: late decisions go back), causal, GQA.
  { D: 64, H: 4, Hkv: 2, Lq: 128, Lk: 512, br: 32, bc: 64, causal: true, threshold: 0.05, peaked: true, tc: { emulate: true, keyTile: 16 } },
  // 32-key tiles in 64-key blocks, not causal, Lq < Lk.
  { D: 64, H: 2, Hkv: 1, Lq: 160, Lk: 384, br: 32, bc: 64, causal: false, threshold: 0.1, peaked: true, tc: { emulate: true, keyTile: 32 } },
  // The softmax on every tile before the vote (voteFirst off), late decisions going back.
  { D: 64, H: 4, Hkv: 2, Lq: 128, Lk: 512, br: 32, bc: 64, causal: true, threshold: 0.05, peaked: true, tc: { emulate: true, keyTile: 16, voteFirst: false } },
];

describe('flash-skip on tensor cores, emulated = CPU sequential kernel', { skip: gpu.skip || noF16 }, () => {
  let skipped = 0;
  EMULATED.forEach((c, n) => {
    it(JSON.stringify(c), async () => { skipped += await check(c, n); });
  });
  it('the cases skip blocks', () => assert.ok(skipped > 0, `skipped ${skipped}`));
  it('names why a call cannot run on tensor cores', async () => {
    const { q, k, v } = inputs(EMULATED[0], 0);
    await assert.rejects(flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, { causal: true, threshold: 0.1, br: 48, bc: 64, kernel: 'tensor-core', tensorCore: { emulate: true } }),
      /flash-skip on tensor cores cannot run this call: br 48 is not 32, 64 or 128 rows/);
    await assert.rejects(flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, { causal: true, threshold: 0.1, br: 32, bc: 40, kernel: 'tensor-core', tensorCore: { emulate: true, keyTile: 16 } }),
      /bc 40 is not a multiple of the key tile 16/);
    await assert.rejects(flashSkipAttentionWebGpu(gpu.ctx!, q, k, v, { causal: true, threshold: 0.1, br: 32, bc: 64, kernel: 'fast' as never }), /kernel/);
  });
});

const REAL: Case[] = [
  { D: 128, H: 4, Hkv: 2, Lq: 512, Lk: 1024, br: 128, bc: 128, causal: true, threshold: 0.05, peaked: true, tc: {} },
  { D: 128, H: 4, Hkv: 1, Lq: 256, Lk: 768, br: 64, bc: 128, causal: true, threshold: 0.05, peaked: true, tc: {} },
  { D: 64, H: 2, Hkv: 2, Lq: 384, Lk: 512, br: 64, bc: 64, causal: false, threshold: 0.1, peaked: true, tc: { keyTile: 32 } },
  { D: 64, H: 4, Hkv: 2, Lq: 256, Lk: 256, br: 128, bc: 128, causal: true, threshold: 1e-30, tc: {} }, // structured: keeps every block
  { D: 128, H: 4, Hkv: 1, Lq: 256, Lk: 768, br: 64, bc: 128, causal: true, threshold: 0.05, peaked: true, tc: { voteFirst: false } },
];

describe('flash-skip on tensor cores = CPU sequential kernel', { skip: gpu.skip || noTc }, () => {
  REAL.forEach((c, n) => {
    it(JSON.stringify(c), async () => { await check(c, n); });
  });
});
