/**
 * `sparse-attn eval --backend webgpu` as a child process on a tiny random byte-vocabulary Llama:
 * the JSON report (device, date, intervals, per-head and config rows), the Pareto table, the SVG
 * plot, and the dense loss equal to the CPU backend's on the same prompts. Skips without a WebGPU
 * adapter (fails under SPARSE_ATTN_REQUIRE_WEBGPU=1).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { AccuracyReport } from '../src/model/accuracy.js';
import { acquireTestGpu } from './helpers/webgpu.js';
import { TINY_CONFIG, writeTinyCheckpoint } from './helpers/tiny-llama.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const gpu = await acquireTestGpu();
await gpu.release(); // the children acquire their own devices

const run = async (args: string[]) => {
  try {
    const r = await promisify(execFile)(process.execPath, [cli, 'eval', ...args], { timeout: 300_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string; killed?: boolean };
    if (x.killed) throw new Error(`sparse-attn eval ${args.join(' ')} did not exit within 300 s`);
    return { code: x.code ?? -1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
};

describe('sparse-attn eval --backend webgpu on a tiny model', { skip: gpu.skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'eval-webgpu-'));
  // Bytes need a 256-entry vocabulary; head dim 64 so every method's kernels accept it.
  const model = writeTinyCheckpoint({ ...TINY_CONFIG, vocab_size: 256, hidden_size: 16, intermediate_size: 24, head_dim: 64, max_position_embeddings: 512 });
  const config = join(dir, 'xattn-small-blocks.json');
  writeFileSync(config, JSON.stringify({ sparse_cfg: { '*self_attn*': { method: 'xattention', threshold: 0.5, blockSize: 16, stride: 4 }, default: { enable: false } } }));
  const common = ['--model', model, '--lengths', '96', '--prompts', '3', '--targets', '0.5', '--seed', '4'];

  it('report with device and intervals, per-head and config rows, Pareto table, SVG plot; dense loss = the CPU run', async () => {
    const out = join(dir, 'gpu.json');
    const plot = join(dir, 'pareto.svg');
    const r = await run([...common, '--backend', 'webgpu', '--dtype', 'f32', '--methods', 'xattention,sla', '--variants', 'uniform,per-head,sla-proj', '--configs', config, '--out', out, '--plot', plot]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(readFileSync(out, 'utf8')) as AccuracyReport;
    assert.equal(report.partial, undefined, 'the final save is not partial');
    assert.equal(report.device.backend, 'webgpu');
    assert.ok(typeof report.device.name === 'string' && report.device.name.length > 0);
    assert.ok(!Number.isNaN(Date.parse(report.date)));
    assert.deepEqual(report.rows.map((x) => `${x.method} ${x.label}`), [
      'dense dense', 'xattention default', 'xattention ~50%', 'xattention per-head ~50%',
      'sla default', 'sla ~50%', 'sla per-head ~50%', 'sla proj ~50%', 'xattention xattn-small-blocks',
    ]);
    const [dense, ...sparse] = report.rows;
    assert.equal(dense.lossDelta, 0);
    assert.equal(dense.agreement, 1);
    for (const x of report.rows) {
      assert.equal(x.prompts, 3);
      assert.equal(x.perPrompt.lossDelta.length, 3);
      assert.ok(x.ci.lossDelta.lo <= x.lossDelta + 1e-12 && x.lossDelta <= x.ci.lossDelta.hi + 1e-12, `${x.label}: ${JSON.stringify(x.ci.lossDelta)} ∌ ${x.lossDelta}`);
      assert.ok(x.ci.agreement.lo <= x.agreement && x.agreement <= x.ci.agreement.hi);
      assert.ok(Math.abs(x.lossDeltaPct - (100 * x.lossDelta) / x.denseLoss) < 1e-9);
    }
    const perHead = sparse.find((x) => x.label === 'per-head ~50%' && x.method === 'xattention')!;
    assert.equal(perHead.family, 'per-head');
    const entries = Object.values(perHead.config!.sparse_cfg) as { per_head?: { threshold?: number[] } }[];
    assert.ok(entries.some((e) => e.per_head?.threshold?.length === TINY_CONFIG.num_attention_heads), JSON.stringify(perHead.config));
    const proj = sparse.find((x) => x.family === 'sla-proj')!;
    const projEntries = Object.values(proj.config!.sparse_cfg) as { proj?: { weight?: number[] } }[];
    assert.ok(projEntries.some((e) => (e.proj?.weight?.length ?? 0) === 64 * 64), 'a fitted D×D projection in the config');
    const small = sparse.find((x) => x.family === 'config')!;
    assert.ok(small.sparsity > 0 && small.sparsity < 1, `16-token blocks on 96 tokens skip some: ${small.sparsity}`);
    assert.match(r.stdout, /Pareto front/);
    assert.match(r.stdout, /intervals: 95%: Student-t/);
    const svg = readFileSync(plot, 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    assert.match(svg, /L = 96/);
    assert.equal((svg.match(/<circle cx="[\d.]+" cy="[\d.]+" r="4"/g) ?? []).length, sparse.length, 'one point per sparse row');

    const cpuOut = join(dir, 'cpu.json');
    const c = await run([...common, '--backend', 'cpu', '--methods', 'tri_shape', '--out', cpuOut]);
    assert.equal(c.code, 0, c.stderr);
    const cpu = JSON.parse(readFileSync(cpuOut, 'utf8')) as AccuracyReport;
    assert.equal(cpu.device.backend, 'cpu');
    assert.ok(Math.abs(cpu.rows[0].denseLoss - dense.denseLoss) < 1e-4, `dense loss cpu ${cpu.rows[0].denseLoss} vs webgpu ${dense.denseLoss}`);
  });

  it('refuses an unknown backend and an unknown variant family before any work', async () => {
    const a = await run([...common, '--backend', 'cuda']);
    assert.notEqual(a.code, 0);
    assert.match(a.stderr, /--backend/);
    const b = await run([...common, '--variants', 'uniform,magic']);
    assert.notEqual(b.code, 0);
    assert.match(b.stderr, /variant family "magic": known are uniform, per-head, per-head-out, sla-proj/);
  });
});
