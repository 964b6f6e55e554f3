/**
 * Files a user names: a missing, unreadable or malformed file is one line naming the file and the
 * problem, exit 2, no stack trace, in every command; the checkpoint loader says when a checkpoint
 * and its config.json disagree; `sparse-attn config` checks each entry with its method's schema.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { loadLlamaCheckpoint } from '../src/model/checkpoint.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const fixture = fileURLToPath(new URL('../../test/fixtures/bytes-llama-dev', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
const tmp = mkdtempSync(join(tmpdir(), 'sparse-attn-files-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** One line on stderr, naming `what`, matching `problem`; exit 2; nothing on stdout; no stack. */
function assertOneLine(r: ReturnType<typeof run>, what: string, problem: RegExp): void {
  assert.equal(r.status, 2, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.ok(lines[0].includes(what), `names ${what}: ${lines[0]}`);
  assert.match(lines[0], problem);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(r.stdout, '');
}

/** A copy of the fixture checkpoint to break. */
function checkpointCopy(name: string): string {
  const dir = join(tmp, name);
  cpSync(fixture, dir, { recursive: true });
  return dir;
}

describe('sparse-attn config FILE', () => {
  it('a missing file', () => assertOneLine(run('config', join(tmp, 'nonexistent.json')), 'nonexistent.json', /: no such file$/));
  it('a directory', () => assertOneLine(run('config', tmp), tmp, /: a directory, expected a file$/));
  it('an unreadable file', (t) => {
    if (process.getuid?.() === 0) return t.skip('root reads any file');
    const p = join(tmp, 'locked.json');
    writeFileSync(p, '{}');
    chmodSync(p, 0);
    assertOneLine(run('config', p), p, /: permission denied$/);
  });
  it('malformed JSON', () => {
    const p = join(tmp, 'malformed.json');
    writeFileSync(p, '{"sparse_cfg": ');
    assertOneLine(run('config', p), p, /: not valid JSON \(/);
  });
  it("checks every enabled entry's settings with its method and reports every bad field", () => {
    const p = join(tmp, 'bad-settings.json');
    writeFileSync(p, JSON.stringify({ sparse_cfg: {
      '*attn*': { method: 'xattention', thresh: 0.5, blockSize: 100, stride: 8 },
      '*mlp*': { method: 'nosuch' },
      '*x*': { method: 'flash_skip_softmax', variant: 'fast' },
      default: { enable: false, method: 'also_unknown_but_disabled' },
    } }));
    const r = run('config', p);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /invalid method settings \(4 problems\)/);
    assert.match(r.stderr, /sparse_cfg\["\*attn\*"\]\.thresh: xattention setting must be one of .*got "thresh"/);
    assert.match(r.stderr, /sparse_cfg\["\*attn\*"\]\.blockSize: xattention\.blockSize must be a positive integer multiple of stride \(8\), got 100/);
    assert.match(r.stderr, /sparse_cfg\["\*mlp\*"\]\.method must be a registered sparse method \(.*\), got "nosuch"/);
    assert.match(r.stderr, /sparse_cfg\["\*x\*"\]\.variant: flash_skip_softmax\.variant must be "cummax" or "sequential", got "fast"/);
  });
  it('a good config still prints and exits 0', () => {
    const p = join(tmp, 'good.json');
    writeFileSync(p, JSON.stringify({ sparse_cfg: { '*attn*': { method: 'xattention', threshold: 0.9, blockSize: 64, stride: 8 }, default: { enable: false } } }));
    const r = run('config', p);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).sparse_cfg['*attn*'].threshold, 0.9);
  });
});

describe('sparse-attn eval --model: the checkpoint files', () => {
  it('--model without a value', () => assertOneLine(run('eval', '--model'), '--model', /argument missing/));
  it('a missing folder', () => assertOneLine(run('eval', '--model', join(tmp, 'none')), join(tmp, 'none'), /an existing folder/));
  it('a malformed config.json', () => {
    const dir = checkpointCopy('bad-config');
    writeFileSync(join(dir, 'config.json'), '{"model_type": "llama",');
    assertOneLine(run('eval', '--model', dir, '--prompts', '1'), join(dir, 'config.json'), /: not valid JSON \(/);
  });
  it('a malformed model.safetensors.index.json', () => {
    const dir = checkpointCopy('bad-index');
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"weight_map": {');
    assertOneLine(run('eval', '--model', dir, '--prompts', '1'), join(dir, 'model.safetensors.index.json'), /: not valid JSON \(/);
  });
  it('an index without a weight_map', () => {
    const dir = checkpointCopy('no-map');
    writeFileSync(join(dir, 'model.safetensors.index.json'), '{"metadata": {}}');
    assertOneLine(run('eval', '--model', dir, '--prompts', '1'), 'model.safetensors.index.json', /no "weight_map" object/);
  });
  it('a shard that is a directory', () => {
    const dir = checkpointCopy('shard-dir');
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    mkdirSync(join(dir, 'model-00002-of-00002.safetensors'));
    assertOneLine(run('eval', '--model', dir, '--prompts', '1'), 'model-00002-of-00002.safetensors', /: a directory, expected a file$/);
  });
  it('a corpus path that is a file', () => {
    const p = join(tmp, 'corpus.txt');
    writeFileSync(p, 'x');
    assertOneLine(run('eval', '--corpus', p, '--prompts', '1'), p, /not a directory/);
  });
});

describe('checkpoint and config.json disagree', () => {
  const config = JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8')) as { num_hidden_layers: number };
  it('config.json asks for more layers than the checkpoint holds', () => {
    const dir = checkpointCopy('more-layers');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: config.num_hidden_layers + 2 }));
    const n = config.num_hidden_layers;
    assert.throws(() => loadLlamaCheckpoint(dir), new RegExp(`config\\.json \\(num_hidden_layers ${n + 2}\\) disagree: layers missing from the checkpoint: ${n}-${n + 1}$`));
  });
  it('the checkpoint holds layers the config leaves unused', () => {
    const dir = checkpointCopy('fewer-layers');
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: config.num_hidden_layers - 1 }));
    assert.throws(() => loadLlamaCheckpoint(dir), new RegExp(`layers in the checkpoint beyond the config: ${config.num_hidden_layers - 1}$`));
  });
  it('a tensor no part of the config reads', () => {
    const dir = checkpointCopy('extra-tensor');
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    const [anyName, shard] = Object.entries(index.weight_map)[0];
    index.weight_map['model.extra_norm.weight'] = shard;
    writeFileSync(indexPath, JSON.stringify(index));
    assert.ok(anyName);
    assert.throws(() => loadLlamaCheckpoint(dir), /disagree: tensors left unused by the config: "model\.extra_norm\.weight"$/);
  });
  it('the fixture itself loads (config and checkpoint agree)', () => {
    assert.equal(loadLlamaCheckpoint(fixture).weights.layers.length, config.num_hidden_layers);
  });
});
