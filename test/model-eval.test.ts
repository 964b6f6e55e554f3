/** Needle prompts, the sparsity-knob search, the accuracy runner (a tiny run on the real model) and the progress bar. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { ProgressBar } from '../src/cli/progress.js';
import { Rng } from '../src/core/rng.js';
import { HeadTensor } from '../src/core/tensor.js';
import { formatAccuracyTable, runAccuracyEval, sparseConfigFor } from '../src/model/accuracy.js';
import { LlamaModel } from '../src/model/llama.js';
import { buildNeedlePrompt, loadCorpus } from '../src/model/needle.js';
import { methodKnob } from '../src/calibration/knobs.js';
import { plannedSparsity, searchSetting } from '../src/model/sparsity-search.js';
import { resolveModuleConfig } from '../src/config/resolve.js';
import { sparseAttentionConfig } from '../src/config/sparse-config.js';

const FIXTURES = new URL('../../test/fixtures/', import.meta.url);
const corpus = loadCorpus(new URL('python-corpus', FIXTURES).pathname);
const text = (b: Uint8Array) => Buffer.from(b).toString('latin1');

test('needle prompts: exact length, key lines in the haystack, the query names one of them', () => {
  for (const [length, needles] of [[256, 1], [1000, 3], [4096, undefined]] as const) {
    const p = buildNeedlePrompt(corpus, length, new Rng(length), needles);
    assert.equal(p.tokens.length, length);
    const s = text(p.tokens);
    const key = String(p.key).padStart(4, '0');
    assert.ok(s.endsWith(`\n# query ${key} = `), s.slice(-30));
    assert.ok(s.includes(`\n# key ${key} = ${text(p.answer)}\n`));
    assert.match(text(p.answer), /^[a-z]{6}$/);
    assert.equal((s.match(/\n# key \d{4} = [a-z]{6}\n/g) ?? []).length, p.needles);
    p.positions.forEach((at) => assert.ok(s.startsWith('\n# key ', at)));
  }
  assert.deepEqual(buildNeedlePrompt(corpus, 300, new Rng(5)), buildNeedlePrompt(corpus, 300, new Rng(5)), 'seeded');
  assert.throws(() => buildNeedlePrompt(corpus, 10, new Rng(1)), /needle prompt length must be an integer in \[64, /);
});

test('knob search finds tri-shape windows near 50% and 80% block sparsity', () => {
  const L = 4096;
  const q = HeadTensor.randn({ batch: 1, heads: 2, length: L, headDim: 8 }, 1);
  const k = HeadTensor.randn({ batch: 1, heads: 1, length: L, headDim: 8 }, 2);
  const calls = [{ module: 'm', q, k }];
  const knob = methodKnob('tri_shape');
  const wide = plannedSparsity('tri_shape', { localWindow: 1024 }, calls);
  const narrow = plannedSparsity('tri_shape', { localWindow: 256 }, calls);
  assert.ok(narrow > wide, `narrower window is sparser (${narrow} vs ${wide})`);
  for (const target of [0.5, 0.8]) {
    const r = searchSetting('tri_shape', knob, target, calls, L, 10);
    assert.ok(Math.abs(r.plannedSparsity - target) < 0.08, `target ${target}: got ${r.plannedSparsity} at ${JSON.stringify(r.settings)}`);
    assert.equal(plannedSparsity('tri_shape', r.settings, calls), r.plannedSparsity);
  }
});

test('eval configs keep the first N layers dense', () => {
  const cfg = sparseAttentionConfig(sparseConfigFor({ method: 'xattention', label: 'x', settings: { threshold: 0.5 } }, 2));
  assert.equal(resolveModuleConfig(cfg, 'model.layers.1.self_attn').enable, false);
  const layer2 = resolveModuleConfig(cfg, 'model.layers.2.self_attn');
  assert.equal(layer2.enable, true);
  assert.deepEqual(layer2.settings, { threshold: 0.5 });
});

test('a tiny accuracy run on bytes-llama-dev: dense row is the baseline, sparse rows measured', async () => {
  const model = LlamaModel.load(new URL('bytes-llama-dev', FIXTURES).pathname);
  const progress: number[] = [];
  const report = await runAccuracyEval(model, corpus, {
    lengths: [160], prompts: 1, methods: ['xattention'], targets: [0.5], seed: 3, denseLayers: 1,
    onProgress: (done) => progress.push(done),
  });
  assert.deepEqual(report.rows.map((r) => [r.method, r.label]), [['dense', 'dense'], ['xattention', 'default'], ['xattention', '~50%']]);
  const [dense, def, half] = report.rows;
  assert.equal(dense.lossDelta, 0);
  assert.equal(dense.agreement, 1);
  assert.equal(dense.sparsity, 0);
  assert.ok(dense.needleAccuracy === 0 || dense.needleAccuracy === 1);
  for (const r of [def, half]) {
    assert.ok(r.sparsity > 0 && r.sparsity < 1, `measured sparsity ${r.sparsity}`);
    assert.ok(Number.isFinite(r.lossDelta) && Number.isFinite(r.logProbDelta));
  }
  assert.ok(half.plannedSparsity !== undefined && 'threshold' in half.settings);
  assert.equal(progress[progress.length - 1], 3);
  const table = formatAccuracyTable(report);
  assert.match(table, /^L\s+method\s+setting\s+settings\s+sparsity\s+Δloss\s+agree/);
  assert.match(table, /160\s+xattention\s+~50%\s+\{threshold:/);
});

test('the progress bar writes whole lines when the stream is not a terminal', () => {
  const lines: string[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } }) as unknown as NodeJS.WriteStream;
  const bar = new ProgressBar(stream, 10);
  bar.update(0, 4, 'start');
  bar.update(1, 4, 'skipped: within 10 s of the last line');
  bar.update(4, 4, 'end');
  assert.equal(lines.length, 2);
  assert.match(lines[0], /^\[\.{10}\] 0\/4 +0% .* start\n$/);
  assert.match(lines[1], /^\[#{10}\] 4\/4 100% .* end\n$/);
});
