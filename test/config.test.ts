import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import {
  ATTRIBUTE_DEFAULTS,
  CALIBRATION_DEFAULTS,
  ConfigValidationError,
  createModuleMethod,
  FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT,
  flashSkipSoftmaxConfig,
  globMatches,
  loadSparseAttentionConfig,
  resolveModuleConfig,
  SPARSE_ATTENTION_CONFIG_DEFAULT,
  saveSparseAttentionConfig,
  sparseAttentionConfig,
  type SparseAttentionAttributeInput,
  type SparseCfgPattern,
  thresholdForPhase,
} from '../src/config/index.js';
import { DenseMethod } from '../src/methods/dense/dense.js';
import { MethodRegistry } from '../src/methods/registry.js';
import { TRI_SHAPE_DEFAULTS } from '../src/methods/tri-shape/tri-shape.js';
import { XATTENTION_DEFAULTS, XAttentionMethod } from '../src/methods/xattention/xattention.js';

// Seed 002, verbatim: ModelOpt's default JSON for FlashSkipSoftmaxConfig, SparseAttentionConfig and
// SparseAttentionAttributeConfig.
const SEED_FLASH_SKIP_SOFTMAX = `{
   "sparse_cfg": {
      "*attention*": {
         "backend": "pytorch",
         "bc": 128,
         "br": 128,
         "enable": true,
         "method": "flash_skip_softmax",
         "threshold": {
            "decode": 0.0001,
            "prefill": 0.001
         }
      },
      "default": {
         "enable": false
      }
   },
   "export_format": null
}`;
const SEED_SPARSE_ATTENTION = `{
   "sparse_cfg": {
      "*attention*": {
         "enable": true,
         "method": "flash_skip_softmax"
      },
      "default": {
         "enable": false
      }
   },
   "export_format": null
}`;
const SEED_ATTRIBUTE_DEFAULTS = { method: 'flash_skip_softmax', enable: true, threshold: 0.001, br: 128, bc: 128, backend: 'pytorch', is_causal: true, calibration: null };

/** Records the settings it was built with, so tests can see what a method receives. */
class RecordingMethod extends (DenseMethod as new (settings?: Record<string, unknown>) => DenseMethod) {
  static readonly description = 'test double';
  constructor(readonly settings: Record<string, unknown> = {}) {
    // It records any settings; the dense base rejects settings it does not know, so it gets none.
    super();
  }
}
const registry = new MethodRegistry([
  { name: 'flash_skip_softmax', version: 'v1', cls: RecordingMethod },
  { name: 'xattention', version: 'v1', cls: RecordingMethod },
  { name: 'dense', version: 'v1', cls: DenseMethod },
]);

/** The messages a bad config is rejected with. */
function rejection(input: unknown): string[] {
  try {
    loadSparseAttentionConfig(input as never);
  } catch (err) {
    assert.ok(err instanceof ConfigValidationError, `expected ConfigValidationError, got ${err}`);
    return err.issues.map((i) => i.message);
  }
  assert.fail(`accepted ${JSON.stringify(input)}`);
}

const entry = (attrs: Record<string, unknown>) => ({ sparse_cfg: { '*attention*': attrs } });

describe('config JSON', () => {
  it('round-trips both seed default JSONs exactly, key order included', () => {
    for (const text of [SEED_FLASH_SKIP_SOFTMAX, SEED_SPARSE_ATTENTION]) {
      const saved = saveSparseAttentionConfig(loadSparseAttentionConfig(text));
      assert.deepStrictEqual(saved, JSON.parse(text));
      assert.equal(JSON.stringify(saved, null, 3), text);
      assert.deepStrictEqual(saveSparseAttentionConfig(loadSparseAttentionConfig(saved)), saved);
    }
  });

  it('keeps any pattern text as a key, "__proto__" included', () => {
    const text = '{"sparse_cfg":{"__proto__":{"br":4},"default":{}},"export_format":null}';
    assert.equal(JSON.stringify(saveSparseAttentionConfig(loadSparseAttentionConfig(text))), text);
  });

  it('our defaults are the seed defaults, with backend "cpu" for ModelOpt\'s "pytorch"', () => {
    assert.deepStrictEqual(SPARSE_ATTENTION_CONFIG_DEFAULT, JSON.parse(SEED_SPARSE_ATTENTION));
    const seed = JSON.parse(SEED_FLASH_SKIP_SOFTMAX);
    seed.sparse_cfg['*attention*'].backend = 'cpu';
    assert.deepStrictEqual(FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT, seed);
    assert.deepStrictEqual(saveSparseAttentionConfig(flashSkipSoftmaxConfig()), seed);
    assert.deepStrictEqual(saveSparseAttentionConfig(sparseAttentionConfig()), JSON.parse(SEED_SPARSE_ATTENTION));
    assert.deepStrictEqual({ ...ATTRIBUTE_DEFAULTS }, { ...SEED_ATTRIBUTE_DEFAULTS, backend: 'cpu' });
  });

  it('fills left-out top-level fields from the chosen defaults', () => {
    assert.deepStrictEqual(saveSparseAttentionConfig(loadSparseAttentionConfig({ export_format: 'onnx' }, FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT)).sparse_cfg, FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT.sparse_cfg);
    assert.equal(loadSparseAttentionConfig('{"sparse_cfg": {}}').export_format, null);
    assert.equal(flashSkipSoftmaxConfig({ export_format: 'onnx' }).export_format, 'onnx');
  });

  it('keeps method-specific fields as written and is not changed by later edits of the input', () => {
    const input = { sparse_cfg: { '*attn*': { method: 'xattention', stride: 8, chunk: { size: 64 } } } };
    const cfg = loadSparseAttentionConfig(input);
    input.sparse_cfg['*attn*'].stride = 16;
    input.sparse_cfg['*attn*'].chunk.size = 1;
    assert.deepStrictEqual(saveSparseAttentionConfig(cfg).sparse_cfg['*attn*'], { method: 'xattention', stride: 8, chunk: { size: 64 } });
    assert.throws(() => { (cfg.sparse_cfg[0].config as Record<string, unknown>).stride = 1; }, TypeError);
  });

  it('refuses to save predicates, naming the entry', () => {
    const isAttn = (name: string) => name.endsWith('attn');
    const cfg = sparseAttentionConfig({ sparse_cfg: new Map<SparseCfgPattern, SparseAttentionAttributeInput>([[isAttn, { enable: true }], ['default', { enable: false }]]) });
    assert.throws(() => saveSparseAttentionConfig(cfg), /sparse_cfg\[predicate isAttn\] must be a glob pattern string to be saved as JSON \(a predicate function has no JSON form/);
  });

  it('refuses to save values JSON cannot hold', () => {
    const cfg = sparseAttentionConfig({ sparse_cfg: { '*': { method: 'dense', weights: new Float32Array(2) } } });
    assert.throws(() => saveSparseAttentionConfig(cfg), /sparse_cfg\["\*"\]\.weights must be a JSON value .*got Float32Array\(2\)/);
  });
});

describe('config validation: one clear message per bad field', () => {
  const cases: [string, unknown, string][] = [
    ['method not a string', entry({ method: 5 }), 'sparse_cfg["*attention*"].method must be a method name (a non-empty string), got 5'],
    ['method empty', entry({ method: '' }), 'sparse_cfg["*attention*"].method must be a method name (a non-empty string), got ""'],
    ['enable', entry({ enable: 'yes' }), 'sparse_cfg["*attention*"].enable must be true or false, got "yes"'],
    ['threshold above 1', entry({ threshold: 1.5 }), 'sparse_cfg["*attention*"].threshold must be a number in (0, 1] or an object {prefill, decode} of such numbers, got 1.5'],
    ['threshold 0', entry({ threshold: 0 }), 'sparse_cfg["*attention*"].threshold must be a number in (0, 1] or an object {prefill, decode} of such numbers, got 0'],
    ['threshold string', entry({ threshold: '1e-3' }), 'sparse_cfg["*attention*"].threshold must be a number in (0, 1] or an object {prefill, decode} of such numbers, got "1e-3"'],
    ['threshold.prefill', entry({ threshold: { prefill: 1.5, decode: 1e-4 } }), 'sparse_cfg["*attention*"].threshold.prefill must be a number in (0, 1], got 1.5'],
    ['threshold.decode missing', entry({ threshold: { prefill: 1e-3 } }), 'sparse_cfg["*attention*"].threshold.decode must be a number in (0, 1], got nothing (the field is missing)'],
    ['threshold unknown phase', entry({ threshold: { prefill: 1e-3, decode: 1e-4, verify: 0.1 } }), 'sparse_cfg["*attention*"].threshold.verify must be absent (allowed fields: prefill, decode), got 0.1'],
    ['br zero', entry({ br: 0 }), 'sparse_cfg["*attention*"].br must be an integer >= 1, got 0'],
    ['br fractional', entry({ br: 1.5 }), 'sparse_cfg["*attention*"].br must be an integer >= 1, got 1.5'],
    ['bc string', entry({ bc: '128' }), 'sparse_cfg["*attention*"].bc must be an integer >= 1, got "128"'],
    ['backend', entry({ backend: 'triton' }), 'sparse_cfg["*attention*"].backend must be one of "cpu", "webgpu" (or "pytorch", ModelOpt\'s name for the reference implementation, read as "cpu"), got "triton"'],
    ['is_causal', entry({ is_causal: 1 }), 'sparse_cfg["*attention*"].is_causal must be true or false, got 1'],
    ['calibration', entry({ calibration: 'auto' }), 'sparse_cfg["*attention*"].calibration must be null or an object {target_sparse_ratio, samples, max_seqlen, num_length_bins, chunk_size, num_decode_tokens, threshold_trials, fit_logspace, cache_dir, data_dir}, got "auto"'],
    ['calibration.target_sparse_ratio', entry({ calibration: { target_sparse_ratio: 0.5 } }), 'sparse_cfg["*attention*"].calibration.target_sparse_ratio must be an object {prefill, decode} of numbers in [0, 1], got 0.5'],
    ['calibration.target_sparse_ratio.prefill', entry({ calibration: { target_sparse_ratio: { prefill: 1.2 } } }), 'sparse_cfg["*attention*"].calibration.target_sparse_ratio.prefill must be a number in [0, 1], got 1.2'],
    ['calibration.samples', entry({ calibration: { samples: 0 } }), 'sparse_cfg["*attention*"].calibration.samples must be an integer >= 1, got 0'],
    ['calibration.max_seqlen', entry({ calibration: { max_seqlen: 2.5 } }), 'sparse_cfg["*attention*"].calibration.max_seqlen must be an integer >= 1, got 2.5'],
    ['calibration.threshold_trials empty', entry({ calibration: { threshold_trials: [] } }), 'sparse_cfg["*attention*"].calibration.threshold_trials must be null or a non-empty array of numbers in (0, 1), got []'],
    ['calibration.threshold_trials element', entry({ calibration: { threshold_trials: [0.5, 1] } }), 'sparse_cfg["*attention*"].calibration.threshold_trials[1] must be a number in (0, 1), got 1'],
    ['calibration unknown field', entry({ calibration: { sample: 4 } }), 'sparse_cfg["*attention*"].calibration.sample must be absent (allowed fields: target_sparse_ratio, samples, max_seqlen, num_length_bins, chunk_size, num_decode_tokens, threshold_trials, fit_logspace, cache_dir, data_dir), got 4'],
    ['entry not an object', { sparse_cfg: { 'model.*': 3 } }, 'sparse_cfg["model.*"] must be an object of attributes (method, enable, threshold or thresholds, br, bc, backend, is_causal, calibration, method settings), got 3'],
    ['empty pattern', { sparse_cfg: { '': {} } }, 'sparse_cfg[""] must be a key that is a non-empty glob pattern string or a predicate function, got ""'],
    ['sparse_cfg null', { sparse_cfg: null }, 'sparse_cfg must be an object mapping glob patterns to attribute objects (or a Map / entry list), got null'],
    ['sparse_cfg', { sparse_cfg: '*attention*' }, 'sparse_cfg must be an object mapping glob patterns to attribute objects (or a Map / entry list), got "*attention*"'],
    ['export_format', { export_format: 5 }, 'export_format must be a string or null, got 5'],
    ['unknown top-level field', { sparse_cfg: {}, calibration: {} }, 'calibration must be absent (allowed fields: sparse_cfg, export_format), got {}'],
    ['not an object', 42, 'config must be an object {sparse_cfg, export_format}, got 42'],
  ];
  for (const [name, input, message] of cases) {
    it(name, () => assert.deepStrictEqual(rejection(input), [message]));
  }

  it('reports every bad field at once, across entries', () => {
    const messages = rejection({ sparse_cfg: { '*a*': { br: 0, bc: 0, threshold: { prefill: 2, decode: 2 } }, '*b*': { enable: 1 } }, export_format: 1 });
    assert.deepStrictEqual(messages.map((m) => m.split(' must ')[0]), [
      'export_format', 'sparse_cfg["*a*"].threshold.prefill', 'sparse_cfg["*a*"].threshold.decode', 'sparse_cfg["*a*"].br', 'sparse_cfg["*a*"].bc', 'sparse_cfg["*b*"].enable',
    ]);
    assert.throws(() => loadSparseAttentionConfig({ sparse_cfg: { '*a*': { br: 0, bc: 0 } } }), /invalid sparse attention config \(2 problems\):\n {2}sparse_cfg\["\*a\*"\]\.br .*\n {2}sparse_cfg\["\*a\*"\]\.bc/);
  });

  it('rejects text that is not JSON, saying so', () => {
    assert.throws(() => loadSparseAttentionConfig('{"sparse_cfg": '), /config must be valid JSON \(.*\), got "\{\\"sparse_cfg\\": "/);
  });

  it('rejects duplicate patterns and bad keys in Map / entry-list form', () => {
    assert.throws(() => sparseAttentionConfig({ sparse_cfg: [['*a*', {}], { pattern: '*a*', config: { enable: false } }] }), /sparse_cfg\["\*a\*"\] must be given once/);
    assert.throws(() => sparseAttentionConfig({ sparse_cfg: new Map([[7 as never, {}]]) }), /sparse_cfg\[7\] must be a key that is a non-empty glob pattern string or a predicate function, got 7/);
    assert.throws(() => sparseAttentionConfig({ sparse_cfg: ['*a*' as never] }), /sparse_cfg\[0\] must be a \[pattern, attributes\] pair or a \{pattern, config\} entry, got "\*a\*"/);
    const pred = (n: string) => n === 'x';
    assert.throws(() => sparseAttentionConfig({ sparse_cfg: [[pred, { br: -1 }]] }), /sparse_cfg\[predicate pred\]\.br must be an integer >= 1, got -1/);
  });

  it('accepts ModelOpt\'s "pytorch" backend, keeps it as written and resolves it to "cpu"', () => {
    const cfg = loadSparseAttentionConfig(SEED_FLASH_SKIP_SOFTMAX);
    assert.equal(saveSparseAttentionConfig(cfg).sparse_cfg['*attention*'].backend, 'pytorch');
    assert.equal(resolveModuleConfig(cfg, 'model.layers.0.self_attention', { registry }).attributes?.backend, 'cpu');
    assert.equal(resolveModuleConfig(loadSparseAttentionConfig(entry({ backend: 'webgpu' })), 'attention', { registry }).attributes?.backend, 'webgpu');
  });
});

describe('config resolution', () => {
  it('resolves the seed FlashSkipSoftmaxConfig: attention modules on with phase thresholds, the rest off', () => {
    const cfg = loadSparseAttentionConfig(SEED_FLASH_SKIP_SOFTMAX);
    const on = resolveModuleConfig(cfg, 'model.layers.0.self_attention', { registry });
    assert.deepStrictEqual(on, {
      module: 'model.layers.0.self_attention',
      enable: true,
      matchedBy: '"*attention*"',
      attributes: {
        method: 'flash_skip_softmax', enable: true, threshold: { decode: 1e-4, prefill: 1e-3 }, thresholds: { prefill: [1e-3], decode: [1e-4] },
        br: 128, bc: 128, backend: 'cpu', is_causal: true, calibration: null,
      },
      settings: { bc: 128, br: 128, threshold: { decode: 1e-4, prefill: 1e-3 } },
    });
    assert.equal(thresholdForPhase(on.attributes!.threshold, 'decode'), 1e-4);
    assert.equal(thresholdForPhase(on.attributes!.threshold, 'prefill'), 1e-3);
    const off = resolveModuleConfig(cfg, 'model.layers.0.mlp', { registry });
    assert.equal(off.enable, false);
    assert.equal(off.matchedBy, '"default"');
    assert.deepStrictEqual(off.attributes, { ...ATTRIBUTE_DEFAULTS, thresholds: { prefill: [1e-3], decode: [1e-4] }, enable: false });
  });

  it('the last matching entry wins, and replaces earlier ones instead of merging with them', () => {
    const sparse_cfg = {
      '*self_attn': { method: 'xattention', threshold: 0.9, br: 64 },
      '*.layers.1.*': { method: 'dense' },
    };
    const cfg = loadSparseAttentionConfig({ sparse_cfg });
    const l1 = resolveModuleConfig(cfg, 'model.layers.1.self_attn', { registry });
    assert.equal(l1.matchedBy, '"*.layers.1.*"');
    assert.equal(l1.attributes!.method, 'dense');
    assert.equal(l1.attributes!.br, 128, 'br of the losing entry must not leak into the winner');
    assert.deepStrictEqual(l1.settings, {});
    const l2 = resolveModuleConfig(cfg, 'model.layers.2.self_attn', { registry });
    assert.equal(l2.attributes!.method, 'xattention');
    assert.deepStrictEqual(l2.settings, { threshold: 0.9, br: 64 });
    // The same entries in the other order: now the broader pattern comes last and wins.
    const reversed = loadSparseAttentionConfig({ sparse_cfg: { '*.layers.1.*': sparse_cfg['*.layers.1.*'], '*self_attn': sparse_cfg['*self_attn'] } });
    assert.equal(resolveModuleConfig(reversed, 'model.layers.1.self_attn', { registry }).attributes!.method, 'xattention');
  });

  it('"default" applies first wherever it is written, so any matching pattern beats it', () => {
    const cfg = loadSparseAttentionConfig({ sparse_cfg: { '*attn*': { enable: true, method: 'dense' }, default: { enable: false } } });
    const cfgDefaultFirst = loadSparseAttentionConfig({ sparse_cfg: { default: { enable: false }, '*attn*': { enable: true, method: 'dense' } } });
    for (const c of [cfg, cfgDefaultFirst]) {
      assert.equal(resolveModuleConfig(c, 'm.attn', { registry }).matchedBy, '"*attn*"');
      assert.equal(resolveModuleConfig(c, 'm.mlp', { registry }).matchedBy, '"default"');
    }
  });

  it('a module no entry matches is disabled, with no attributes', () => {
    const cfg = loadSparseAttentionConfig({ sparse_cfg: { '*.layers.0.*': { method: 'dense' } } });
    assert.deepStrictEqual(resolveModuleConfig(cfg, 'model.layers.1.attn', { registry }), { module: 'model.layers.1.attn', enable: false, matchedBy: null, attributes: null, settings: {} });
    assert.equal(createModuleMethod(resolveModuleConfig(cfg, 'model.layers.1.attn', { registry })), null);
  });

  it('predicates decide like patterns and take part in the same order', () => {
    const oddLayer = (name: string) => /\.layers\.\d*[13579]\./.test(name);
    const cfg = sparseAttentionConfig({ sparse_cfg: new Map<SparseCfgPattern, SparseAttentionAttributeInput>([
      ['*attn', { method: 'xattention' }],
      [oddLayer, { method: 'dense', enable: true }],
      ['default', { enable: false }],
    ]) });
    assert.equal(resolveModuleConfig(cfg, 'model.layers.3.attn', { registry }).matchedBy, 'predicate oddLayer');
    assert.equal(resolveModuleConfig(cfg, 'model.layers.3.attn', { registry }).attributes!.method, 'dense');
    assert.equal(resolveModuleConfig(cfg, 'model.layers.4.attn', { registry }).attributes!.method, 'xattention');
    assert.equal(resolveModuleConfig(cfg, 'model.layers.4.mlp', { registry }).enable, false);
    assert.equal(resolveModuleConfig(cfg, 'model.layers.3.mlp', { registry }).matchedBy, 'predicate oddLayer');
  });

  it('an enabled module must name a registered method; a disabled one need not', () => {
    const cfg = loadSparseAttentionConfig({ sparse_cfg: { '*attn': { method: 'flash_skipsoftmax' }, '*off': { method: 'nope', enable: false } } });
    assert.throws(() => resolveModuleConfig(cfg, 'm.attn', { registry }),
      /sparse_cfg\["\*attn"\]\.method must be a registered sparse method; registered: dense \(v1\), flash_skip_softmax \(v1\), xattention \(v1\), got "flash_skipsoftmax"/);
    assert.equal(resolveModuleConfig(cfg, 'm.off', { registry }).enable, false);
    const implicit = loadSparseAttentionConfig({ sparse_cfg: { default: {} } });
    assert.throws(() => resolveModuleConfig(implicit, 'm', { registry: new MethodRegistry() }),
      /sparse_cfg\["default"\]\.method \(left out, so the default\) must be a registered sparse method; registered: \(none\), got "flash_skip_softmax"/);
    assert.throws(() => resolveModuleConfig(cfg, ''), /moduleName must be a non-empty module name, got ""/);
  });

  it('passes method-specific fields and filled calibration to the method, not method/enable/backend/is_causal', () => {
    const cfg = loadSparseAttentionConfig(entry({ method: 'flash_skip_softmax', backend: 'webgpu', is_causal: false, threshold: 1e-2, collect_stats: true, calibration: { target_sparse_ratio: { decode: 0.3 }, samples: 4 } }));
    const r = resolveModuleConfig(cfg, 'x.attention', { registry });
    // ModelOpt replaces the target dict whole: prefill, left out, is not calibrated.
    const calibration = { ...CALIBRATION_DEFAULTS, target_sparse_ratio: { decode: 0.3 }, samples: 4 };
    assert.deepStrictEqual(r.settings, { threshold: 1e-2, collect_stats: true, calibration });
    assert.deepStrictEqual(r.attributes!.calibration, calibration);
    assert.equal(r.attributes!.is_causal, false);
    const method = createModuleMethod(r, { registry });
    assert.ok(method instanceof RecordingMethod);
    assert.deepStrictEqual(method.settings, r.settings);
    // DynamicThresholdCalibrator's default list (ModelOpt calibration/calibrator.py, a2fbac7b).
    assert.deepStrictEqual(CALIBRATION_DEFAULTS.threshold_trials, [1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1, 2e-1, 3e-1, 5e-1, 7e-1, 8e-1, 9e-1, 9.5e-1, 9.9e-1]);
  });
});

describe('config → built-in methods', () => {
  it('builds the registered methods with the entry\'s settings, and their own errors surface', () => {
    const cfg = loadSparseAttentionConfig({ sparse_cfg: {
      '*.layers.0.*': { method: 'tri_shape', sinkTokens: 4, localWindow: 32, is_causal: true },
      '*.layers.1.*': { method: 'xattention', threshold: 0.9, stride: 16, backend: 'cpu' },
      '*.layers.2.*': { method: 'xattention', br: 64 },
      default: { enable: false },
    } });
    const tri = createModuleMethod(resolveModuleConfig(cfg, 'model.layers.0.attn'));
    assert.equal(tri?.name, 'tri_shape');
    assert.deepEqual({ ...(tri as unknown as { settings: object }).settings }, { ...TRI_SHAPE_DEFAULTS, sinkTokens: 4, localWindow: 32 });
    const xa = createModuleMethod(resolveModuleConfig(cfg, 'model.layers.1.attn'));
    assert.ok(xa instanceof XAttentionMethod);
    assert.deepEqual({ ...xa.settings }, { ...XATTENTION_DEFAULTS, threshold: 0.9, stride: 16 });
    assert.throws(() => createModuleMethod(resolveModuleConfig(cfg, 'model.layers.2.attn')), /xattention setting must be one of .*, got "br"/);
    assert.equal(createModuleMethod(resolveModuleConfig(cfg, 'model.layers.3.attn')), null);
  });
});

describe('glob semantics (fnmatch over the whole module name)', () => {
  const cases: [string, string, boolean][] = [
    ['*attention*', 'model.layers.0.self_attention', true],
    ['*attention*', 'attention', true],
    ['*attention*', 'model.layers.0.mlp', false],
    ['attn', 'model.attn', false], // whole name, not a substring
    ['*.attn', 'model.attn', true],
    ['*', '.hidden.attn', true], // `*` crosses dots, leading ones too
    ['*.layers.?.attn', 'm.layers.3.attn', true],
    ['*.layers.?.attn', 'm.layers.13.attn', false],
    ['*.layers.[0-2].attn', 'm.layers.1.attn', true],
    ['*.layers.[0-2].attn', 'm.layers.5.attn', false],
    ['*.layers.[!0-2].attn', 'm.layers.5.attn', true],
    ['*.layers.[!0-2].attn', 'm.layers.1.attn', false],
    ['a(b)+{c,d}', 'a(b)+{c,d}', true], // regex and shell-brace characters are literal
    ['a(b)+{c,d}', 'abbc', false],
    ['!attn', '!attn', true], // no negation
    ['!attn', 'mlp', false],
    ['**', 'a.b.c', true],
    ['Attn', 'attn', false], // case-sensitive, like fnmatch on POSIX
  ];
  for (const [pattern, name, want] of cases) {
    it(`${JSON.stringify(pattern)} ${want ? 'matches' : 'does not match'} ${JSON.stringify(name)}`, () => assert.equal(globMatches(pattern, name), want));
  }
});

describe('sparse-attn config', () => {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'config', ...args], { encoding: 'utf8' });

  it('prints how modules resolve, and every bad field of a bad file with exit code 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sparse-config-'));
    try {
      const good = join(dir, 'good.json');
      writeFileSync(good, JSON.stringify({ sparse_cfg: { '*self_attn': { method: 'dense', br: 64 }, '*.layers.0.*': { enable: false }, default: { enable: false } } }));
      const ok = run(good, '--module', 'model.layers.0.self_attn', '--module', 'model.layers.1.self_attn', '--json');
      assert.equal(ok.status, 0, ok.stderr);
      const rows = JSON.parse(ok.stdout) as { module: string; enable: boolean; matchedBy: string; settings: object }[];
      assert.deepEqual(rows.map((r) => [r.module, r.enable, r.matchedBy]), [['model.layers.0.self_attn', false, '"*.layers.0.*"'], ['model.layers.1.self_attn', true, '"*self_attn"']]);
      assert.deepEqual(rows[1].settings, { br: 64 });
      const bad = join(dir, 'bad.json');
      writeFileSync(bad, JSON.stringify({ sparse_cfg: { '*': { br: 0, threshold: { prefill: 2, decode: 1e-4 } } } }));
      const err = run(bad);
      assert.equal(err.status, 2);
      assert.match(err.stderr, /invalid sparse attention config \(2 problems\):\n {2}sparse_cfg\["\*"\]\.threshold\.prefill must be a number in \(0, 1\], got 2\n {2}sparse_cfg\["\*"\]\.br must be an integer >= 1, got 0/);
      const defaults = run('--defaults', 'flash_skip_softmax');
      assert.deepEqual(JSON.parse(defaults.stdout), FLASH_SKIP_SOFTMAX_CONFIG_DEFAULT);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
