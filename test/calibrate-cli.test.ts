import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('--per-head --error-budget: every head within the budget, the per-head config written and loadable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'perhead-cli-'));
    try {
      const file = join(dir, 'cfg.json');
      const r = run('--method', 'xattention', '--per-head', '--error-budget', '0.3', '--lengths', '128', '--heads', '4', '--kv-heads', '2', '--head-dim', '16',
        '--settings', '{"blockSize":16,"stride":4}', '--module', 'model.layers.*.self_attn', '--config', file, '--json');
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.mode, 'budget');
      assert.equal(out.heads.length, 4);
      for (const h of out.heads) assert.ok(h.error <= 0.3, `head ${h.head}: error ${h.error}`);
      const values = out.heads.map((h: { value: number }) => h.value);
      assert.deepEqual(out.threshold_info.per_head, { threshold: values });
      const written = JSON.parse(readFileSync(file, 'utf8'));
      assert.deepEqual(written, out.config);
      assert.deepEqual(written.sparse_cfg['model.layers.*.self_attn'].per_head, { threshold: values });
      const shown = spawnSync(process.execPath, [cli, 'config', file, '--module', 'model.layers.5.self_attn'], { encoding: 'utf8' });
      assert.equal(shown.status, 0, shown.stderr);
      assert.match(shown.stdout, /"per_head":\{"threshold":\[/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--per-head --target: the block sparsity over all heads meets the target', () => {
    const r = run('--method', 'sla', '--per-head', '--target', '0.5', '--lengths', '128', '--heads', '2', '--head-dim', '16', '--settings', '{"BLKQ":16,"BLKK":16}', '--grid', '8', '--json');
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.mode, 'target');
    assert.ok(out.sparsity >= 0.5 && out.sparsity < 0.65, `sparsity ${out.sparsity}`);
    assert.equal(out.grid.length, 8);
  });

  it('names bad per-head requests and exits 2', () => {
    const cases: [string[], RegExp][] = [
      [['--per-head', '--error-budget', '0.1', '--target', '0.5'], /exactly one of them with --per-head/],
      [['--per-head'], /exactly one of them with --per-head/],
      [['--error-budget', '0.1', '--target', '0.5'], /--error-budget must be absent without --per-head/],
      [['--per-head', '--error-budget=-1'], /--error-budget must be a relative L2 error > 0/],
      [['--per-head', '--target', 'prefill=0.5'], /--target must be with --per-head, one sparsity/],
      [['--per-head', '--target', '0.5', '--export', 'x.json'], /--export must be absent with --per-head: ModelOpt's sparse_attention_config/],
      [['--per-head', '--target', '0.5', '--grid', '1'], /--grid must be an integer >= 2/],
    ];
    for (const [args, message] of cases) {
      const r = run('--method', 'xattention', ...args, '--lengths', '64');
      assert.equal(r.status, 2, args.join(' '));
      assert.match(r.stderr, message, args.join(' '));
    }
  });
});
