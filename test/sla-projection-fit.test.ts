/**
 * SLA's projection fitted in closed form: the least-squares step recovers a known projection, the
 * fitted projection is the one attention() then applies (its residual is the error measured through
 * the method), per-head weights act per head, and a config written with the weights loads back
 * through sparsify() to the same model output.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { fitSlaProjection, slaProjectionJson, solveSlaProjection, type SlaProjectionRows } from '../src/calibration/sla-projection-fit.js';
import { relativeL2Error } from '../src/core/error-metrics.js';
import { Rng } from '../src/core/rng.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { HeadTensor } from '../src/core/tensor.js';
import { LlamaModel } from '../src/model/llama.js';
import { captureAttentionInputs, slaProjectionConfig } from '../src/model/sla-projection-capture.js';
import { sparsify } from '../src/model/sparsify.js';
import { SlaMethod } from '../src/methods/sla/sla.js';
import { assertClose } from './helpers/compare.js';
import { TINY_CONFIG, writeTinyCheckpoint } from './helpers/tiny-llama.js';

const SETTINGS = { topkRatio: 0.25, BLKQ: 16, BLKK: 8 };

function randomParts(H: number, Hkv: number, L: number, D: number, seed: number) {
  const t = (heads: number, s: number) => HeadTensor.randn({ batch: 1, heads, length: L, headDim: D }, s);
  return new SlaMethod(SETTINGS).parts(t(H, seed), t(Hkv, seed + 1), t(Hkv, seed + 2), { causal: true });
}

/** target = Os + Ol·W_hᵀ + b_h, row by row (h: the row's head; one W when heads = 1). */
function projected(sparse: Float32Array, linear: Float32Array, w: Float32Array, b: Float32Array, D: number, Lq: number, heads: number): Float32Array {
  return sparse.map((x, i) => {
    const r = i % D;
    const o = i - r;
    const h = heads > 1 ? Math.floor(o / D / Lq) % heads : 0;
    let s = x + b[h * D + r];
    for (let c = 0; c < D; c++) s += w[(h * D + r) * D + c] * linear[o + c];
    return s;
  });
}

function randomWeights(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

describe('solveSlaProjection', () => {
  const D = 16;
  const L = 200;
  it('recovers a known shared projection (W₀, b₀) from Os + Ol·W₀ᵀ + b₀ (ridge 0)', () => {
    const { sparse, linear, problem } = randomParts(4, 2, L, D, 1);
    const w0 = randomWeights(D * D, 2);
    const b0 = randomWeights(D, 3);
    const target = projected(sparse, linear, w0, b0, D, L, 1);
    const { projections, report } = solveSlaProjection([{ module: 'm', sparse, linear, target, heads: problem.heads, queryLength: L, valueDim: D }], { ridge: 0 });
    const w = projections.get('m')!;
    assert.equal(w.heads, 1);
    assertClose(w.weight, w0, { atol: 1e-3, rtol: 1e-3 }, 'W');
    assertClose(w.bias, b0, { atol: 1e-3, rtol: 1e-3 }, 'bias');
    assert.equal(report[0].rowsFit, 4 * L);
    assert.ok(report[0].residualAfter < 1e-4 && report[0].residualBefore > 0.1, JSON.stringify(report[0]));
  });

  it('recovers distinct per-head projections; a shared fit cannot', () => {
    const H = 3;
    const { sparse, linear } = randomParts(H, 1, L, D, 4);
    const w0 = randomWeights(H * D * D, 5);
    const b0 = randomWeights(H * D, 6);
    const rows: SlaProjectionRows = { module: 'm', sparse, linear, target: projected(sparse, linear, w0, b0, D, L, H), heads: H, queryLength: L, valueDim: D };
    const per = solveSlaProjection([rows], { ridge: 0, perHead: true });
    const w = per.projections.get('m')!;
    assert.equal(w.heads, H);
    assertClose(w.weight, w0, { atol: 1e-3, rtol: 1e-3 }, 'W per head');
    assertClose(w.bias, b0, { atol: 1e-3, rtol: 1e-3 }, 'bias per head');
    const shared = solveSlaProjection([rows], { ridge: 0 });
    assert.ok(shared.report[0].residualAfter > 100 * per.report[0].residualAfter, `${shared.report[0].residualAfter} vs ${per.report[0].residualAfter}`);
  });

  it('ridge shrinks W (larger α, smaller ‖W‖), and auto picks an α from the grid by cross-validation', () => {
    const { sparse, linear } = randomParts(2, 1, L, D, 7);
    const rng = new Rng(8);
    const target = sparse.map((x) => x + 0.1 * rng.normal());
    const rows = [{ module: 'm', sparse, linear, target, heads: 2, queryLength: L, valueDim: D }];
    const norms = [0, 1e-2, 1, 100].map((ridge) => solveSlaProjection(rows, { ridge }).projections.get('m')!.weight.reduce((a, x) => a + x * x, 0));
    for (let i = 1; i < norms.length; i++) assert.ok(norms[i] < norms[i - 1], `‖W‖² ${norms.join(', ')}`);
    // Pure noise: the cross-validated choice is the strongest shrinkage.
    const auto = solveSlaProjection(rows, {}).report[0];
    assert.equal(auto.heldOutBy, 'rows');
    assert.ok(auto.ridge >= 10, `α ${auto.ridge}`);
    const twoCalls = solveSlaProjection([rows[0], { ...rows[0] }], {}).report[0];
    assert.equal(twoCalls.heldOutBy, 'call');
  });
});

describe('fitSlaProjection', () => {
  for (const perHead of [false, true]) {
    it(`its residuals are the errors attention() gives with proj zero and with the fitted proj (${perHead ? 'per head' : 'shared'}, causal GQA)`, () => {
      const calls = [1, 2].map((seed) => ({ module: 'layer', ...structuredQKV({ heads: 4, kvHeads: 2, length: 150, headDim: 16, seed, layout: 'BLHD' }) }));
      const { projections, report } = fitSlaProjection(calls, SETTINGS, { ridge: 1e-3, perHead });
      const proj = slaProjectionJson(projections.get('layer')!);
      assert.equal(proj.heads, perHead ? 4 : undefined);
      let zeroSq = 0, fitSq = 0, denseSq = 0;
      for (const c of calls) {
        const dense = flashAttention(c.q, c.k, c.v, { causal: true }).toLayout('BHLD').toFloat32Array();
        const zero = new SlaMethod(SETTINGS).attention(c.q, c.k, c.v, { causal: true }).output.toLayout('BHLD').toFloat32Array();
        const fit = new SlaMethod({ ...SETTINGS, proj }).attention(c.q, c.k, c.v, { causal: true }).output.toLayout('BHLD').toFloat32Array();
        for (let i = 0; i < dense.length; i++) {
          zeroSq += (zero[i] - dense[i]) ** 2;
          fitSq += (fit[i] - dense[i]) ** 2;
          denseSq += dense[i] ** 2;
        }
      }
      const r = report[0];
      assert.ok(Math.abs(Math.sqrt(zeroSq / denseSq) - r.residualBefore) < 1e-4, `before: measured ${Math.sqrt(zeroSq / denseSq)}, report ${r.residualBefore}`);
      assert.ok(Math.abs(Math.sqrt(fitSq / denseSq) - r.residualAfter) < 1e-4, `after: measured ${Math.sqrt(fitSq / denseSq)}, report ${r.residualAfter}`);
      assert.ok(r.residualAfter < 0.9 * r.residualBefore, JSON.stringify(r));
    });
  }

  it('rejects bad inputs, naming them', () => {
    const { q, k, v } = structuredQKV({ heads: 2, length: 40, headDim: 8, seed: 1 });
    assert.throws(() => fitSlaProjection([], SETTINGS), /captured must be a non-empty array/);
    assert.throws(() => fitSlaProjection([{ module: 'm', q, k, v }], SETTINGS, { ridge: -1 }), /ridge must be a number >= 0 or "auto", got -1/);
    assert.throws(() => fitSlaProjection([{ module: 'm', q, k, v }], SETTINGS, { ridge: Number.NaN }), /ridge must be/);
    assert.throws(() => fitSlaProjection([{ module: 'm', q, k, v }], {}, { method: 'xattention' }), /method must be an SLA method/);
    assert.throws(() => fitSlaProjection([{ module: '', q, k, v }], SETTINGS), /captured\[0\]\.module must be a module name/);
    assert.throws(() => fitSlaProjection([{ module: 'm', q, k, v: null as unknown as HeadTensor }], SETTINGS), /captured\[0\]\.v must be a HeadTensor/);
    assert.throws(() => fitSlaProjection([{ module: 'm', q, k, v }], { topkRatio: 2 }), /sla\.topkRatio/);
    const other = structuredQKV({ heads: 4, kvHeads: 2, length: 40, headDim: 8, seed: 2 });
    assert.throws(() => fitSlaProjection([{ module: 'm', q, k, v }, { module: 'm', ...other }], SETTINGS, { perHead: true }), /calls\[1\] \(m\) shape must be 2 heads/);
    const f = new Float32Array(8 * 10);
    assert.throws(() => solveSlaProjection([{ module: 'm', sparse: f, linear: f.subarray(8), target: f, heads: 1, queryLength: 10, valueDim: 8 }]), /calls\[0\] lengths must be equal multiples/);
  });
});

describe('per-head projection weights', () => {
  it('head h of the output is SLA with head h\'s W alone; the call\'s heads must match', () => {
    const D = 8;
    const H = 3;
    const { q, k, v } = structuredQKV({ heads: H, kvHeads: 1, length: 60, headDim: D, seed: 3 });
    const weight = randomWeights(H * D * D, 9);
    const bias = randomWeights(H * D, 10);
    const out = new SlaMethod({ ...SETTINGS, proj: { weight: Array.from(weight), bias: Array.from(bias), heads: H } }).attention(q, k, v, { causal: true }).output.toLayout('BHLD').toFloat32Array();
    const L = 60;
    for (let h = 0; h < H; h++) {
      const alone = new SlaMethod({ ...SETTINGS, proj: { weight: weight.slice(h * D * D, (h + 1) * D * D), bias: bias.slice(h * D, (h + 1) * D) } })
        .attention(q, k, v, { causal: true }).output.toLayout('BHLD').toFloat32Array();
      assertClose(out.subarray(h * L * D, (h + 1) * L * D), alone.subarray(h * L * D, (h + 1) * L * D), { atol: 0, rtol: 0 }, `head ${h}`);
    }
    const two = structuredQKV({ heads: 2, kvHeads: 1, length: 60, headDim: D, seed: 3 });
    const m = new SlaMethod({ ...SETTINGS, proj: { weight: Array.from(weight), heads: H } });
    assert.throws(() => m.attention(two.q, two.k, two.v, { causal: true }), /heads must be 2 \(the query heads of this call/);
    assert.throws(() => new SlaMethod({ proj: { weight: Array.from(weight), heads: 1.5 } }), /sla\.proj\.heads must be an integer >= 1/);
    assert.throws(() => new SlaMethod({ ...SETTINGS, proj: { weight: Array.from(weight).slice(1), heads: H } }).attention(q, k, v, {}), /weight length must be 192 \(3·Dv·Dv for 3 heads of value head dim 8\), got 191/);
  });
});

describe('fitted projection in a model config', () => {
  it('capture → fit → config (projFile and inline) → sparsify gives the fitted SLA in every layer', async () => {
    const model = LlamaModel.load(writeTinyCheckpoint({ ...TINY_CONFIG, head_dim: 8 }));
    const rng = new Rng(11);
    const prompts = [0, 1].map(() => Array.from({ length: 48 }, () => rng.int(TINY_CONFIG.vocab_size)));
    const captured = await captureAttentionInputs(model, prompts);
    assert.deepEqual(captured.map((c) => c.module), ['model.layers.0.self_attn', 'model.layers.1.self_attn', 'model.layers.0.self_attn', 'model.layers.1.self_attn']);
    assert.ok(model.attention.every((m) => m.method.name === 'dense'), 'methods restored');
    const settings = { topkRatio: 0.25, BLKQ: 8, BLKK: 4 };
    const { projections } = fitSlaProjection(captured, settings, { perHead: true });
    const dir = mkdtempSync(join(tmpdir(), 'sla-proj-'));
    try {
      const logits: Float32Array[] = [];
      for (const cfg of [slaProjectionConfig(settings, projections, { dir }), slaProjectionConfig(settings, projections)]) {
        sparsify(model, cfg);
        for (const m of model.attention) {
          const s = (m.method as SlaMethod).settings;
          assert.equal(m.method.name, 'sla');
          assert.ok(s.proj.kind === 'weights' && s.proj.heads === 2, m.name);
          assert.deepEqual(s.proj.kind === 'weights' && [...s.proj.weight], [...projections.get(m.name)!.weight], `${m.name} weights`);
        }
        logits.push((await model.forward(prompts[0], model.newCache(48), { logits: 'all' })).logits);
      }
      assert.ok(Object.values(slaProjectionConfig(settings, projections, { dir }).sparse_cfg).some((e) => typeof e.projFile === 'string'));
      assertClose(logits[0], logits[1], { atol: 0, rtol: 0 }, 'projFile = inline');
      sparsify(model, { sparse_cfg: { '*self_attn*': { method: 'sla', ...settings }, default: { enable: false } } });
      const zero = (await model.forward(prompts[0], model.newCache(48), { logits: 'all' })).logits;
      assert.ok(relativeL2Error(zero, logits[0]) > 1e-4, 'the fitted projection changes the output');
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('sparse-attn calibrate --fit-projection', () => {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const corpus = fileURLToPath(new URL('../../test/fixtures/python-corpus', import.meta.url));
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'calibrate', '--fit-projection', ...args], { encoding: 'utf8' });

  it('writes a config whose per-layer projFiles load back; reports the fit', () => {
    const model = writeTinyCheckpoint({ ...TINY_CONFIG, vocab_size: 256, head_dim: 8 });
    const dir = mkdtempSync(join(tmpdir(), 'sla-cli-'));
    try {
      const out = join(dir, 'cfg.json');
      const r = run('--method', 'sla', '--model', model, '--corpus', corpus, '--prompts', '2', '--length', '96', '--per-head',
        '--settings', JSON.stringify({ topkRatio: 0.25, BLKQ: 16, BLKK: 8 }), '--out', out, '--json');
      assert.equal(r.status, 0, r.stderr);
      const report = JSON.parse(r.stdout);
      assert.deepEqual(report.report.map((x: { module: string }) => x.module), ['model.layers.0.self_attn', 'model.layers.1.self_attn']);
      assert.ok(report.report.every((x: { rowsFit: number; heldOutBy: string }) => x.rowsFit === 2 * 96 * 2 && x.heldOutBy === 'call'));
      const cfg = JSON.parse(readFileSync(out, 'utf8'));
      const entry = cfg.sparse_cfg['model.layers.1.self_attn'];
      assert.equal(entry.method, 'sla');
      assert.equal(entry.projFile, join(dir, 'cfg.model.layers.1.self_attn.proj.json'));
      const m = LlamaModel.load(model);
      sparsify(m, cfg);
      const s = (m.attention[1].method as SlaMethod).settings;
      assert.ok(s.proj.kind === 'weights' && s.proj.heads === 2 && s.proj.weight.length === 2 * 64 && s.topkRatio === 0.25);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('rejects bad options, naming them', () => {
    assert.match(run('--method', 'xattention').stderr, /--method must be sla or sage_sla/);
    assert.match(run('--method', 'sla', '--corpus', corpus, '--out', 'x.json').stderr, /--model must be a folder/);
    assert.match(run('--method', 'sla', '--model', 'm', '--corpus', corpus, '--out', 'x.json', '--ridge=-1').stderr, /--ridge must be a number >= 0 or auto, got "-1"/);
    assert.match(run('--method', 'sla', '--model', 'm', '--corpus', corpus, '--out', 'x.json', '--settings', '[1]').stderr, /--settings must be a JSON object/);
  });
});
