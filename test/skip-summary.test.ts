/**
 * The end of a run says what was skipped: without an adapter (the Vulkan loader told to load no
 * driver), a WebGPU suite run through the skip-summary reporter ends with how many WebGPU suites
 * were skipped and why; with SPARSE_ATTN_REQUIRE_WEBGPU=1 the same run fails.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { skipSummary } from './helpers/skip-summary.js';

const reporter = fileURLToPath(new URL('./helpers/skip-summary.js', import.meta.url));
const suite = fileURLToPath(new URL('./webgpu-program.test.js', import.meta.url));

function runWithoutAdapter(env: Record<string, string> = {}) {
  // Without NODE_TEST_CONTEXT the child is a run of its own, not a subtest reporting to this one.
  const { NODE_TEST_CONTEXT: _, ...outer } = process.env;
  return spawnSync(process.execPath, [
    '--test', '--test-reporter=spec', '--test-reporter-destination=stdout', `--test-reporter=${reporter}`, '--test-reporter-destination=stdout', suite,
  ], { encoding: 'utf8', env: { ...outer, SPARSE_ATTN_REQUIRE_WEBGPU: '', VK_LOADER_DRIVERS_DISABLE: '*', ...env } });
}

describe('skip summary', () => {
  it('without an adapter, the last lines count the skipped WebGPU suites and give the reason', () => {
    const r = runWithoutAdapter();
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const last = r.stdout.trimEnd().split('\n').slice(-2);
    assert.match(last[0], /^# skipped: 1 WebGPU suite \(no WebGPU adapter: .+\)\.$/);
    assert.match(last[1], /SPARSE_ATTN_REQUIRE_WEBGPU=1/);
  });

  it('with SPARSE_ATTN_REQUIRE_WEBGPU=1 a missing adapter fails the run', () => {
    const r = runWithoutAdapter({ SPARSE_ATTN_REQUIRE_WEBGPU: '1' });
    assert.notEqual(r.status, 0);
    assert.match(r.stdout + r.stderr, /SPARSE_ATTN_REQUIRE_WEBGPU=1 but WebGPU is unavailable/);
  });

  it('counts suites and tests apart and lists other skips with their reasons', () => {
    const gpu = 'no WebGPU adapter: none here';
    assert.deepEqual(skipSummary([]), ['# skipped: nothing']);
    const lines = skipSummary([
      { name: 'a', reason: gpu, suite: true }, { name: 'b', reason: gpu, suite: true }, { name: 'c', reason: gpu, suite: false },
      { name: 'd', reason: 'root reads any file', suite: false },
    ]);
    assert.equal(lines[0], `# skipped: 2 WebGPU suites and 1 WebGPU test (${gpu}).`);
    assert.equal(lines[2], '# skipped: test "d" (root reads any file)');
  });
});
