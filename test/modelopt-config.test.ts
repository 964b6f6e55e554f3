/**
 * Current ModelOpt's config surface (modelopt/torch/sparsity/attention_sparsity/config.py and
 * calibration/calibrator.py at NVIDIA/Model-Optimizer a2fbac7b, 2026-08-21): per-phase `thresholds`
 * lists beside the seed's `threshold`, the `sparse_cfg.calibration` key, the presets, every default
 * checked against that source, and sparsify's calibration, wildcard switches and summary.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fillAttributeDefaults, MODELOPT_ONLY_DEFAULTS } from '../src/config/attribute-config.js';
import { CALIBRATION_DEFAULTS, DEFAULT_THRESHOLD_TRIALS } from '../src/config/calibration-config.js';
import { ConfigValidationError } from '../src/config/issues.js';
import { loadSparseAttentionConfig, saveSparseAttentionConfig } from '../src/config/json.js';
import { resolveModuleConfig } from '../src/config/resolve.js';
import { calibrationRequest, MODELOPT_FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT, SKIP_SOFTMAX_CALIB, SKIP_SOFTMAX_DEFAULT } from '../src/config/sparse-config.js';
import { FlashSkipSoftmax } from '../src/methods/flash-skip-softmax/flash-skip-softmax.js';
import { LlamaModel, prefill } from '../src/model/llama.js';
import { disableSparseAttention, enableSparseAttention, sparseAttentionSummary, sparsify } from '../src/model/sparsify.js';
import { TINY_CONFIG, writeTinyCheckpoint } from './helpers/tiny-llama.js';

const CONFIG_PY = 'modelopt/torch/sparsity/attention_sparsity/config.py';
const CALIBRATOR_PY = 'modelopt/torch/sparsity/attention_sparsity/calibration/calibrator.py';

describe('ModelOpt defaults, checked against its source', () => {
  const attrs = fillAttributeDefaults({});
  const rows: [string, unknown, unknown, string][] = [
    ['SparseAttentionAttributeConfig.thresholds', attrs.thresholds, { prefill: [1e-3], decode: [1e-4] }, `${CONFIG_PY}: default={"prefill": [1e-3], "decode": [1e-4]}`],
    ['SparseAttentionAttributeConfig.br', attrs.br, 128, `${CONFIG_PY}: br default=128`],
    ['SparseAttentionAttributeConfig.bc', attrs.bc, 128, `${CONFIG_PY}: bc default=128`],
    ['SparseAttentionAttributeConfig.is_causal', attrs.is_causal, true, `${CONFIG_PY}: is_causal default=True`],
    ['SparseAttentionAttributeConfig.method', attrs.method, 'flash_skip_softmax', `${CONFIG_PY}: method default="flash_skip_softmax"`],
    ['SparseAttentionAttributeConfig.sparsity_n', MODELOPT_ONLY_DEFAULTS.sparsity_n, 2, `${CONFIG_PY}: sparsity_n default=2`],
    ['SparseAttentionAttributeConfig.sparsity_m', MODELOPT_ONLY_DEFAULTS.sparsity_m, 4, `${CONFIG_PY}: sparsity_m default=4`],
    ['SparseAttentionAttributeConfig.dense_sink_tokens', MODELOPT_ONLY_DEFAULTS.dense_sink_tokens, 0, `${CONFIG_PY}: dense_sink_tokens default=0`],
    ['SparseAttentionAttributeConfig.dense_recent_tokens', MODELOPT_ONLY_DEFAULTS.dense_recent_tokens, 64, `${CONFIG_PY}: dense_recent_tokens default=64`],
    ['SparseAttentionAttributeConfig.export_sparse_softmax', MODELOPT_ONLY_DEFAULTS.export_sparse_softmax, false, `${CONFIG_PY}: export_sparse_softmax default=False`],
    ['SparseAttentionAttributeConfig.skip_softmax_threshold', MODELOPT_ONLY_DEFAULTS.skip_softmax_threshold, 0.1, `${CONFIG_PY}: skip_softmax_threshold default=0.1`],
    ['SparseAttentionAttributeConfig.initial_disabled_steps', MODELOPT_ONLY_DEFAULTS.initial_disabled_steps, 0, `${CONFIG_PY}: initial_disabled_steps default=0`],
    ['CalibrationConfig.target_sparse_ratio', CALIBRATION_DEFAULTS.target_sparse_ratio, { prefill: 0.5, decode: 0.5 }, `${CONFIG_PY}: default={"prefill": 0.5, "decode": 0.5}`],
    ['CalibrationConfig.samples', CALIBRATION_DEFAULTS.samples, 24, `${CONFIG_PY}: samples default=24`],
    ['CalibrationConfig.max_seqlen', CALIBRATION_DEFAULTS.max_seqlen, 32768, `${CONFIG_PY}: max_seqlen default=32768`],
    ['CalibrationConfig.num_length_bins', CALIBRATION_DEFAULTS.num_length_bins, 4, `${CONFIG_PY}: num_length_bins default=4`],
    ['CalibrationConfig.chunk_size', CALIBRATION_DEFAULTS.chunk_size, 2048, `${CONFIG_PY}: chunk_size default=2048`],
    ['CalibrationConfig.num_decode_tokens', CALIBRATION_DEFAULTS.num_decode_tokens, 10, `${CONFIG_PY}: num_decode_tokens default=10`],
    ['CalibrationConfig.fit_logspace', CALIBRATION_DEFAULTS.fit_logspace, false, `${CONFIG_PY}: fit_logspace default=False`],
    ['CalibrationConfig.cache_dir', CALIBRATION_DEFAULTS.cache_dir, null, `${CONFIG_PY}: cache_dir default=None`],
    ['CalibrationConfig.data_dir', CALIBRATION_DEFAULTS.data_dir, null, `${CONFIG_PY}: data_dir default=None`],
    ['CalibrationConfig.threshold_trials (None →)', DEFAULT_THRESHOLD_TRIALS,
      [1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1, 2e-1, 3e-1, 5e-1, 7e-1, 8e-1, 9e-1, 9.5e-1, 9.9e-1], `${CALIBRATOR_PY}: DynamicThresholdCalibrator threshold_trials or [...]`],
  ];
  for (const [field, actual, expected, where] of rows) it(`${field} (${where})`, () => assert.deepEqual(actual, expected));

  it('presets are ModelOpt\'s, and round-trip exactly', () => {
    assert.deepEqual(SKIP_SOFTMAX_DEFAULT.sparse_cfg['*attn*'], { method: 'flash_skip_softmax', thresholds: { prefill: [1e-3], decode: [1e-4] }, br: 128, bc: 128, backend: 'pytorch', collect_stats: true, enable: true });
    assert.deepEqual(SKIP_SOFTMAX_CALIB.sparse_cfg.calibration, { target_sparse_ratio: { prefill: 0.5, decode: 0.5 }, samples: 64, max_seqlen: 16384, chunk_size: 4096 });
    assert.deepEqual((MODELOPT_FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT.sparse_cfg['*attention*'] as { thresholds: unknown }).thresholds, { prefill: [1e-3], decode: [1e-5] });
    for (const preset of [SKIP_SOFTMAX_DEFAULT, SKIP_SOFTMAX_CALIB, MODELOPT_FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT]) {
      const text = JSON.stringify(preset);
      assert.equal(JSON.stringify(saveSparseAttentionConfig(loadSparseAttentionConfig(text))), text);
    }
  });
});

describe('thresholds (current form) beside threshold (seed form)', () => {
  const entry = (attrs: Record<string, unknown>) => ({ sparse_cfg: { '*attn*': { method: 'flash_skip_softmax', ...attrs } } });

  it('both forms load, round-trip as written, and give the method its per-phase threshold', () => {
    for (const [attrs, expected] of [
      [{ thresholds: { prefill: [2e-3, 5e-3], decode: [1e-5, 1e-4] } }, { prefill: 2e-3, decode: 1e-5 }],
      [{ thresholds: { prefill: [2e-3] } }, { prefill: 2e-3, decode: 2e-3 }],
      [{ thresholds: { decode: [1e-5] } }, { prefill: 1e-3, decode: 1e-5 }],
      [{ threshold: 3e-3 }, { prefill: 3e-3, decode: 3e-3 }],
      [{ threshold: { prefill: 3e-3, decode: 2e-4 } }, { prefill: 3e-3, decode: 2e-4 }],
    ] as const) {
      const text = JSON.stringify({ ...entry(attrs), export_format: null });
      const cfg = loadSparseAttentionConfig(text);
      assert.equal(JSON.stringify(saveSparseAttentionConfig(cfg)), text, 'round trip');
      const r = resolveModuleConfig(cfg, 'model.layers.0.self_attn');
      assert.deepEqual(r.attributes!.threshold, attrs.threshold ?? expected);
      assert.deepEqual(new FlashSkipSoftmax(r.settings).settings.threshold, expected, JSON.stringify(attrs));
    }
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['both forms', { threshold: 1e-3, thresholds: { prefill: [1e-3] } }, /thresholds must be absent when threshold is given/],
    ['empty list', { thresholds: { prefill: [] } }, /thresholds\.prefill must be a non-empty list of numbers in \(0, 1\), got \[\]/],
    ['1 is out of range (ModelOpt: "must be in range (0, 1)")', { thresholds: { prefill: [1] } }, /thresholds\.prefill\[0\] must be a number in \(0, 1\), got 1/],
    ['unequal lengths', { thresholds: { prefill: [1e-3, 1e-2], decode: [1e-4] } }, /thresholds\.decode must be a list as long as prefill's \(2 values/],
    ['unknown phase', { thresholds: { verify: [0.1] } }, /thresholds\.verify must be absent \(allowed fields: prefill, decode\)/],
    ['sparsity_m 5', { sparsity_m: 5 }, /sparsity_m must be 4 or 8, got 5/],
    ['sparsity_n above max for m 4', { sparsity_n: 4 }, /sparsity_n must be in 0\.\.3 for sparsity_m 4, got 4/],
  ];
  for (const [name, attrs, re] of bad) {
    it(`rejects: ${name}`, () => assert.throws(() => loadSparseAttentionConfig(entry(attrs)), (e: unknown) => e instanceof ConfigValidationError && re.test(e.message)));
  }
});

describe('sparse_cfg.calibration (current form) and an entry\'s calibration (seed form)', () => {
  it('is read from either place, filled with defaults; the key never matches a module', () => {
    const global = loadSparseAttentionConfig(SKIP_SOFTMAX_CALIB);
    assert.deepEqual(calibrationRequest(global), { ...CALIBRATION_DEFAULTS, target_sparse_ratio: { prefill: 0.5, decode: 0.5 }, samples: 64, max_seqlen: 16384, chunk_size: 4096 });
    assert.equal(resolveModuleConfig(global, 'calibration').matchedBy, '"default"', 'a module named "calibration" is decided by default');
    const seed = loadSparseAttentionConfig({ sparse_cfg: { '*attn*': { calibration: { target_sparse_ratio: { prefill: 0.3 } } } } });
    assert.deepEqual(calibrationRequest(seed)!.target_sparse_ratio, { prefill: 0.3 }, 'as written: decode is not calibrated');
    assert.equal(calibrationRequest(loadSparseAttentionConfig(SKIP_SOFTMAX_DEFAULT)), null);
  });

  it('validates its fields as ModelOpt does', () => {
    assert.throws(() => loadSparseAttentionConfig({ sparse_cfg: { calibration: { chunk_size: 0 } } }), /sparse_cfg\.calibration\.chunk_size must be an integer >= 1, or -1 \(no chunking\), got 0/);
    assert.doesNotThrow(() => loadSparseAttentionConfig({ sparse_cfg: { calibration: { chunk_size: -1 } } }));
    assert.throws(() => loadSparseAttentionConfig({ sparse_cfg: { calibration: { num_decode_tokens: 0 } } }), /num_decode_tokens must be an integer >= 1, got 0/);
    assert.throws(() => loadSparseAttentionConfig({ sparse_cfg: { calibration: { samples: 4, sample: 1 } } }), /sparse_cfg\.calibration\.sample must be absent \(allowed fields: target_sparse_ratio, samples/);
  });
});

describe('sparsify: calibration by forward loop, wildcard switches, summary', () => {
  const dir = writeTinyCheckpoint({ ...TINY_CONFIG, num_hidden_layers: 3 });
  const model = LlamaModel.load(dir);
  rmSync(dir, { recursive: true });
  const prompt = Array.from({ length: 64 }, (_, i) => (i * 7 + 3) % 16);
  const loop = async (m: LlamaModel) => {
    for (const len of [48, 64]) await prefill(m, prompt.slice(0, len), m.newCache(len));
  };
  const config = {
    sparse_cfg: {
      calibration: { target_sparse_ratio: { prefill: 0.5 } },
      '*self_attn': { method: 'flash_skip_softmax', br: 8, bc: 8 },
      'model.layers.0.self_attn': { enable: false },
      default: { enable: false },
    },
  };

  it('refuses to skip a calibration the config asks for', () => {
    assert.throws(() => sparsify(model, config), /sparsify options\.forwardLoop must be a function that runs calibration prompts/);
  });

  it('calibrates the enabled modules on what the loop ran, one fit for all, and reports it', async () => {
    const result = await sparsify(model, config, { forwardLoop: loop });
    assert.equal(result.calibration!.calls.prefill, 2 * 2, 'two prompts through two enabled modules');
    const [cal] = result.calibration!.results;
    assert.equal(cal.method, 'flash_skip_softmax');
    assert.ok(cal.fit?.prefill && !cal.fit.decode, 'prefill fitted; decode left out of the target');
    for (const m of model.attention.slice(1)) assert.equal(m.method.getThresholdInfo().type, 'dynamic_calibrated');
    assert.equal(model.attention[0].method.name, 'dense');
    const summary = sparseAttentionSummary(model);
    assert.match(summary, /^Sparse attention: 2\/3 modules enabled\n {2}flash_skip_softmax: 2 layers, calibrated\(prefill: a=[\d.]+, b=[\d.]+, target=50%\)$/);
    // The calibrated threshold brings the prompt's prefill near the target.
    result.stats.clear();
    await loop(model);
    const rows = result.stats.summary('prefill').filter((r) => r.method === 'flash_skip_softmax');
    const mean = 1 - rows.reduce((a, r) => a + r.keptBlocks, 0) / rows.reduce((a, r) => a + r.totalBlocks, 0);
    assert.ok(mean > 0.2 && mean < 0.8, `prefill sparsity ${mean}`);
  });

  it('disables and re-enables by wildcard; a module the config left dense gets its entry\'s method', () => {
    sparsify(model, { sparse_cfg: { '*self_attn': { method: 'flash_skip_softmax', thresholds: { prefill: [1e-2], decode: [1e-3] } }, 'model.layers.0.self_attn': { enable: false } } });
    assert.match(sparseAttentionSummary(model), /^Sparse attention: 2\/3 modules enabled\n {2}flash_skip_softmax: 2 layers, threshold=\{"prefill":0\.01,"decode":0\.001\}$/);
    assert.deepEqual(disableSparseAttention(model, '*layers.[12]*'), ['model.layers.1.self_attn', 'model.layers.2.self_attn']);
    assert.equal(sparseAttentionSummary(model), 'Sparse attention: 0/3 modules enabled');
    assert.deepEqual(enableSparseAttention(model, (name) => name.endsWith('self_attn')), ['model.layers.0.self_attn', 'model.layers.1.self_attn', 'model.layers.2.self_attn']);
    assert.deepEqual(model.attention.map((m) => m.method.getThresholdInfo().value), [{ prefill: 1e-3, decode: 1e-4 }, { prefill: 1e-2, decode: 1e-3 }, { prefill: 1e-2, decode: 1e-3 }]);
  });
});
