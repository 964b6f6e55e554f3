/**
 * Every subpath package.json exports resolves (by the package's own name, as a user imports it) to
 * a module that has what the docs import from it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; exports: Record<string, unknown> };
const expected: Record<string, string[]> = {
  '.': ['sparseAttention', 'LlamaModel', 'calibratePerHead'],
  './webgpu': ['defaultWebGpuContext', 'createWebGpuBackend'],
  './cpu': [],
  './bench': [],
  './gpu-model': ['GpuLlamaModel', 'generateGreedyGpu', 'GpuKvCache', 'GEMM_KERNELS'],
};

describe('package subpath exports', () => {
  for (const sub of Object.keys(pkg.exports).filter((s) => s !== './package.json')) {
    it(`${pkg.name}${sub.slice(1)} loads${expected[sub]?.length ? ` and has ${expected[sub].join(', ')}` : ''}`, async () => {
      assert.ok(sub in expected, `${sub} is exported but this test does not know what it should hold`);
      const mod = (await import(`${pkg.name}${sub.slice(1)}`)) as Record<string, unknown>;
      for (const name of expected[sub]) assert.ok(name in mod, `${sub} lacks ${name}`);
    });
  }
});
