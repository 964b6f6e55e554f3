/**
 * `sparse-attn generate` as a child process (so it also proves the process exits): the printed
 * continuation is the golden greedy one of bytes-llama-dev, on the CPU and on WebGPU, whole-prompt
 * and in prefill chunks, dense and with a sparse config; bad arguments are refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { acquireTestGpu } from './helpers/webgpu.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const FIXTURES = new URL('../../test/fixtures/', import.meta.url);
const modelDir = fileURLToPath(new URL('bytes-llama-dev', FIXTURES));
const golden = JSON.parse(readFileSync(new URL('golden-bytes-llama-dev.json', FIXTURES), 'utf8')) as { cases: { name: string; prompt: string; greedy: number[] }[] };
const py64 = golden.cases.find((c) => c.name === 'py64')!;

const run = (args: string[]) =>
  promisify(execFile)(process.execPath, [cli, 'generate', ...args], { timeout: 120_000, encoding: 'buffer' }).then(
    (r) => ({ code: 0, stdout: r.stdout as Buffer, stderr: String(r.stderr) }),
    (e: { code?: number; stdout?: Buffer; stderr?: Buffer; killed?: boolean }) => {
      if (e.killed) throw new Error(`sparse-attn generate ${args.join(' ')} did not exit within 120 s`);
      return { code: e.code ?? -1, stdout: e.stdout ?? Buffer.alloc(0), stderr: String(e.stderr ?? '') };
    },
  );

const gpu = await acquireTestGpu();
await gpu.release(); // the children acquire their own devices

describe('sparse-attn generate', () => {
  const want = Buffer.from([...py64.greedy.slice(0, 4), 10]);

  it('cpu, prefill in chunks of 20: the golden continuation, bytes as they come, TTFT on stderr', async () => {
    const r = await run(['--model', modelDir, '--prompt', py64.prompt, '--max-new', '4', '--chunk', '20']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout, want);
    assert.match(r.stderr, /prompt 64 tokens: time to first token [\d.]+ s/);
    assert.match(r.stderr, /64\/64 100%/);
  });

  it('webgpu from a prompt file, dense and with a tri-shape config', { skip: gpu.skip }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'generate-'));
    writeFileSync(join(dir, 'prompt.txt'), py64.prompt);
    const dense = await run(['--model', modelDir, '--prompt-file', join(dir, 'prompt.txt'), '--max-new', '4', '--backend', 'webgpu', '--chunk', '40']);
    assert.equal(dense.code, 0, dense.stderr);
    assert.deepEqual(dense.stdout, want);
    // A window as wide as the prompt keeps every block: the continuation stays the golden one, with statistics printed.
    writeFileSync(join(dir, 'sparse.json'), JSON.stringify({ sparse_cfg: { '*self_attn*': { method: 'tri_shape', localWindow: 128, sinkTokens: 4, br: 16, bc: 16 }, default: { enable: false } } }));
    const sparse = await run(['--model', modelDir, '--prompt', py64.prompt, '--max-new', '4', '--backend', 'webgpu', '--config', join(dir, 'sparse.json'), '--stats']);
    assert.equal(sparse.code, 0, sparse.stderr);
    assert.deepEqual(sparse.stdout, want);
    assert.match(sparse.stderr, /model\.layers\.3\.self_attn/);
  });

  it('refuses a missing prompt, two prompts and an unknown backend', async () => {
    for (const args of [['--model', modelDir], ['--model', modelDir, '--prompt', 'a', '--prompt-file', 'b'], ['--model', modelDir, '--prompt', 'a', '--backend', 'cuda']]) {
      const r = await run(args);
      assert.equal(r.code, 2, args.join(' '));
    }
  });
});
