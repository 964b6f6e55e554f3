/** `sparse-attn device` and `demo --backend`: run as child processes, so they also prove the process exits. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { acquireTestGpu } from './helpers/webgpu.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const run = (args: string[]) =>
  promisify(execFile)(process.execPath, [cli, ...args], { timeout: 60_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code?: number; stdout?: string; killed?: boolean }) => {
      if (e.killed) throw new Error(`sparse-attn ${args.join(' ')} did not exit within 60 s`);
      return { code: e.code ?? -1, stdout: e.stdout ?? '' };
    },
  );

const gpu = await acquireTestGpu();
await gpu.release(); // the children acquire their own devices

describe('sparse-attn device / demo --backend', () => {
  it('device --json reports the adapter (or, without one, why not, with exit status 1)', async () => {
    const { code, stdout } = await run(['device', '--json']);
    const report = JSON.parse(stdout);
    if (gpu.skip) {
      assert.equal(code, 1);
      assert.equal(report.available, false);
      assert.match(report.reason, /WebGPU/);
      return;
    }
    assert.equal(code, 0);
    assert.equal(report.available, true);
    for (const field of ['vendor', 'description', 'shaderF16', 'subgroups', 'subgroupMatrix', 'limits', 'features']) assert.ok(field in report, `report has ${field}`);
    assert.equal(typeof report.limits.maxStorageBufferBindingSize, 'number');
  });

  it('demo --backend webgpu matches demo --backend cpu, method by method', { skip: gpu.skip }, async () => {
    const args = ['demo', '--length', '96', '--heads', '2', '--kv-heads', '1', '--json'];
    const [gpuRun, cpuRun] = await Promise.all([run([...args, '--backend', 'webgpu']), run([...args, '--backend', 'cpu'])]);
    assert.equal(gpuRun.code, 0);
    assert.equal(cpuRun.code, 0);
    const gpuRows = JSON.parse(gpuRun.stdout) as { method: string; density: number | null; relL2Error: number | null }[];
    const cpuRows = JSON.parse(cpuRun.stdout) as typeof gpuRows;
    assert.deepEqual(gpuRows.map((r) => r.method), cpuRows.map((r) => r.method));
    gpuRows.forEach((r, i) => {
      assert.equal(r.density, cpuRows[i].density, `${r.method} density`);
      assert.ok(Math.abs((r.relL2Error ?? 0) - (cpuRows[i].relL2Error ?? 0)) < 1e-4, `${r.method} error ${r.relL2Error} vs ${cpuRows[i].relL2Error}`);
    });
  });

  it('demo refuses an unknown backend, naming the choices', async () => {
    const { code } = await run(['demo', '--length', '16', '--backend', 'gpu']);
    assert.equal(code, 2);
  });
});
