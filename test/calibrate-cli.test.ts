import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'calibrate', ...args], { encoding: 'utf8' });

describe('sparse-attn calibrate', () => {
  it('prints the fitted setting and the sparsity per length as JSON', () => {
    const r = run('--method', 'flash_skip_softmax', '--target', '0.5', '--lengths', '256,384', '--heads', '2', '--head-dim', '16', '--settings', '{"br":16,"bc":16}', '--json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.method, 'flash_skip_softmax');
    assert.equal(out.threshold_info.type, 'dynamic_calibrated');
    assert.deepEqual(out.rows.map((x: { length: number }) => x.length), [256, 384]);
    for (const row of out.rows) {
      assert.ok(row.calibrationSparsity > 0.2 && row.calibrationSparsity < 0.8, `calibration sparsity ${row.calibrationSparsity}`);
      assert.ok(row.heldOutSparsity > 0 && row.heldOutSparsity < 1);
      // The dynamic threshold shrinks as 1/Lk.
      assert.ok(Math.abs(row.value * row.length - out.rows[0].value * out.rows[0].length) < 1e-9);
    }
  });

  it('names a bad target and exits 2', () => {
    const r = run('--method', 'flash_skip_softmax', '--target', '1.5', '--lengths', '64');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /target must be a sparsity in \[0, 1\), got 1\.5/);
  });
});
