/**
 * The tensor-core (subgroup-matrix) attention kernel = the CPU reference, dense and block-sparse.
 * Runs only where the adapter has f16→f32 16×16×16 subgroup matrices (NVIDIA through Dawn);
 * lavapipe has none, so in CI this suite skips with that reason and runs on the H100; there the
 * kernel's plain-WGSL emulation runs instead (webgpu-tensor-core-emulated.test.ts).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { runAttentionOnHost } from '../src/backends/webgpu/attention/block-sparse-attention.js';
import { hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { assertTensorsClose } from './helpers/compare.js';
import { TC_CASES, tcCaseInputs, TOL_TC } from './helpers/tensor-core-cases.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
const skip = gpu.skip || (gpu.ctx && !hasTensorCores(gpu.ctx.device) ? `adapter "${gpu.ctx.report.description}" has no f16→f32 16×16×16 subgroup matrices` : false);

// One release for the file: a device destroyed after the first suite would let the second
// "pass" without compiling anything (a lost device reports no errors).
after(() => gpu.release());

describe('WebGPU tensor-core attention = CPU reference', { skip }, () => {
  for (const c of TC_CASES) {
    // The default kernel (16-key tiles at D128, prefetched staging, heavy-first order, whole tiles on
    // the split loops) in both pass modes, each workgroup-memory order, unstaged, synchronous staging,
    // 64-, 32- and 16-key tiles, hidden tiles skipped (with and without heavy-first order), one
    // per-score-tested loop, the next tile's loads clamped (with and without hidden tiles skipped), and
    // 8 subgroups staged (where 128-row workgroups fit).
    const fits8 = c.Lq % 128 === 0 && (c.br ?? 128) % 128 === 0;
    for (const tc of [
      { passes: 1 }, { passes: 2 }, { passes: 1, swizzle: 'none' }, { passes: 1, swizzle: 'both' }, { passes: 1, interleave: true }, { passes: 2, stage: false, interleave: true }, { passes: 1, stage: false },
      { keyTile: 64, prefetch: false }, { keyTile: 64 }, { prefetch: false }, { keyTile: 16 }, { keyTile: 32 }, { skipHidden: true }, { skipHidden: true, heavyFirst: false }, { splitFull: false }, { passes: 2, heavyFirst: false }, { prefetchClamp: true }, { prefetchClamp: true, skipHidden: true }, { ruleExpression: true }, { ruleRowwise: true }, { headsInner: false }, { ruleRowwise: true, ruleExpression: true }, ...(fits8 ? [{ subgroups: 8 } as const, { subgroups: 8, keyTile: 16 } as const] : []),
    ] as const) {
      it(`${JSON.stringify(c)} ${JSON.stringify(tc)}`, async () => {
        const { q, k, v, mask, want } = tcCaseInputs(c);
        const got = await runAttentionOnHost(gpu.ctx!, q, k, v, { causal: c.causal, scale: 1 / Math.sqrt(c.D), mask, kernel: 'tensor-core', tensorCore: tc, label: 'tc-test' });
        assertTensorsClose(got.toDType('f32'), want, TOL_TC, 'tensor-core vs CPU');
      });
    }
  }
});

describe('every tensor-core variant compiles', { skip }, () => {
  it('compiles', async () => {
    const { compileProgram } = await import('../src/backends/webgpu/runtime/program.js');
    const { tensorCoreAttentionProgram, tensorCoreWorkgroupBytes } = await import('../src/backends/webgpu/attention/tensor-core-attention.js');
    const limit = gpu.ctx!.device.limits.maxComputeWorkgroupStorageSize;
    let compiled = 0;
    for (const headDim of [64, 128] as const)
      for (const causal of [true, false])
        for (const blocks of ['all', 'csr'] as const)
          for (const out of ['f16', 'f32'] as const)
            for (const [subgroups, stage, keyTile] of [[4, true, 64], [4, false, 64], [8, false, 64], [4, true, 32], [8, true, 32], [4, true, 16]] as const)
              for (const passes of [1, 2] as const) {
                const prefetch = stage && passes === 1 && keyTile !== 64; // synchronous staging at 64 keys
                const spec = { headDim, causal, blocks, out, subgroups, stage, passes, swizzle: passes === 1 && !prefetch ? 'both' as const : 'scores' as const, interleave: stage, tokenRule: causal && blocks === 'csr' && out === 'f16' ? 'trishape' as const : 'none' as const, keyTile, prefetch, skipHidden: causal && blocks === 'csr', heavyFirst: causal };
                if (tensorCoreWorkgroupBytes(spec) > limit) continue; // supports() refuses it before compiling
                await compileProgram(gpu.ctx!.device, tensorCoreAttentionProgram, spec);
                compiled++;
              }
    assert.ok(compiled >= 60, `only ${compiled} variants fit this device's ${limit} B of workgroup memory`);
  });
});
