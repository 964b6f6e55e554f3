/**
 * Block-sparse WebGPU attention (CSR list of kept key blocks + optional tri-shape token rule) =
 * the CPU flash loop with the same mask = dense attention with the mask expanded to tokens.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { naiveBlockSparseAttention } from '../src/backends/cpu/naive-attention.js';
import { blockSparseAttentionWebGpu } from '../src/backends/webgpu/attention/block-sparse-attention.js';
import { webgpuBackend } from '../src/backends/webgpu/index.js';
import { BlockMask, type BlockMaskDims } from '../src/core/block-mask.js';
import { Rng } from '../src/core/rng.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { type DType, HeadTensor } from '../src/core/tensor.js';
import type { TriShapeTokenRule } from '../src/core/token-rule.js';
import { assertTensorsClose, TOL } from './helpers/compare.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();

interface Case {
  D: number;
  H: number;
  Hkv: number;
  batch: number;
  Lq: number;
  Lk: number;
  br: number;
  bc: number;
  causal: boolean;
  dtype: DType;
  rule?: TriShapeTokenRule;
  density: number;
}

const TRI: TriShapeTokenRule = { kind: 'trishape', sinkTokens: 5, localWindow: 23, lastDenseQueries: 7 };

const CASES: Case[] = [
  { D: 64, H: 2, Hkv: 2, batch: 1, Lq: 77, Lk: 77, br: 16, bc: 32, causal: true, dtype: 'f32', density: 0.5 },
  { D: 64, H: 4, Hkv: 2, batch: 2, Lq: 45, Lk: 110, br: 32, bc: 16, causal: true, dtype: 'f16', density: 0.6 },
  { D: 64, H: 4, Hkv: 1, batch: 1, Lq: 150, Lk: 150, br: 100, bc: 24, causal: false, dtype: 'f32', density: 0.4 },
  { D: 128, H: 2, Hkv: 2, batch: 1, Lq: 90, Lk: 90, br: 64, bc: 64, causal: false, dtype: 'f16', density: 0.5 },
  { D: 128, H: 4, Hkv: 2, batch: 1, Lq: 1, Lk: 121, br: 16, bc: 16, causal: true, dtype: 'f32', density: 0.5 },
  { D: 128, H: 4, Hkv: 1, batch: 2, Lq: 60, Lk: 60, br: 8, bc: 40, causal: true, dtype: 'f32', density: 0.7 },
  // tri-shape token rule inside kept blocks: every valid block, and a random subset
  { D: 64, H: 2, Hkv: 1, batch: 1, Lq: 130, Lk: 130, br: 32, bc: 32, causal: true, dtype: 'f32', rule: TRI, density: 1 },
  { D: 64, H: 4, Hkv: 2, batch: 1, Lq: 50, Lk: 140, br: 16, bc: 16, causal: true, dtype: 'f32', rule: TRI, density: 0.6 },
  { D: 128, H: 2, Hkv: 2, batch: 1, Lq: 70, Lk: 70, br: 64, bc: 8, causal: false, dtype: 'f16', rule: TRI, density: 0.8 },
];

function randomMask(dims: BlockMaskDims, density: number, seed: number, rule?: TriShapeTokenRule): BlockMask {
  const rng = new Rng(seed);
  return BlockMask.fromPredicate(dims, () => rng.next() < density, rule);
}

describe('WebGPU block-sparse attention = CPU reference', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  CASES.forEach((c, n) => {
    const name = `D=${c.D} H=${c.H}/${c.Hkv} B=${c.batch} Lq=${c.Lq} Lk=${c.Lk} blocks ${c.br}×${c.bc} ${c.causal ? 'causal' : 'non-causal'} ${c.dtype}${c.rule ? ' tri-shape' : ''} density ${c.density}`;
    it(name, async () => {
      const layout = n % 2 ? 'BLHD' : 'BHLD';
      const { q, k, v } = n % 3 === 0
        ? structuredQKV({ batch: c.batch, heads: c.H, kvHeads: c.Hkv, length: c.Lk, queryLength: c.Lq, headDim: c.D, seed: n, layout })
        : {
          q: HeadTensor.randn({ batch: c.batch, heads: c.H, length: c.Lq, headDim: c.D }, 10 * n, { layout }),
          k: HeadTensor.randn({ batch: c.batch, heads: c.Hkv, length: c.Lk, headDim: c.D }, 10 * n + 1),
          v: HeadTensor.randn({ batch: c.batch, heads: c.Hkv, length: c.Lk, headDim: c.D }, 10 * n + 2, { layout }),
        };
      const [q16, k16, v16] = [q, k, v].map((t) => t.toDType(c.dtype));
      const dims = { batch: c.batch, heads: c.H, queryLength: c.Lq, keyLength: c.Lk, blockRows: c.br, blockCols: c.bc, causal: c.causal };
      const mask = randomMask(dims, c.density, 1000 + n, c.rule);
      const out = await blockSparseAttentionWebGpu(gpu.ctx!, q16, k16, v16, mask, { causal: c.causal });
      assertTensorsClose(out.toDType('f32'), flashAttention(q16, k16, v16, { causal: c.causal, mask }), TOL[c.dtype], name);
    });
  });

  it('equals dense attention with the mask expanded to tokens (chain of oracles)', async () => {
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: 41, headDim: 64 }, 1);
    const k = HeadTensor.randn({ batch: 1, heads: 2, length: 41, headDim: 64 }, 2);
    const mask = randomMask({ batch: 1, heads: 2, queryLength: 41, keyLength: 41, blockRows: 8, blockCols: 16, causal: true }, 0.5, 3, TRI);
    const out = await blockSparseAttentionWebGpu(gpu.ctx!, q, k, k, mask, { causal: true });
    assertTensorsClose(out, naiveBlockSparseAttention(q, k, k, mask, { causal: true }), TOL.f32, 'vs naive expanded');
  });

  it('fully masked rows give zeros, never NaN (empty block rows and rows the token rule hides)', async () => {
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 40, headDim: 64 }, 1);
    const k = HeadTensor.randn({ batch: 1, heads: 1, length: 40, headDim: 64 }, 2);
    // Query block 0 keeps nothing; query block 1 keeps only key block 3, whose keys the rule
    // (no sink, window 2, no dense rows) hides from every query of block 1 in the non-causal call.
    const rule: TriShapeTokenRule = { kind: 'trishape', sinkTokens: 0, localWindow: 2, lastDenseQueries: 0 };
    const dims = { batch: 1, heads: 1, queryLength: 40, keyLength: 40, blockRows: 10, blockCols: 10, causal: false };
    const mask = BlockMask.fromDense(dims, [0, 0, 0, 0, /* qb1 */ 0, 0, 0, 1, /* qb2 */ 1, 1, 1, 0, /* qb3 */ 0, 0, 1, 1], rule);
    const out = (await blockSparseAttentionWebGpu(gpu.ctx!, q, k, k, mask)).toFloat32Array();
    assert.ok(out.every(Number.isFinite), 'no NaN or Inf');
    for (let i = 0; i < 20 * 64; i++) assert.equal(out[i], 0, `row ${Math.floor(i / 64)} should be zero`);
    assertTensorsClose(new HeadTensor(q.shape, out), flashAttention(q, k, k, { mask }), TOL.f32, 'masked rows');
  });

  it('sparseAttention({ backend: "webgpu" }) and the backend object equal the CPU backend', async () => {
    const { q, k, v } = structuredQKV({ heads: 4, kvHeads: 2, length: 96, headDim: 64, seed: 9 });
    const cpu = await sparseAttention(q, k, v, { method: 'dense', causal: true, backend: 'cpu' });
    for (const backend of ['webgpu', webgpuBackend] as const) {
      const res = await sparseAttention(q, k, v, { method: 'dense', causal: true, backend });
      assertTensorsClose(res.output, cpu.output, TOL.f32, `backend ${typeof backend === 'string' ? backend : backend.name}`);
    }
  });

  it('refuses a mask that does not match the call, naming the field', async () => {
    const q = HeadTensor.randn({ batch: 1, heads: 1, length: 8, headDim: 64 }, 1);
    const mask = BlockMask.full({ batch: 1, heads: 1, queryLength: 8, keyLength: 8, blockRows: 4, blockCols: 4, causal: true });
    await assert.rejects(blockSparseAttentionWebGpu(gpu.ctx!, q, q, q, mask, { causal: false }), /mask.causal must be false to match the attention call, got true/);
  });
});
