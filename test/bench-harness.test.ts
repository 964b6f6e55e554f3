import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { benchCase, caseInputs, denseFlops, keptPairFraction, minBytes, sparseFlops, validationTwin } from '../src/bench/cases.js';
import { type BenchTarget, compareOutputs, runBench } from '../src/bench/harness.js';
import { buildReport, loadPeerFiles, loadReportFiles, mergeReportRecords, peerRowsOf } from '../src/bench/report.js';
import { h100Sweep, issue8Sweep, smokeSweep } from '../src/bench/sweeps.js';
import { cpuTarget } from '../src/bench/targets.js';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { benchCommand } from '../src/cli/commands/bench.js';
import { BlockMask } from '../src/core/block-mask.js';
import { Rng } from '../src/core/rng.js';

const FAST = { warmup: 0, minIters: 1, maxIters: 1, targetMs: 0 };

describe('bench cases: FLOPs and bytes', () => {
  const grids = [
    { Lq: 37, Lk: 37, br: 8, bc: 16, causal: true },
    { Lq: 37, Lk: 37, br: 8, bc: 16, causal: false },
    { Lq: 10, Lk: 33, br: 4, bc: 8, causal: true },
    { Lq: 1, Lk: 29, br: 16, bc: 16, causal: true },
  ];
  for (const g of grids) {
    it(`kept pair fraction = visible tokens of the expanded mask / of the full mask: ${JSON.stringify(g)}`, () => {
      const dims = { batch: 1, heads: 2, queryLength: g.Lq, keyLength: g.Lk, blockRows: g.br, blockCols: g.bc, causal: g.causal };
      const rng = new Rng(3);
      const mask = BlockMask.fromPredicate(dims, () => rng.next() < 0.5);
      const full = BlockMask.full(dims);
      const ones = (m: BlockMask) => [0, 1].reduce((s, h) => s + m.expand(0, h).reduce((a, x) => a + x, 0), 0);
      assert.equal(keptPairFraction(full), 1);
      assert.ok(Math.abs(keptPairFraction(mask) - ones(mask) / ones(full)) < 1e-12);
    });
  }

  it('dense FLOPs follow 4·B·H·Lq·Lk·D, halved when causal; a full mask gives exactly that', () => {
    const c = benchCase({ method: 'dense', heads: 32, kvHeads: 8, headDim: 128, queryLength: 4096 });
    assert.equal(denseFlops(c), (4 * 32 * 4096 * 4096 * 128) / 2);
    assert.equal(denseFlops({ ...c, causal: false }), 4 * 32 * 4096 * 4096 * 128);
    const small = benchCase({ method: 'dense', heads: 2, headDim: 16, queryLength: 37 });
    const full = BlockMask.full({ batch: 1, heads: 2, queryLength: 37, keyLength: 37, blockRows: 8, blockCols: 8, causal: true });
    assert.equal(sparseFlops(small, full), denseFlops(small));
    // Q and O at H heads, K and V at Hkv heads, 2 bytes each in f16.
    assert.equal(minBytes(c), 2 * 128 * (2 * 32 * 4096 + 2 * 8 * 4096));
  });

  it('the validation twin keeps method, dtype, causality and GQA ratio at a small off-grid length', () => {
    const c = benchCase({ method: 'xattention', settings: { threshold: 0.9 }, heads: 32, kvHeads: 8, headDim: 128, queryLength: 65536, dtype: 'f16' });
    const t = validationTwin(c);
    assert.deepEqual([t.heads, t.kvHeads, t.queryLength, t.keyLength, t.method, t.dtype, t.causal], [4, 1, 197, 197, 'xattention', 'f16', true]);
    const { q, k } = caseInputs(t);
    assert.equal(q.dtype, 'f16');
    assert.equal(k.heads, 1);
  });

  it('rejects bad shapes with the parameter named', () => {
    assert.throws(() => benchCase({ method: 'dense', heads: 6, kvHeads: 4, headDim: 16, queryLength: 8 }), /kvHeads must be a divisor of heads \(6\), got 4/);
    assert.throws(() => benchCase({ method: 'dense', heads: 2, headDim: 16, queryLength: 9, keyLength: 8 }), /queryLength must be at most keyLength \(8\) when causal, got 9/);
  });

  it('the issue-8 sweep has the asked menu: XAttention tau x S x block, GQA 32/8, SLA non-causal only', () => {
    const cases = issue8Sweep({ lengths: [4096], inputs: ['structured'] });
    const xa = cases.filter((c) => c.method === 'xattention' && c.kvHeads === 32);
    assert.equal(xa.length, 8);
    assert.ok(cases.some((c) => c.kvHeads === 8 && c.heads === 32));
    assert.ok(cases.filter((c) => c.method === 'sla').every((c) => !c.causal));
  });
});

describe('bench harness on the CPU target', () => {
  it('validates, times, and reports density and speedup over dense on the same shape', async () => {
    const cases = smokeSweep({ lengths: [200], kvHeads: [2], methods: ['dense', 'tri_shape'] });
    const records = await runBench(cpuTarget, cases, { timing: FAST });
    assert.equal(records.length, 3); // dense causal, tri_shape, dense non-causal
    for (const r of records) {
      assert.equal(r.status, 'ok', `${r.name}: ${r.reason}`);
      assert.ok(r.validation!.passed && r.validation!.shape.length === 197);
      assert.ok(r.ms! > 0 && r.tflops! > 0 && r.bytes! > 0);
      assert.equal(r.timing, 'wall-clock');
    }
    const [dense, tri] = records;
    assert.equal(dense.speedupOverDense, 1);
    assert.equal(dense.density, 1);
    assert.ok(tri.density! < 1, `tri-shape at L=200 with window 64 keeps fewer blocks, got ${tri.density}`);
    assert.ok(Math.abs(tri.speedupOverDense! - dense.ms! / tri.ms!) < 1e-12);
    assert.ok(tri.flops! < tri.denseFlops!);
  });

  it('skips unregistered methods and cases beyond the CPU, each with its reason', async () => {
    const missing = benchCase({ method: 'no_such_method', heads: 2, headDim: 16, queryLength: 8 });
    const huge = benchCase({ method: 'dense', heads: 32, headDim: 128, queryLength: 65536 });
    const [a, b] = await runBench(cpuTarget, [missing, huge], { timing: FAST });
    assert.equal(a.status, 'skipped');
    assert.match(a.reason!, /method "no_such_method" is not registered/);
    assert.equal(b.status, 'skipped');
    assert.match(b.reason!, /beyond the CPU reference's reach/);
  });

  it('skips a long XAttention case when the mask would be planned on the CPU', async () => {
    const fastKernel: BenchTarget = { ...cpuTarget, name: 'fast', supports: () => undefined };
    const c = benchCase({ method: 'xattention', settings: { stride: 8 }, heads: 32, headDim: 128, queryLength: 32768 });
    const [r] = await runBench(fastKernel, [c], { timing: FAST });
    assert.equal(r.status, 'skipped');
    assert.match(r.reason!, /planning the xattention mask on the CPU is ~\d+ GFLOP; target "fast" does not plan it/);
  });

  it('skips the cases left once the time budget is spent', async () => {
    const cases = smokeSweep({ lengths: [40], kvHeads: [4], methods: ['dense'] });
    const records = await runBench(cpuTarget, cases, { timing: FAST, budgetMs: 0 });
    assert.ok(records.every((r) => r.status === 'skipped' && /time budget of 0 s spent/.test(r.reason!)));
  });

  it('never times a kernel that fails validation (a backend that ignores the mask)', async () => {
    let calls = 0;
    const ignoresMask: BenchTarget = {
      ...cpuTarget,
      name: 'ignores-mask',
      backend: { ...cpuBackend, async blockSparseAttention(q, k, v, _mask, opts) { calls++; return flashAttention(q, k, v, opts); } },
    };
    const c = smokeSweep({ lengths: [150], kvHeads: [2], methods: ['tri_shape'] })[0];
    const [r] = await runBench(ignoresMask, [c], { timing: FAST });
    assert.equal(r.status, 'invalid');
    assert.match(r.reason!, /validation failed: \d+ values outside tolerance/);
    assert.equal(r.ms, undefined);
    assert.equal(calls, 1, 'only the validation call ran');
  });

  it('uses the target\'s GPU timing hook when it has one', async () => {
    const timed: BenchTarget = { ...cpuTarget, name: 'fake-gpu', async timeBlockSparse(_q, _k, _v, _m, _o, n) { return { ms: Array(n).fill(4), source: 'timestamp-query' as const }; } };
    const [r] = await runBench(timed, smokeSweep({ lengths: [40], kvHeads: [4], methods: ['dense'] }).slice(0, 1), { timing: { ...FAST, minIters: 3 } });
    assert.equal(r.timing, 'timestamp-query');
    assert.equal(r.ms, 4);
    assert.equal(r.iters, 3);
  });

  it('uses the target\'s own mask planning for the methods it plans, with the time it reports', async () => {
    let planned = 0;
    const planner: BenchTarget = {
      ...cpuTarget,
      name: 'gpu-planner',
      plans: (name) => name === 'tri_shape',
      async planBlockMask(method, q, k, opts) {
        planned++;
        return { plan: method.planBlockMask(q, k, opts), ms: 42 };
      },
    };
    const cases = smokeSweep({ lengths: [200], kvHeads: [4], methods: ['dense', 'tri_shape'] }).slice(0, 2);
    const [dense, tri] = await runBench(planner, cases, { timing: FAST });
    assert.equal(planned, 2, 'tri_shape planned by the target for its validation twin and its full-size case; dense not');
    assert.equal(tri.estimationMs, 42);
    assert.notEqual(dense.estimationMs, 42);
    assert.equal(tri.validation!.planBlocksDifferingFromCpu, 0);
  });

  it('compareOutputs reports NaN as an infinite error, never a pass', () => {
    const r = compareOutputs(Float32Array.of(1, NaN), Float32Array.of(1, 2), { atol: 1e-3, rtol: 0 });
    assert.equal(r.passed, false);
    assert.equal(r.maxAbsError, Infinity);
    assert.equal(r.outside, 1);
  });
});

describe('bench report and peers', () => {
  const sdpa = {
    peer: 'pytorch-sdpa', device: 'H100',
    results: [{ backend: 'cudnn', dtype: 'f16', heads: 4, kvHeads: 2, headDim: 32, causal: true, validation: { passed: true }, shapes: [{ length: 70, ms: 0.5, tflops: 1 }] }],
  };
  const ortDoc = {
    peer: 'onnxruntime-node WebGPU EP',
    results: [{ op: 'GroupQueryAttention', dtype: 'float16', heads: 4, kvHeads: 2, headDim: 32, causal: true, validation: { passed: true },
      shapes: [{ length: 70, wallMs: 9, kernelMs: 2.5, attentionKernelMs: 2, flops: 4e9 }] }],
  };

  it('flattens SDPA and ORT results into rows; ORT uses GPU kernel time when it has it', () => {
    const rows = peerRowsOf({ peers: [sdpa, ortDoc] });
    assert.equal(rows.length, 2);
    assert.deepEqual([rows[0].peer, rows[0].ms, rows[0].timing], ['sdpa-cudnn', 0.5, 'cuda-events']);
    assert.deepEqual([rows[1].peer, rows[1].dtype, rows[1].ms, rows[1].tflops, rows[1].timing], ['ort-webgpu-gqa', 'f16', 2, 2, 'timestamp-query']);
  });

  it('puts the peer figures at the same shape beside our record, and reads peer files by path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-test-'));
    const file = join(dir, 'peers.json');
    writeFileSync(file, JSON.stringify({ peers: [sdpa, ortDoc] }));
    const c = smokeSweep({ lengths: [70], kvHeads: [2], methods: ['dense'], dtype: 'f16' })[0];
    const records = await runBench(cpuTarget, [c], { timing: FAST });
    const report = buildReport({ name: 'test', backend: 'cpu' }, FAST, records, loadPeerFiles([file]));
    assert.equal(report.records[0].peers?.length, 2);
    assert.equal(report.peers[0].source, file);
    const notPeer = join(dir, 'other.json');
    writeFileSync(notPeer, '{"x": 1}');
    assert.throws(() => loadPeerFiles([notPeer]), /--peers must be a peer result JSON/);
  });

  it('merges earlier reports: a later timed record replaces an earlier one, an untimed one does not; speedups are recomputed', async () => {
    const cases = smokeSweep({ lengths: [70], kvHeads: [2], methods: ['dense', 'xattention'] });
    const first = await runBench(cpuTarget, cases, { timing: FAST });
    const second = first.map((r) => (r.case.method === 'dense' ? { ...r, ms: r.ms! * 2 } : { ...r, status: 'skipped' as const, ms: undefined, reason: 'budget' }));
    const dir = mkdtempSync(join(tmpdir(), 'bench-merge-'));
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    writeFileSync(a, JSON.stringify(buildReport({ name: 't', backend: 'cpu' }, FAST, first, [])));
    writeFileSync(b, JSON.stringify(buildReport({ name: 't', backend: 'cpu' }, FAST, second, [])));
    const merged = mergeReportRecords(loadReportFiles([a, b]));
    assert.equal(merged.length, first.length);
    const dense = merged.find((r) => r.case.method === 'dense' && r.case.causal)!;
    const xattn = merged.find((r) => r.case.method === 'xattention')!;
    assert.equal(dense.ms, first.find((r) => r.name === dense.name)!.ms! * 2);
    assert.equal(xattn.status, 'ok');
    assert.equal(xattn.speedupOverDense, dense.ms! / xattn.ms!);
    writeFileSync(join(dir, 'c.json'), '{"peer": "sdpa"}');
    assert.throws(() => mergeReportRecords(loadReportFiles([join(dir, 'c.json')])), /--from must be a report written by sparse-attn bench --out/);
  });

  it('the h100 sweep keeps every method of issue 8 and cuts the long lengths to what one device call affords', () => {
    const cases = h100Sweep();
    const at = (L: number) => new Set(cases.filter((c) => c.keyLength === L).map((c) => c.method));
    assert.deepEqual([...at(4096)].sort(), ['dense', 'flash_skip_softmax', 'sla', 'tri_shape', 'xattention']);
    assert.deepEqual([...at(131072)].sort(), ['dense', 'tri_shape', 'xattention']);
    assert.equal(cases.filter((c) => c.method === 'xattention' && c.keyLength === 131072).length, 1);
    assert.ok(cases.every((c) => c.kvHeads === 8 && c.input === 'structured' && (c.method === 'sla' ? !c.causal : true)));
  });

  it('sparse-attn bench writes the JSON report and rejects bad options by name', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'bench-cli-')), 'r.json');
    const log = console.log;
    console.log = () => {};
    const err = process.stderr.write;
    process.stderr.write = () => true;
    try {
      const code = await benchCommand.run(['--methods', 'dense', '--lengths', '33', '--kv-heads', '4', '--min-iters', '1', '--max-iters', '1', '--warmup', '0', '--out', out]);
      assert.equal(code, 0);
    } finally {
      console.log = log;
      process.stderr.write = err;
    }
    const report = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(report.tool, 'sparse-attention bench');
    assert.equal(report.records.length, 2);
    assert.ok(report.records.every((r: { status: string }) => r.status === 'ok'));
    const lines: string[] = [];
    console.log = (line: string) => lines.push(line);
    try {
      assert.equal(await benchCommand.run(['--sweep', 'issue8', '--lengths', '4096', '--inputs', 'random', '--kv-heads', '8', '--dry-run']), 0);
    } finally {
      console.log = log;
    }
    assert.equal(lines.length, 13);
    assert.match(lines[0], /^dense B1 H32\/8 L4096 D128 f16 causal random  137\.4 GFLOP dense$/);
    await assert.rejects(benchCommand.run(['--dtype', 'bf8']), /--dtype must be "f16" or "f32", got "bf8"/);
    await assert.rejects(benchCommand.run(['--inputs', 'lokal', '--dry-run']), /--inputs must be one of structured, local, random, got "lokal"/);
    await assert.rejects(benchCommand.run(['--backend', 'tpu']), /--backend must be one of cpu/);
  });
});

describe('bench inputs: local', () => {
  // The input kind XAttention's long-context figures are quoted on: its sharp band must make the
  // estimate keep few blocks where the default structured input keeps most of them.
  it('XAttention keeps far fewer blocks on local inputs than on structured ones', async () => {
    const { createSparseMethod } = await import('../src/methods/index.js');
    const density = (input: 'structured' | 'local') => {
      const c = benchCase({ method: 'xattention', heads: 2, kvHeads: 1, headDim: 128, queryLength: 4096, dtype: 'f32', input });
      const { q, k } = caseInputs(c);
      const plan = createSparseMethod('xattention', { threshold: 0.9, stride: 16, blockSize: 128 }).planBlockMask(q, k, { causal: true });
      return 1 - plan.stats.sparsity;
    };
    const local = density('local');
    const structured = density('structured');
    assert.ok(local < 0.2, `local ${local.toFixed(3)}`);
    assert.ok(structured > 0.8, `structured ${structured.toFixed(3)}`);
  });
});
