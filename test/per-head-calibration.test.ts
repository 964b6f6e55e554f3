import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sparseAttention } from '../src/attention.js';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { calibratePerHead, type CapturedHeads, HeadProblem, knobGrid, searchBudget } from '../src/calibration/per-head.js';
import { createModuleMethod, resolveModuleConfig, sparseAttentionConfig } from '../src/config/index.js';
import { InvalidArgumentError } from '../src/core/errors.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { HeadTensor } from '../src/core/tensor.js';
import { sparseMethods } from '../src/methods/index.js';
import { headSlice, PerHeadMethod, perHeadValues } from '../src/methods/per-head.js';

const L = 160;
const D = 16;
const SCALE = 1;

/** Heads stacked from one-head tensors (all the same shape and layout). */
function stack(parts: HeadTensor[]): HeadTensor {
  const first = parts[0];
  return HeadTensor.fromFunction({ ...first.shape, heads: parts.length }, (b, h, l, d) => parts[h].row(b, 0, l)[d]);
}

/**
 * Three heads that want different settings: a local head (strong band, no sink), a diffuse one
 * (weak structure: attention spread over every key) and a sink + retrieval head.
 */
function threeHeads(seed: number): { q: HeadTensor; k: HeadTensor; v: HeadTensor } {
  const kinds = [
    { band: 8, sink: 0, retrieval: 0 },
    { band: 0.3, sink: 0, retrieval: 0 },
    { band: 1, sink: 8, retrieval: 8 },
  ];
  const heads = kinds.map((kind, h) => structuredQKV({ heads: 1, length: L, headDim: D, seed: seed + 31 * h, ...kind }));
  return { q: stack(heads.map((x) => x.q)), k: stack(heads.map((x) => x.k)), v: stack(heads.map((x) => x.v)) };
}

const captured: CapturedHeads[] = [1, 2].flatMap((seed) => [
  { module: 'model.layers.0.self_attn', ...threeHeads(seed) },
  { module: 'model.layers.1.self_attn', ...threeHeads(seed + 100) },
]);

const XATTN = { stride: 4, blockSize: 16 };
const SLA = { BLKQ: 16, BLKK: 16, causal: true };

/** Per-head relative L2 error of running `config` on the captured calls (the whole sparseAttention path). */
async function errorsOfConfig(config: Parameters<typeof sparseAttentionConfig>[0]): Promise<Map<string, number[]>> {
  const cfg = sparseAttentionConfig(config);
  const out = new Map<string, number[]>();
  for (const module of new Set(captured.map((c) => c.module))) {
    const method = createModuleMethod(resolveModuleConfig(cfg, module))!;
    const mine = captured.filter((c) => c.module === module);
    const diff = new Float64Array(3);
    const norm = new Float64Array(3);
    for (const c of mine) {
      const got = (await sparseAttention(c.q, c.k, c.v, { method, causal: true, scale: SCALE })).output;
      const want = flashAttention(c.q, c.k, c.v, { causal: true, scale: SCALE });
      for (let h = 0; h < 3; h++) {
        const g = headSlice(got, h).toFloat32Array();
        const w = headSlice(want, h).toFloat32Array();
        for (let i = 0; i < g.length; i++) {
          diff[h] += (g[i] - w[i]) ** 2;
          norm[h] += w[i] ** 2;
        }
      }
    }
    out.set(module, Array.from(diff, (d, h) => Math.sqrt(d / norm[h])));
  }
  return out;
}

function problems(method: string, base: Record<string, unknown>): HeadProblem[] {
  const d = sparseMethods.descriptor(method);
  return [...new Set(captured.map((c) => c.module))].flatMap((m) => [0, 1, 2].map((h) => new HeadProblem(m, h, captured.filter((c) => c.module === m), d, base, { causal: true, scale: SCALE })));
}

/** Block-weighted sparsity and the largest / summed error of every head at one uniform value. */
function uniformAt(ps: HeadProblem[], value: number): { sparsity: number; error: number; maxError: number; totalError: number } {
  const pts = ps.map((p) => p.at(value));
  const W = pts.reduce((a, p) => a + p.validBlocks, 0);
  const sparsity = pts.reduce((a, p) => a + p.sparsity * p.validBlocks, 0) / W;
  const maxError = Math.max(...pts.map((p) => p.error));
  return { sparsity, error: maxError, maxError, totalError: pts.reduce((a, p) => a + p.error, 0) };
}

describe('calibratePerHead, budget mode', () => {
  // XAttention's blocks of 16 cut the local head's band: its first sparse step costs 0.1.
  for (const [method, base, budget] of [['xattention', XATTN, 0.15], ['sla', SLA, 0.05]] as const) {
    it(`${method}: every head within budget ${budget}, sparser than one value for all heads`, async () => {
      const r = calibratePerHead(captured, method, { budget, baseSettings: base, scale: SCALE });
      assert.equal(r.heads.length, 6);
      for (const h of r.heads) assert.ok(h.error <= budget, `${h.module} head ${h.head}: error ${h.error} > ${budget} at ${h.value}`);
      // The uniform value that keeps the worst head within the same budget.
      const ps = problems(method, base);
      const knob = sparseMethods.descriptor(method).knob!;
      const u = searchBudget((x) => uniformAt(ps, x), knob, L, budget, 12);
      const uniform = uniformAt(ps, u);
      assert.ok(uniform.maxError <= budget);
      assert.ok(r.sparsity > uniform.sparsity + 0.02, `per-head sparsity ${r.sparsity.toFixed(3)} vs uniform ${uniform.sparsity.toFixed(3)} (${knob.setting} ${u})`);
      // The heads differ, so their values do.
      assert.ok(new Set(r.heads.map((h) => h.value)).size > 1, `values ${r.heads.map((h) => h.value).join(', ')}`);
      // The config runs through createModuleMethod and sparseAttention with the errors calibration reported.
      const errors = await errorsOfConfig(r.config);
      for (const h of r.heads) {
        const e = errors.get(h.module)![h.head];
        assert.ok(Math.abs(e - h.error) <= 1e-5 + 1e-3 * h.error, `${h.module} head ${h.head}: ran ${e}, calibrated ${h.error}`);
      }
    });
  }

  it('the config round trip: per_head values, threshold info and JSON', () => {
    const r = calibratePerHead(captured, 'xattention', { budget: 0.1, baseSettings: XATTN, scale: SCALE });
    const cfg = sparseAttentionConfig(JSON.parse(JSON.stringify(r.config)));
    for (const module of ['model.layers.0.self_attn', 'model.layers.1.self_attn']) {
      const m = createModuleMethod(resolveModuleConfig(cfg, module))!;
      assert.ok(m instanceof PerHeadMethod);
      const want = r.heads.filter((h) => h.module === module).map((h) => h.value);
      assert.deepEqual(perHeadValues(m, 'threshold'), want);
      assert.deepEqual(m.getThresholdInfo().per_head, { threshold: want });
    }
    assert.equal(createModuleMethod(resolveModuleConfig(cfg, 'model.layers.7.mlp')), null);
  });
});

describe('calibratePerHead, target mode', () => {
  for (const [method, base, target] of [['xattention', XATTN, 0.6], ['sla', SLA, 0.5]] as const) {
    it(`${method}: meets target ${target}, total error no more than one value for all heads at least as sparse`, () => {
      const r = calibratePerHead(captured, method, { target, baseSettings: base, scale: SCALE, grid: 10 });
      assert.ok(r.sparsity >= target - 1e-12 && r.sparsity <= target + 0.05, `sparsity ${r.sparsity} for target ${target}`);
      const total = r.heads.reduce((a, h) => a + h.error, 0);
      const ps = problems(method, base);
      const knob = sparseMethods.descriptor(method).knob!;
      const grid = knobGrid(knob, L, 10);
      assert.deepEqual(r.grid, grid);
      const uniform = grid.map((x) => ({ x, ...uniformAt(ps, x) })).filter((u) => u.sparsity >= r.sparsity);
      assert.ok(uniform.length > 0, 'some uniform value is at least as sparse');
      for (const u of uniform) assert.ok(total <= u.totalError + 1e-9, `per-head total error ${total} > uniform ${u.totalError} at ${knob.setting} ${u.x} (sparsity ${u.sparsity})`);
      // The distribution is uneven: the heads do not all sit at one value.
      assert.ok(new Set(r.heads.map((h) => h.value)).size > 1);
    });
  }
});

describe('calibratePerHead, bad requests', () => {
  it('rejects budget and target together or neither, out-of-range values, a method without knob', () => {
    assert.throws(() => calibratePerHead(captured, 'xattention', {}), /exactly one of them/);
    assert.throws(() => calibratePerHead(captured, 'xattention', { budget: 0.1, target: 0.5 }), /exactly one of them/);
    assert.throws(() => calibratePerHead(captured, 'xattention', { budget: 0 }), (e: unknown) => e instanceof InvalidArgumentError && /budget/.test(e.message));
    assert.throws(() => calibratePerHead(captured, 'xattention', { target: 1 }), (e: unknown) => e instanceof InvalidArgumentError && /target/.test(e.message));
    assert.throws(() => calibratePerHead(captured, 'xattention', { target: 0.5, grid: 1 }), /grid/);
    assert.throws(() => calibratePerHead(captured, 'dense', { budget: 0.1 }), /no calibration knob/);
    assert.throws(() => calibratePerHead(captured, 'nope', { budget: 0.1 }), /not registered/);
    assert.throws(() => calibratePerHead([], 'xattention', { budget: 0.1 }), /captured/);
  });

  it('rejects calls of one module with different head counts', () => {
    const two = structuredQKV({ heads: 2, length: L, headDim: D, seed: 9 });
    assert.throws(() => calibratePerHead([captured[0], { module: captured[0].module, ...two }], 'xattention', { budget: 0.1 }), /captured\[1\]\.q\.heads must be 3/);
  });

  it('tri_shape: per-head windows calibrate (one token rule per head), and run with the errors reported', async () => {
    const base = { sinkTokens: 4, lastDenseQueries: 4, br: 16, bc: 16 };
    const budget = 0.2;
    const r = calibratePerHead(captured, 'tri_shape', { budget, baseSettings: base, scale: SCALE });
    assert.equal(r.setting, 'localWindow');
    for (const h of r.heads) assert.ok(h.error <= budget, `${h.module} head ${h.head}: error ${h.error} > ${budget} at ${h.value}`);
    assert.ok(new Set(r.heads.map((h) => h.value)).size > 1, `windows ${r.heads.map((h) => h.value).join(', ')}`);
    const errors = await errorsOfConfig(r.config);
    for (const h of r.heads) {
      const e = errors.get(h.module)![h.head];
      assert.ok(Math.abs(e - h.error) <= 1e-5 + 1e-3 * h.error, `${h.module} head ${h.head}: ran ${e}, calibrated ${h.error}`);
    }
  });
});
