import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { naiveAttention, naiveBlockSparseAttention } from '../src/backends/cpu/naive-attention.js';
import { createModuleMethod, resolveModuleConfig, sparseAttentionConfig } from '../src/config/index.js';
import { describeAttention } from '../src/core/attention-shape.js';
import { blockCausallyValid } from '../src/core/block-mask.js';
import { computeScores } from '../src/core/scores.js';
import { HeadTensor } from '../src/core/tensor.js';
import { createSparseMethod, sparseMethods } from '../src/methods/index.js';
import { getBlockMap, selectedBlocks, type SlaBlockMap, slaTopk } from '../src/methods/sla/sla-block-map.js';
import { type FeatureMap, LINEAR_EPS, slaLinearPart } from '../src/methods/sla/sla-linear-part.js';
import { bhldF32, SlaMethod } from '../src/methods/sla/sla.js';
import { assertClose, assertTensorsClose, TOL } from './helpers/compare.js';

interface Shape { name: string; B: number; H: number; Hkv: number; Lq: number; Lk: number; D: number; causal: boolean; BLKQ: number; BLKK: number }

// Awkward sizes: lengths that are not multiples of either block, GQA, causal and not, length 1.
const SHAPES: Shape[] = [
  { name: 'non-causal, partial blocks', B: 1, H: 2, Hkv: 2, Lq: 37, Lk: 37, D: 8, causal: false, BLKQ: 8, BLKK: 6 },
  { name: 'causal, GQA 4:2, batch 2', B: 2, H: 4, Hkv: 2, Lq: 45, Lk: 45, D: 8, causal: true, BLKQ: 16, BLKK: 8 },
  { name: 'causal, GQA 4:1, q shorter than k', B: 1, H: 4, Hkv: 1, Lq: 10, Lk: 33, D: 8, causal: true, BLKQ: 4, BLKK: 8 },
  { name: 'non-causal, Lq != Lk, BLKK > BLKQ', B: 1, H: 2, Hkv: 1, Lq: 19, Lk: 50, D: 4, causal: false, BLKQ: 5, BLKK: 7 },
  { name: 'decode (Lq = 1), causal', B: 1, H: 2, Hkv: 1, Lq: 1, Lk: 29, D: 8, causal: true, BLKQ: 16, BLKK: 4 },
  { name: 'length 1 both', B: 1, H: 1, Hkv: 1, Lq: 1, Lk: 1, D: 4, causal: true, BLKQ: 16, BLKK: 16 },
  { name: 'non-causal, L = 300, default-like blocks', B: 1, H: 1, Hkv: 1, Lq: 300, Lk: 300, D: 16, causal: false, BLKQ: 64, BLKK: 32 },
];

function inputs(s: Shape, seed: number, layout: 'BHLD' | 'BLHD' = 'BLHD') {
  return {
    q: HeadTensor.randn({ batch: s.B, heads: s.H, length: s.Lq, headDim: s.D }, seed, { layout }),
    k: HeadTensor.randn({ batch: s.B, heads: s.Hkv, length: s.Lk, headDim: s.D }, seed + 1, { layout }),
    v: HeadTensor.randn({ batch: s.B, heads: s.Hkv, length: s.Lk, headDim: s.D }, seed + 2, { layout }),
  };
}

function sla(s: Shape, extra: Record<string, unknown> = {}) {
  return new SlaMethod({ BLKQ: s.BLKQ, BLKK: s.BLKK, topkRatio: 0.4, ...extra });
}

/** φ written out independently of the implementation. */
function phi(x: Float32Array, map: FeatureMap): number[] {
  const a = Array.from(x);
  if (map === 'relu') return a.map((t) => (t > 0 ? t : 0));
  if (map === 'elu') return a.map((t) => (t > 0 ? t + 1 : Math.exp(t)));
  const m = Math.max(...a);
  const e = a.map((t) => Math.exp(t - m));
  const z = e.reduce((u, w) => u + w, 0);
  return e.map((w) => w / z);
}

/** The linear part by its definition, one query at a time, over the keys of unselected blocks. */
function naiveLinearPart(q: HeadTensor, k: HeadTensor, v: HeadTensor, map: SlaBlockMap, fm: FeatureMap, causal: boolean, all = false): HeadTensor {
  const p = describeAttention(q, k, v, { causal });
  const out = HeadTensor.zeros({ batch: p.batch, heads: p.heads, length: p.queryLength, headDim: p.valueDim });
  for (let b = 0; b < p.batch; b++)
    for (let h = 0; h < p.heads; h++) {
      const kh = Math.floor(h / p.groupSize);
      for (let i = 0; i < p.queryLength; i++) {
        const row = (b * p.heads + h) * map.numQueryBlocks + Math.floor(i / map.blockQ);
        const fq = phi(q.row(b, h, i), fm);
        const num = new Float64Array(p.valueDim);
        let den = 0;
        let n = 0;
        for (let j = 0; j < p.keyLength; j++) {
          if (causal && j > p.queryOffset + i) continue;
          if (!all && map.sparseMap[row * map.numKeyBlocks + Math.floor(j / map.blockK)]) continue;
          const fk = phi(k.row(b, kh, j), fm);
          const w = fq.reduce((u, x, d) => u + x * fk[d], 0);
          den += w;
          n++;
          const vj = v.row(b, kh, j);
          for (let e = 0; e < p.valueDim; e++) num[e] += w * vj[e];
        }
        if (n === 0) continue;
        const o = out.offset(b, h, i);
        for (let e = 0; e < p.valueDim; e++) (out.data as Float32Array)[o + e] = num[e] / (LINEAR_EPS + den);
      }
    }
  return out;
}

describe('SLA block map', () => {
  it('pools Q and smoothed K per block (partial last blocks average their real rows) and ranks by pooledQ·pooledKᵀ', () => {
    const s = SHAPES[0];
    const { q, k } = inputs(s, 11);
    const map = getBlockMap(q, k, 0.5, s.BLKQ, s.BLKK);
    const nQB = Math.ceil(s.Lq / s.BLKQ);
    const nKB = Math.ceil(s.Lk / s.BLKK);
    assert.equal(map.numQueryBlocks, nQB);
    assert.equal(map.numKeyBlocks, nKB);
    assert.equal(map.topk, Math.floor(0.5 * nKB));
    const expected = new Float32Array(s.B * s.H * nQB * nKB);
    for (let h = 0; h < s.H; h++) {
      const mean = new Float64Array(s.D);
      for (let j = 0; j < s.Lk; j++) k.row(0, h, j).forEach((x, d) => (mean[d] += x / s.Lk));
      const pool = (t: HeadTensor, blk: number, nb: number, sub: Float64Array | null, len: number) => {
        const acc = new Float64Array(s.D);
        const rows = Math.min(blk, len - nb * blk);
        for (let l = nb * blk; l < nb * blk + rows; l++) t.row(0, h, l).forEach((x, d) => (acc[d] += (x - (sub ? sub[d] : 0)) / rows));
        return acc;
      };
      for (let qb = 0; qb < nQB; qb++)
        for (let kb = 0; kb < nKB; kb++) {
          const pq = pool(q, s.BLKQ, qb, null, s.Lq);
          const pk = pool(k, s.BLKK, kb, mean, s.Lk);
          expected[(h * nQB + qb) * nKB + kb] = pq.reduce((u, x, d) => u + x * pk[d], 0);
        }
    }
    assertClose(map.pooledScores, expected, { atol: 1e-5, rtol: 1e-4 }, 'pooled scores');
    for (let r = 0; r < s.H * nQB; r++) {
      const lut = Array.from(map.lut.subarray(r * map.topk, (r + 1) * map.topk));
      assert.deepEqual(lut, [...lut].sort((a, b) => a - b), `lut row ${r} ascending`);
      const sel = new Set(lut);
      for (let kb = 0; kb < nKB; kb++) assert.equal(map.sparseMap[r * nKB + kb], sel.has(kb) ? 1 : 0, `sparseMap row ${r} block ${kb}`);
      const minSel = Math.min(...lut.map((kb) => map.pooledScores[r * nKB + kb]));
      for (let kb = 0; kb < nKB; kb++) if (!sel.has(kb)) assert.ok(map.pooledScores[r * nKB + kb] <= minSel, `row ${r}: unselected ${kb} outranks a selected block`);
    }
  });

  it('topk = max(1, min(nKB, floor(ratio · nKB)))', () => {
    assert.equal(slaTopk(0.1, 5), 1);
    assert.equal(slaTopk(0.5, 5), 2);
    assert.equal(slaTopk(1, 5), 5);
    assert.equal(slaTopk(0.29, 100), 28); // floor as Python's int(): 0.29·100 = 28.999…
  });

  it('causal: only causally valid blocks, min(topk, valid) per row, lut padded with -1', () => {
    const s = SHAPES[1];
    const { q, k } = inputs(s, 21);
    const map = getBlockMap(q, k, 0.5, s.BLKQ, s.BLKK, { causal: true });
    const dims = { batch: s.B, heads: s.H, queryLength: s.Lq, keyLength: s.Lk, blockRows: s.BLKQ, blockCols: s.BLKK, causal: true };
    for (let r = 0; r < s.B * s.H * map.numQueryBlocks; r++) {
      const qb = r % map.numQueryBlocks;
      let valid = 0;
      for (let kb = 0; kb < map.numKeyBlocks; kb++) if (blockCausallyValid(dims, qb, kb)) valid++;
      assert.equal(map.counts[r], Math.min(map.topk, valid), `row ${r} count`);
      for (let t = 0; t < map.topk; t++) {
        const kb = map.lut[r * map.topk + t];
        if (t >= map.counts[r]) assert.equal(kb, -1, `row ${r} padding`);
        else assert.ok(blockCausallyValid(dims, qb, kb), `row ${r} selects future block ${kb}`);
      }
    }
  });

  it('smoothing K does not change the choice (it shifts each row by a constant)', () => {
    const s = SHAPES[6];
    const { q, k } = inputs(s, 31);
    const shifted = HeadTensor.fromFunction(k.shape, (b, h, l, d) => k.row(b, h, l)[d] + 3 * Math.sin(d + 1));
    assert.deepEqual(getBlockMap(q, shifted, 0.3, s.BLKQ, s.BLKK).lut, getBlockMap(q, k, 0.3, s.BLKQ, s.BLKK).lut);
  });

  it('calculateSparsity on non-causal scores selects the blocks planBlockMask plans', () => {
    for (const s of [SHAPES[0], SHAPES[3], SHAPES[6]]) {
      const { q, k } = inputs(s, 41);
      const m = sla(s);
      const plan = m.planBlockMask(q, k, { causal: false });
      const { mask, stats } = m.calculateSparsity(computeScores(q, k));
      for (let b = 0; b < s.B; b++)
        for (let h = 0; h < s.H; h++) {
          const want = plan.mask.expand(b, h);
          const got = mask.subarray((b * s.H + h) * s.Lq * s.Lk, (b * s.H + h + 1) * s.Lq * s.Lk);
          assert.deepEqual(Array.from(got), Array.from(want), `${s.name} head ${h}`);
        }
      assert.equal(stats.keptBlocks, plan.stats.keptBlocks);
      const masked = m.applySparsity(computeScores(q, k), mask);
      assert.ok(masked.data.every((x, i) => (mask[i] ? Number.isFinite(x) : x === -Infinity)));
    }
  });

  it('plan: BlockMask of the selected blocks, pooled scores as blockScores, static threshold info', () => {
    const s = SHAPES[1];
    const { q, k } = inputs(s, 51);
    const m = sla(s);
    const plan = m.planBlockMask(q, k, { causal: true });
    const map = m.blockMap(q, k, { causal: true });
    assert.deepEqual(plan.mask.toDense(), map.sparseMap);
    assert.equal(plan.mask.blockRows, s.BLKQ);
    assert.deepEqual(plan.blockScores, map.pooledScores);
    assert.equal(plan.stats.method, 'sla');
    assert.ok(plan.stats.sparsity > 0 && plan.stats.sparsity < 1);
    for (let qb = 0; qb < map.numQueryBlocks; qb++) assert.deepEqual(plan.mask.keptBlocks(0, 1, qb), selectedBlocks(map, 0, 1, qb));
    assert.deepEqual(m.getThresholdInfo(), { type: 'static', value: 0.4, topkRatio: 0.4 });
  });
});

describe('SLA attention', () => {
  for (const s of SHAPES) {
    it(`topkRatio 1 is dense attention (linear part empty even with proj = identity): ${s.name}`, () => {
      const { q, k, v } = inputs(s, 61);
      const { output } = sla(s, { topkRatio: 1, proj: 'identity' }).attention(q, k, v, { causal: s.causal });
      assertTensorsClose(output, naiveAttention(q, k, v, { causal: s.causal }), TOL.f32, 'ratio 1 vs dense');
    });

    it(`proj = 0 is the sparse part alone = block-sparse attention with the plan's mask: ${s.name}`, () => {
      const { q, k, v } = inputs(s, 71);
      const { output, plan } = sla(s).attention(q, k, v, { causal: s.causal });
      assertTensorsClose(output, naiveBlockSparseAttention(q, k, v, plan.mask, { causal: s.causal }), TOL.f32, 'sparse part');
    });

    it(`linear part = the per-query formula over unselected keys, every feature map: ${s.name}`, () => {
      const { q, k, v } = inputs(s, 81);
      const p = describeAttention(q, k, v, { causal: s.causal });
      const map = getBlockMap(q, k, 0.4, s.BLKQ, s.BLKK, { causal: s.causal });
      for (const featureMap of ['softmax', 'elu', 'relu'] as const) {
        for (const linearBlocks of ['unselected', 'all'] as const) {
          const ol = slaLinearPart(p, map, bhldF32(q), bhldF32(k), bhldF32(v), { featureMap, linearBlocks });
          const want = naiveLinearPart(q, k, v, map, featureMap, s.causal, linearBlocks === 'all');
          assertClose(ol, want.toFloat32Array(), TOL.f32, `${featureMap}, ${linearBlocks}`);
        }
      }
    });
  }

  it('O = Os + Ol·Wᵀ + b for identity and for loaded weights (inline and from a JSON file)', () => {
    const s = SHAPES[1];
    const { q, k, v } = inputs(s, 91);
    const os = sla(s).attention(q, k, v, { causal: true }).output.toLayout('BHLD').toFloat32Array();
    const map = sla(s).blockMap(q, k, { causal: true });
    const ol = naiveLinearPart(q, k, v, map, 'elu', true).toFloat32Array();
    const ident = sla(s, { proj: 'identity', featureMap: 'elu' }).attention(q, k, v, { causal: true }).output;
    assertClose(ident.toLayout('BHLD').toFloat32Array(), os.map((x, i) => x + ol[i]), TOL.f32, 'identity proj');
    const D = s.D;
    const weight = Array.from({ length: D }, (_, r) => Array.from({ length: D }, (_, c) => Math.sin(r * 7 + c)));
    const bias = Array.from({ length: D }, (_, r) => r / 10);
    const want = os.map((x, i) => {
      const r = i % D;
      const base = i - r;
      return x + bias[r] + weight[r].reduce((u, w, c) => u + w * ol[base + c], 0);
    });
    const inline = sla(s, { proj: { weight, bias }, featureMap: 'elu' }).attention(q, k, v, { causal: true }).output;
    assertClose(inline.toLayout('BHLD').toFloat32Array(), want, TOL.f32, 'weights + bias');
    const dir = mkdtempSync(join(tmpdir(), 'sla-'));
    try {
      const file = join(dir, 'proj.json');
      writeFileSync(file, JSON.stringify([...weight.flat(), ...bias]));
      const loaded = sla(s, { projFile: file, featureMap: 'elu' }).attention(q, k, v, { causal: true }).output;
      assertClose(loaded.toFloat32Array(), inline.toFloat32Array(), { atol: 0, rtol: 0 }, 'projFile');
      writeFileSync(file, '[1, 2,');
      assert.throws(() => sla(s, { projFile: file }), /projFile: .* is not valid JSON/);
    } finally {
      rmSync(dir, { recursive: true });
    }
    assert.throws(() => sla(s, { proj: new Float32Array(D * D + 1) }).attention(q, k, v, {}), /sla\.proj\.length must be Dv·Dv/);
    assert.throws(() => sla(s, { proj: new Float32Array(9) }).attention(q, k, v, {}), /sla\.proj weight length must be 64 \(Dv·Dv for value head dim 8\), got 9/);
  });

  it('BLHD and BHLD inputs give the same result, the output takes q\'s layout; f16 storage is read as f32', () => {
    const s = SHAPES[2];
    const a = inputs(s, 101, 'BLHD');
    const m = sla(s, { proj: 'identity' });
    const blhd = m.attention(a.q, a.k, a.v, { causal: true }).output;
    assert.equal(blhd.layout, 'BLHD');
    const bhld = m.attention(a.q.toLayout('BHLD'), a.k.toLayout('BHLD'), a.v.toLayout('BHLD'), { causal: true }).output;
    assert.equal(bhld.layout, 'BHLD');
    assertTensorsClose(blhd, bhld, { atol: 0, rtol: 0 }, 'layouts');
    const [q16, k16, v16] = [a.q, a.k, a.v].map((t) => t.toDType('f16'));
    const [q32, k32, v32] = [q16, k16, v16].map((t) => t.toDType('f32'));
    assertTensorsClose(m.attention(q16, k16, v16, { causal: true }).output, m.attention(q32, k32, v32, { causal: true }).output, { atol: 0, rtol: 0 }, 'f16 storage');
  });

  it('the call\'s causal flag decides; the setting is the default when the call leaves it out', () => {
    const s = SHAPES[1];
    const { q, k, v } = inputs(s, 111);
    const m = sla(s, { causal: true, proj: 'identity' });
    const byDefault = m.attention(q, k, v, {}).output.toFloat32Array();
    assertClose(byDefault, m.attention(q, k, v, { causal: true }).output.toFloat32Array(), { atol: 0, rtol: 0 }, 'setting');
    const nonCausal = m.attention(q, k, v, { causal: false }).output.toFloat32Array();
    assert.ok(nonCausal.some((x, i) => x !== byDefault[i]), 'causal: false at the call must override the setting');
  });

  it('a causal row whose selected blocks all lie in its future gets zeros, not NaN; NaN input is named', () => {
    // One query block of 8 rows, two key blocks of 4; key block 1 matches the queries, so topk = 1
    // picks it and rows 0..3 (which only see key block 0) have no visible selected key.
    const shape = { batch: 1, heads: 1, length: 8, headDim: 4 };
    const q = HeadTensor.fromFunction(shape, (_b, _h, _l, d) => (d === 0 ? 1 : 0));
    const k = HeadTensor.fromFunction(shape, (_b, _h, l, d) => (d === 0 ? (l >= 4 ? 5 : -5) : 0.1 * l));
    const v = HeadTensor.randn(shape, 3);
    const m = new SlaMethod({ BLKQ: 8, BLKK: 4, topkRatio: 0.5, proj: 'identity' });
    const map = m.blockMap(q, k, { causal: true });
    assert.deepEqual(Array.from(map.lut), [1]);
    const out = m.attention(q, k, v, { causal: true }).output.toFloat32Array();
    assert.ok(out.every(Number.isFinite));
    // Rows 0..3: Os = 0, so O is the linear part alone over their past keys (all in block 0).
    const ol = naiveLinearPart(q, k, v, map, 'softmax', true).toFloat32Array();
    assertClose(out.subarray(0, 16), ol.subarray(0, 16), TOL.f32, 'rows without sparse keys');
    (q.data as Float32Array)[5] = NaN;
    assert.throws(() => m.attention(q, k, v, {}), /q\[0, 0, 1, 1\].*must be a finite number, got NaN/);
  });

  it('a config entry with method "sla" builds the method from its own fields (br/bc as BLKQ/BLKK)', () => {
    const cfg = sparseAttentionConfig({ sparse_cfg: { '*attn*': { method: 'sla', topkRatio: 0.2, featureMap: 'elu', br: 64, bc: 32 } } });
    const m = createModuleMethod(resolveModuleConfig(cfg, 'blocks.0.attn')) as SlaMethod;
    assert.equal(m.name, 'sla');
    assert.deepEqual([m.settings.topkRatio, m.settings.featureMap, m.settings.BLKQ, m.settings.BLKK], [0.2, 'elu', 64, 32]);
  });

  it('runs through the registry and sparseAttention; rejects bad settings with clear messages', async () => {
    assert.ok(sparseMethods.has('sla', 'v1'));
    const s = SHAPES[0];
    const { q, k, v } = inputs(s, 121);
    const { output, plan } = await sparseAttention(q, k, v, { method: 'sla', settings: { BLKQ: 8, BLKK: 6 } });
    assert.equal(plan.stats.method, 'sla');
    assertTensorsClose(output, naiveBlockSparseAttention(q, k, v, plan.mask), TOL.f32, 'via sparseAttention');
    assert.equal((createSparseMethod('sla') as SlaMethod).settings.topkRatio, 0.1);
    assert.deepEqual({ ...(createSparseMethod('sla') as SlaMethod).settings, proj: undefined },
      { topkRatio: 0.1, featureMap: 'softmax', BLKQ: 128, BLKK: 64, causal: false, proj: undefined, linearBlocks: 'unselected' });
    assert.throws(() => createSparseMethod('sla', { topkRatio: 1.5 }), /sla\.topkRatio must be a number in \(0, 1\], got 1\.5/);
    assert.throws(() => createSparseMethod('sla', { topkRatio: 0 }), /must be a number in \(0, 1\], got 0/);
    assert.throws(() => createSparseMethod('sla', { featureMap: 'tanh' }), /sla\.featureMap must be one of "softmax", "elu", "relu", got "tanh"/);
    assert.throws(() => createSparseMethod('sla', { BLKQ: 0 }), /sla\.BLKQ must be an integer >= 1, got 0/);
    assert.throws(() => createSparseMethod('sla', { BLKQ: 64, br: 32 }), /sla\.br must be equal to sla\.BLKQ \(64\) or absent/);
    assert.throws(() => createSparseMethod('sla', { topk: 0.2 }), /sla setting name must be one of .*, got "topk"/);
    assert.throws(() => createSparseMethod('sla', { proj: 'ones' }), /sla\.proj must be "zero", "identity"/);
    assert.throws(() => createSparseMethod('sla', { proj: 'identity', projFile: 'x.json' }), /sla\.projFile must be absent when sla\.proj is given/);
  });
});

describe('SLA on a window of a causal call (rowsAfter)', () => {
  // Calibration measures windows cut from a call (rows [start, end), keys up to end): SLA's top-k must
  // count the whole call's key blocks, or a window keeps fewer blocks than the same rows in the call.
  it('keeps the blocks the whole call keeps for those rows', () => {
    const s: Shape = { name: 'window', B: 1, H: 2, Hkv: 1, Lq: 301, Lk: 301, D: 8, causal: true, BLKQ: 16, BLKK: 8 };
    const { q, k } = inputs(s, 71, 'BHLD');
    const m = sla(s, { topkRatio: 0.25 });
    const whole = m.blockMap(q, k, { causal: true });
    for (const [start, end] of [[64, 96], [160, 176], [240, 301]]) {
      const win = m.blockMap(q.sliceLength(start, end), k.sliceLength(0, end), { causal: true, rowsAfter: s.Lq - end });
      const nKB = win.numKeyBlocks;
      for (let h = 0; h < s.H; h++)
        for (let qb = 0; qb < win.numQueryBlocks; qb++) {
          const wholeRow = (h * whole.numQueryBlocks + start / s.BLKQ + qb) * whole.numKeyBlocks;
          const winRow = (h * win.numQueryBlocks + qb) * nKB;
          const got = Array.from(win.sparseMap.subarray(winRow, winRow + nKB));
          const want = Array.from(whole.sparseMap.subarray(wholeRow, wholeRow + nKB));
          assert.deepEqual(got, want, `head ${h}, window [${start}, ${end}) block ${qb}`);
        }
      // Without rowsAfter the window is planned as a call of its own: fewer key blocks in its top-k.
      const alone = m.blockMap(q.sliceLength(start, end), k.sliceLength(0, end), { causal: true });
      if (end < s.Lq) assert.ok(alone.topk < win.topk, `window [${start}, ${end}): top-k ${alone.topk} alone, ${win.topk} in the call`);
    }
    // Non-causal windows see every key already: rowsAfter changes nothing there.
    const nc = m.blockMap(q.sliceLength(0, 32), k, { causal: false, rowsAfter: 100 });
    assert.equal(nc.topk, m.blockMap(q.sliceLength(0, 32), k, { causal: false }).topk);
  });

  it('per-head calibration measures SLA windows at the whole call\'s top-k', async () => {
    const { HeadProblem } = await import('../src/calibration/per-head.js');
    const { calibrationCalls } = await import('../src/model/eval-variants.js');
    const s: Shape = { name: 'calib', B: 1, H: 1, Hkv: 1, Lq: 512, Lk: 512, D: 8, causal: true, BLKQ: 16, BLKK: 16 };
    const { q, k, v } = inputs(s, 5, 'BHLD');
    const base = { BLKQ: 16, BLKK: 16 };
    // Four 32-row windows, each on two query blocks of the call: the windows keep what those blocks keep in the call.
    const windows = calibrationCalls({ module: 'm', q, k, v }, 128);
    const problem = new HeadProblem('m', 0, windows, sparseMethods.descriptor('sla'), base, { causal: true });
    const whole = new SlaMethod({ ...base, topkRatio: 0.2 }).blockMap(q, k, { causal: true });
    let kept = 0;
    let total = 0;
    for (const w of windows) {
      const first = (s.Lq - w.rowsAfter! - w.q.length) / s.BLKQ;
      assert.ok(Number.isInteger(first) && w.q.length === 2 * s.BLKQ, 'windows on block boundaries');
      for (const qb of [first, first + 1])
        for (let kb = 0; kb <= qb; kb++) {
          total++;
          kept += whole.sparseMap[qb * whole.numKeyBlocks + kb];
        }
    }
    assert.ok(Math.abs(problem.at(0.2).sparsity - (1 - kept / total)) < 1e-9, `windows ${problem.at(0.2).sparsity}, the call's rows ${1 - kept / total}`);
  });
});
