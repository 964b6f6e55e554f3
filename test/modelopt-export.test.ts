/**
 * The HF `sparse_attention_config` export against golden config.json files written by ModelOpt's own
 * exporter code (bench/golden/modelopt_export_golden.py runs export_sparse_attention_config read from a
 * NVIDIA/Model-Optimizer checkout, a2fbac7b, then json.dump(indent=4) as unified_export_hf does).
 * The same states are built here with sparsify on bytes-llama-dev (4 layers); the files must hold the
 * same keys in the same order with the same values (producer set to the script's), compared as text
 * once both are printed by JSON.stringify: Python prints the untouched config's floats its own way
 * ("1e-05", "10000.0"), which JavaScript cannot tell from 0.00001 and 10000 once parsed. Reading a block back must give the same block again,
 * and `sparse-attn calibrate --export` must write one.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { sparseConfigFromHfBlock, withSparseAttentionBlock } from '../src/config/hf-sparse-attention.js';
import type { SparseAttentionConfigJson } from '../src/config/sparse-config.js';
import { exportSparseAttentionConfig } from '../src/model/hf-export.js';
import { LlamaModel } from '../src/model/llama.js';
import { sparsify } from '../src/model/sparsify.js';

const FIXTURES = new URL('../../test/fixtures/', import.meta.url);
const model = LlamaModel.load(fileURLToPath(new URL('bytes-llama-dev', FIXTURES)));
const hfConfigText = readFileSync(new URL('bytes-llama-dev/config.json', FIXTURES), 'utf8');
/** The golden file, printed the way ours is (same values, same key order). */
const golden = (name: string) => JSON.stringify(JSON.parse(readFileSync(new URL(`modelopt-export/${name}.config.json`, FIXTURES), 'utf8')), null, 4);
const MODELOPT_PRODUCER = { name: 'modelopt', version: 'git-a2fbac7b' };

/** The script's CASES, as sparse_cfg entries (same numbers). */
const CASES: Record<string, SparseAttentionConfigJson> = {
  calibrated: {
    sparse_cfg: {
      '*self_attn': { method: 'flash_skip_softmax', calibration_params: { prefill: { a: 7.93, b: 8.61 }, decode: { a: 0.12, b: 9.85 } }, target_sparse_ratio: { prefill: 0.5, decode: 0.5 } },
      'model.layers.0.self_attn': { enable: false },
      default: { enable: false },
    },
    export_format: null,
  },
  calibrated_nm: {
    sparse_cfg: {
      '*self_attn': {
        method: 'flash_skip_softmax', calibration_params: { prefill: { a: 3.25, b: 11.5 } }, target_sparse_ratio: { prefill: 0.6 },
        export_sparse_softmax: true, sparsity_n: 3, sparsity_m: 8, dense_sink_tokens: 4, dense_recent_tokens: 128, initial_disabled_steps: 2,
      },
      'model.layers.[03].self_attn': { enable: false },
      default: { enable: false },
    },
    export_format: null,
  },
  static: { sparse_cfg: { '*self_attn': { method: 'flash_skip_softmax', thresholds: { prefill: [1e-3], decode: [1e-4] } }, default: { enable: false } }, export_format: null },
};

const ourFile = (block: Record<string, unknown> | null) => JSON.stringify(withSparseAttentionBlock(JSON.parse(hfConfigText), block), null, 4);

describe('HF sparse_attention_config export = ModelOpt\'s exporter (golden files)', () => {
  for (const name of Object.keys(CASES)) {
    it(`${name}: config.json key for key, value for value, in order`, () => {
      sparsify(model, CASES[name]);
      assert.equal(ourFile(exportSparseAttentionConfig(model, { producer: MODELOPT_PRODUCER })), golden(name));
    });
  }

  for (const name of ['calibrated', 'calibrated_nm']) {
    it(`${name}: read back into our config, sparsified and exported again, gives the same block`, () => {
      const file = JSON.parse(golden(name)) as Record<string, unknown>;
      const cfg = sparseConfigFromHfBlock(file)!;
      const result = sparsify(model, cfg);
      const ignored = ((file.sparse_attention_config as { config_groups: { group_0: { ignore: string[] } } }).config_groups.group_0.ignore);
      assert.deepEqual(result.modules.filter((m) => !m.enabled).map((m) => m.name), ignored);
      assert.equal(ourFile(exportSparseAttentionConfig(model, { producer: MODELOPT_PRODUCER })), golden(name));
    });
  }

  it('a block without calibration or N:M metadata reads as no config', () => {
    assert.equal(sparseConfigFromHfBlock(JSON.parse(golden('static'))), null);
  });

  it('by default names this library as the producer', () => {
    sparsify(model, CASES.calibrated);
    assert.deepEqual((exportSparseAttentionConfig(model) as { producer: unknown }).producer, { name: 'sparse-attention', version: '0.1.0' });
  });
});

describe('sparse-attn calibrate --export', () => {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  it('writes the fitted a, b and the target into an existing config.json, keeping its keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sa-export-'));
    try {
      const path = join(dir, 'config.json');
      writeFileSync(path, hfConfigText);
      const r = spawnSync(process.execPath, [cli, 'calibrate', '--method', 'flash_skip_softmax', '--target', '0.5', '--lengths', '256,384', '--heads', '2',
        '--head-dim', '16', '--settings', '{"br":16,"bc":16}', '--json', '--export', path], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      const written = JSON.parse(readFileSync(path, 'utf8'));
      assert.deepEqual(Object.keys(written).slice(0, -1), Object.keys(JSON.parse(hfConfigText)));
      const group = written.sparse_attention_config.config_groups.group_0;
      assert.deepEqual(group.targets, ['LlamaAttention'], 'from the file\'s architectures (LlamaForCausalLM)');
      assert.equal(group.algorithm, 'skip_softmax');
      assert.deepEqual(group.threshold_scale_factor, { formula: 'a * exp(b * target_sparsity)', prefill: out.settings.calibration_params.prefill });
      assert.deepEqual(group.target_sparsity, { prefill: 0.5, decode: 0.5 });
      // Read back, it runs the calibrated threshold: a·exp(b·0.5)/Lk.
      const cfg = sparseConfigFromHfBlock(written)!;
      assert.deepEqual((cfg.sparse_cfg['*attn*'] as { calibration_params: unknown }).calibration_params, { prefill: out.settings.calibration_params.prefill });
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('refuses a method serving engines cannot read', () => {
    const r = spawnSync(process.execPath, [cli, 'calibrate', '--method', 'tri_shape', '--target', '0.5', '--lengths', '128', '--export', join(tmpdir(), 'never.json')], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--export must be absent for tri_shape: only flash_skip_softmax calibration/);
  });
});
