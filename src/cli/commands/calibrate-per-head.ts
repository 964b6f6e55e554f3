/**
 * `sparse-attn calibrate --per-head`: one knob value per query head (calibration/per-head.ts) on
 * the command's seeded structured inputs, to an error budget or an overall sparsity target; prints
 * the value, sparsity and error of each head, and (--config FILE) writes the config with per_head.
 */
import { writeFileSync } from 'node:fs';
import { calibratePerHead, type CapturedHeads, type PerHeadCalibrationResult } from '../../calibration/per-head.js';
import { createModuleMethod, resolveModuleConfig } from '../../config/resolve.js';
import { sparseAttentionConfig } from '../../config/sparse-config.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { formatTable } from '../../core/stats.js';
import { structuredQKV } from '../../core/structured-inputs.js';

export interface PerHeadRunOptions {
  method: string;
  budget?: number;
  target?: number;
  lengths: number[];
  samples: number;
  shape: { heads: number; kvHeads: number; headDim: number };
  scale: number;
  settings: Record<string, unknown>;
  seed: number;
  /** The config key the heads' values go under (a module name or a glob over module names). */
  module: string;
  grid?: number;
}

/** The --per-head flags as options: exactly one of --error-budget and --target, the target one number. */
export function perHeadRequest(values: { 'error-budget'?: string; target?: string; grid?: string; export?: string; decode?: boolean }): { budget?: number; target?: number; grid?: number } {
  if (values.export) {
    throw new InvalidArgumentError('--export', values.export, 'absent with --per-head: ModelOpt\'s sparse_attention_config (what vLLM and TensorRT-LLM read) has one setting for every head; write the per-head config with --config FILE');
  }
  if (values.decode) throw new InvalidArgumentError('--decode', true, 'absent with --per-head (per-head calibration measures prefill calls)');
  const budget = values['error-budget'];
  if ((budget === undefined) === (values.target === undefined)) {
    throw new InvalidArgumentError('--error-budget / --target', { 'error-budget': budget, target: values.target }, 'exactly one of them with --per-head');
  }
  const out: { budget?: number; target?: number; grid?: number } = {};
  if (budget !== undefined) {
    const b = Number(budget);
    if (!(b > 0 && Number.isFinite(b))) throw new InvalidArgumentError('--error-budget', budget, 'a relative L2 error > 0 (e.g. 0.05)');
    out.budget = b;
  }
  if (values.target !== undefined) {
    const t = Number(values.target);
    if (values.target.includes('=') || !(t >= 0 && t < 1)) throw new InvalidArgumentError('--target', values.target, 'with --per-head, one sparsity in [0, 1) over all heads');
    out.target = t;
  }
  if (values.grid !== undefined) {
    const g = Number(values.grid);
    if (!Number.isInteger(g) || g < 2) throw new InvalidArgumentError('--grid', values.grid, 'an integer >= 2');
    out.grid = g;
  }
  return out;
}

export function runPerHeadCalibration(o: PerHeadRunOptions, progress: (m: string) => void = () => {}): PerHeadCalibrationResult {
  const captured: CapturedHeads[] = o.lengths.flatMap((length) => Array.from({ length: o.samples }, (_, s) => ({
    module: o.module, ...structuredQKV({ ...o.shape, length, seed: o.seed + s + 97 * length }),
  })));
  progress(`calibrating ${o.method} per head on ${captured.length} inputs (${o.shape.heads} heads)...`);
  return calibratePerHead(captured, o.method, {
    ...(o.budget !== undefined ? { budget: o.budget } : { target: o.target }),
    ...(o.grid !== undefined ? { grid: o.grid } : {}),
    baseSettings: o.settings, scale: o.scale, causal: true, progress,
  });
}

/** Prints (or writes) the result; returns the exit code. */
export function reportPerHead(r: PerHeadCalibrationResult, opts: { json: boolean; configPath?: string; budget?: number; target?: number }): number {
  if (opts.configPath) writeFileSync(opts.configPath, `${JSON.stringify(r.config, null, 2)}\n`);
  const cfg = sparseAttentionConfig(r.config);
  const first = r.heads[0].module;
  const info = createModuleMethod(resolveModuleConfig(cfg, first))!.getThresholdInfo();
  if (opts.json) {
    const { config, heads, method, version, setting, mode, sparsity, grid, lambda } = r;
    console.log(JSON.stringify({ method, version, setting, mode, budget: opts.budget, target: opts.target, sparsity, heads, config, threshold_info: info, ...(grid ? { grid, lambda } : {}) }, null, 2));
    return 0;
  }
  const goal = r.mode === 'budget' ? `error budget ${opts.budget}` : `target sparsity ${opts.target}`;
  console.log(`${r.method} ${r.version}: ${r.setting} per head for ${goal}; block sparsity over all heads ${r.sparsity.toFixed(3)}`);
  const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(4));
  console.log(formatTable(['module', 'head', r.setting, 'sparsity', 'error'], r.heads.map((h) => [h.module, String(h.head), fmt(h.value), h.sparsity.toFixed(3), h.error.toFixed(4)])));
  if (opts.configPath) process.stderr.write(`wrote the per-head config to ${opts.configPath}\n`);
  return 0;
}
