import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { attentionClassOf, PRODUCER, sparseAttentionHfBlock, withSparseAttentionBlock } from '../../config/hf-sparse-attention.js';
import { calibrate, type CalibrationResult, createCalibratedMethod } from '../../calibration/calibrate.js';
import { sparseMethods } from '../../methods/index.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { formatTable } from '../../core/stats.js';
import { structuredQKV } from '../../core/structured-inputs.js';
import type { Command } from '../command.js';
import { intOption } from '../options.js';
import { perHeadRequest, reportPerHead, runPerHeadCalibration } from './calibrate-per-head.js';
import { FIT_PROJECTION_USAGE, runFitProjection } from './calibrate-projection.js';

export interface CalibrateRow {
  length: number;
  phase: 'prefill' | 'decode';
  /** The knob's value at this length (flash-skip: the dynamic threshold). */
  value: number;
  calibrationSparsity: number;
  heldOutSparsity: number;
}

export const calibrateCommand: Command = {
  name: 'calibrate',
  summary: 'find the setting that gives a method a target sparsity on seeded structured inputs',
  usage: `sparse-attn calibrate --method M --target S [options]
       sparse-attn calibrate --method M --per-head (--error-budget E | --target S) [options]

Calibrates method M to block sparsity S on seeded structured inputs (sink + local band + retrieval
keys) of the given lengths, prints the chosen setting, and the sparsity it gives per length on the
calibration inputs and on held-out inputs (other seeds). flash_skip_softmax fits ModelOpt's
threshold = a·exp(b·S)/Lk; xattention, tri_shape and sla search their knob by bisection.
  --method M         registered method (flash_skip_softmax, xattention, tri_shape, sla)
  --target S         target sparsity in [0, 1), or prefill=S1,decode=S2
  --lengths L1,L2    token counts (default 1024,2048)
  --samples N        inputs per length, seeds seed..seed+N-1 (default 2); held out: seed+1000...
  --decode           also calibrate decode (one query row per input)
  --heads N          query heads (default 4)
  --kv-heads N       key/value heads (default = heads)
  --head-dim N       (default 32)
  --scale X          softmax scale (default 1: these inputs then have LLM-like logit ranges;
                     at 1/sqrt(head-dim) their logits span only a few units)
  --settings JSON    base settings of the method, e.g. '{"br":64,"bc":64}'
  --seed N           (default 1)
  --export FILE      write the result as the sparse_attention_config block of a Hugging Face
                     config.json, as ModelOpt's exporter does (flash_skip_softmax only: serving
                     engines read skip_softmax); an existing FILE keeps its other keys, and its
                     architectures name the attention class in "targets"
  --json             print the result as JSON

Per head (--per-head): one value of the method's knob per query head, chosen by each head's output
error against dense attention (relative L2 over its rows; SLA's linear part included):
  --error-budget E   per head, the sparsest value whose error stays <= E
  --target S         the values whose block sparsity over all heads is S with the least total error
                     (each head measured on a grid of values)
  --grid N           grid values per head for --target (default 12)
  --module NAME      config key for the heads' values (default "*self_attn": every Llama layer)
  --config FILE      write the config (an entry with per_head, "default" disabled) as JSON
  --lengths          default 512 with --per-head (every value measured is a full attention per head)
--export and --decode are refused with --per-head (ModelOpt's block has one setting for all heads).
${FIT_PROJECTION_USAGE}`,
  async run(argv) {
    if (argv.includes('--fit-projection')) return runFitProjection(argv);
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        method: { type: 'string' },
        target: { type: 'string' },
        lengths: { type: 'string' },
        samples: { type: 'string', default: '2' },
        decode: { type: 'boolean', default: false },
        heads: { type: 'string', default: '4' },
        'kv-heads': { type: 'string' },
        'head-dim': { type: 'string', default: '32' },
        scale: { type: 'string', default: '1' },
        settings: { type: 'string', default: '{}' },
        seed: { type: 'string', default: '1' },
        export: { type: 'string' },
        json: { type: 'boolean', default: false },
        'per-head': { type: 'boolean', default: false },
        'error-budget': { type: 'string' },
        grid: { type: 'string' },
        module: { type: 'string' },
        config: { type: 'string' },
      },
    });
    const perHead = values['per-head'] ? perHeadRequest(values) : null;
    if (!perHead) {
      for (const flag of ['error-budget', 'grid', 'module', 'config'] as const) {
        if (values[flag] !== undefined) throw new InvalidArgumentError(`--${flag}`, values[flag], 'absent without --per-head');
      }
    }
    if (!values.method) throw new InvalidArgumentError('--method', values.method, 'a registered method name');
    if (!values.target && !perHead) throw new InvalidArgumentError('--target', values.target, 'a sparsity in [0, 1) or prefill=S1,decode=S2');
    const int = (name: string, v: string) => intOption(name, v);
    const heads = int('heads', values.heads);
    const shape = { heads, kvHeads: values['kv-heads'] ? int('kv-heads', values['kv-heads']) : heads, headDim: int('head-dim', values['head-dim']) };
    const lengths = (values.lengths ?? (perHead ? '512' : '1024,2048')).split(',').map((s) => int('lengths', s.trim()));
    const scale = Number(values.scale);
    if (!(scale > 0)) throw new InvalidArgumentError('--scale', values.scale, 'a number > 0');
    let settings: Record<string, unknown>;
    try {
      settings = JSON.parse(values.settings);
    } catch {
      throw new InvalidArgumentError('--settings', values.settings, 'a JSON object');
    }
    if (perHead) {
      const o = { method: values.method, ...perHead, lengths, samples: int('samples', values.samples), shape, scale, settings, seed: int('seed', values.seed), module: values.module ?? '*self_attn' };
      const r = runPerHeadCalibration(o, (m) => !values.json && process.stderr.write(`${m}\n`));
      return reportPerHead(r, { json: values.json, configPath: values.config, budget: perHead.budget, target: perHead.target });
    }
    const opts = {
      method: values.method, target: parseTargetArg(values.target!), lengths, samples: int('samples', values.samples),
      decode: values.decode, shape, scale, settings, seed: int('seed', values.seed),
    };
    const { result, rows } = runCalibration(opts, (m) => !values.json && process.stderr.write(`${m}\n`));
    if (values.export) {
      exportCalibration(values.export, result, parseTargetArg(values.target!));
      if (!values.json) process.stderr.write(`wrote sparse_attention_config to ${values.export}\n`);
    }
    if (values.json) {
      console.log(JSON.stringify({ method: result.method, version: result.version, knob: result.knob, target: result.target, settings: result.settings, threshold_info: createCalibratedMethod(result).getThresholdInfo(), rows }, null, 2));
      return 0;
    }
    console.log(`${result.method} ${result.version}: ${describeSetting(result)}`);
    console.log(formatTable(
      ['length', 'phase', result.knob, 'calibration sparsity', 'held-out sparsity', 'target'],
      rows.map((r) => [String(r.length), r.phase, Number.isInteger(r.value) ? String(r.value) : r.value.toPrecision(4), r.calibrationSparsity.toFixed(3), r.heldOutSparsity.toFixed(3), result.target[r.phase].toFixed(3)]),
    ));
    return 0;
  },
};

/** Writes (or updates) a HF config.json with the calibration as ModelOpt's sparse_attention_config block. */
export function exportCalibration(path: string, result: CalibrationResult, target: number | { prefill?: number; decode?: number }): void {
  if (!result.fit) throw new InvalidArgumentError('--export', path, `absent for ${result.method}: only flash_skip_softmax calibration (skip_softmax with a threshold scale factor) is read by serving engines`);
  let hf: Record<string, unknown> = {};
  if (existsSync(path)) {
    try {
      hf = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new InvalidArgumentError('--export', path, `a JSON config.json to update (${(err as Error).message})`);
    }
  }
  const calibrationParams = Object.fromEntries(Object.entries(result.fit).map(([phase, f]) => [phase, { a: f.a, b: f.b }]));
  // ModelOpt records the target dict as the user wrote it.
  const targetSparsity = typeof target === 'number' ? { prefill: target, decode: target } : { ...target };
  const block = sparseAttentionHfBlock({ targets: attentionClassOf(hf), ignore: [], calibrationParams, targetSparsity, initialDisabledSteps: 0, sparseSoftmax: null, producer: PRODUCER });
  writeFileSync(path, JSON.stringify(withSparseAttentionBlock(hf, block), null, 4));
}

function parseTargetArg(s: string): number | { prefill?: number; decode?: number } {
  if (!s.includes('=')) return Number(s);
  const out: { prefill?: number; decode?: number } = {};
  for (const part of s.split(',')) {
    const [phase, v] = part.split('=');
    if (phase !== 'prefill' && phase !== 'decode') throw new InvalidArgumentError('--target phase', phase, '"prefill" or "decode"');
    out[phase] = Number(v);
  }
  return out;
}

function describeSetting(r: CalibrationResult): string {
  if (r.fit) {
    return Object.entries(r.fit).map(([phase, f]) => `${phase}: threshold = ${f.a.toPrecision(4)}·exp(${f.b.toPrecision(4)}·${r.target[phase as 'prefill']})/Lk (R² ${f.rSquared.toFixed(3)}, ${f.numPoints} points)`).join('; ');
  }
  return `${r.knob} = ${r.search?.value} (mean sparsity ${r.search?.measured.toFixed(3)} after ${r.search?.evaluations} masks)`;
}

export interface CalibrationRunOptions {
  method: string;
  target: number | { prefill?: number; decode?: number };
  lengths: number[];
  samples: number;
  decode: boolean;
  shape: { heads: number; kvHeads: number; headDim: number };
  scale: number;
  settings: Record<string, unknown>;
  seed: number;
}

/** Calibrates on seeds seed.., then measures the calibrated method on seeds seed+1000.. (shared with the benchmark). */
export function runCalibration(o: CalibrationRunOptions, progress: (m: string) => void = () => {}): { result: CalibrationResult; rows: CalibrateRow[] } {
  if (o.decode && (!sparseMethods.has(o.method) || sparseMethods.descriptor(o.method).knob?.fit !== 'exponential')) {
    throw new InvalidArgumentError('--decode', true, `absent for ${o.method} (only methods calibrated by a fit, flash_skip_softmax, calibrate the decode phase)`);
  }
  const phases: ('prefill' | 'decode')[] = o.decode ? ['prefill', 'decode'] : ['prefill'];
  const inputsFor = (seed0: number) => phases.flatMap((phase) => o.lengths.flatMap((length) => Array.from({ length: o.samples }, (_, s) => ({
    phase, length, ...structuredQKV({ ...o.shape, length, queryLength: phase === 'decode' ? 1 : length, seed: seed0 + s + 97 * length }),
  }))));
  const calInputs = inputsFor(o.seed);
  progress(`calibrating ${o.method} on ${calInputs.length} inputs...`);
  const result = calibrate({ method: o.method, inputs: calInputs, target: o.target, scale: o.scale, settings: o.settings, causal: true });
  const method = createCalibratedMethod(result);
  progress('measuring held-out inputs...');
  const heldOut = inputsFor(o.seed + 1000).map(({ q, k }) => method.planBlockMask(q, k, { causal: true, scale: o.scale }).stats.sparsity);
  const rows: CalibrateRow[] = [];
  for (const phase of phases) {
    for (const length of o.lengths) {
      const idx = calInputs.flatMap((x, i) => (x.phase === phase && x.length === length ? [i] : []));
      const samples = idx.map((i) => result.samples[i]);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      rows.push({
        length, phase, value: samples[0].value,
        calibrationSparsity: mean(samples.map((s) => s.sparsity)),
        heldOutSparsity: mean(idx.map((i) => heldOut[i])),
      });
    }
  }
  return { result, rows };
}
