import { availableParallelism } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseBackendChoice } from '../../backends/backend.js';
import { cpuDeviceInfo } from '../../bench/device-info.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { type SparseAttentionConfigJson, sparseAttentionConfig } from '../../config/sparse-config.js';
import { type AccuracyOptions, type AccuracyReport, formatAccuracyTable, formatParetoTable, newReport, runAccuracyEval } from '../../model/accuracy.js';
import { paretoSvg } from '../../model/eval-report.js';
import { checkFamilies, type Variant, withDenseLayers } from '../../model/eval-variants.js';
import { cpuScoring, gpuScoring, type ScoringModel } from '../../model/prompt-score.js';
import { type CallPlanner, capturedPlanOptions } from '../../model/sparsity-search.js';
import { LlamaModel } from '../../model/llama.js';
import { loadCorpus } from '../../model/needle.js';
import type { Command } from '../command.js';
import { intOption, jsonObjectOption } from '../options.js';
import { ProgressBar } from '../progress.js';
import { planPicture } from '../../viz/mask-figure.js';
import { encodePng } from '../../viz/png.js';
import { renderMaskImage } from '../../viz/render.js';
import { workerGridMeasurer } from '../../calibration/per-head-pool.js';
import { createSparseMethod, sparseMethods } from '../../methods/index.js';

// In a clone of the repository the fixtures sit beside dist/; an installed package has none.
const REPO_FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/', import.meta.url));

function list(name: string, text: string, parse: (s: string) => number): number[] {
  const out = text.split(',').map((s) => parse(s.trim()));
  if (out.some((x) => !Number.isFinite(x))) throw new InvalidArgumentError(`--${name}`, text, 'a comma-separated list of numbers');
  return out;
}

const positiveInt = (name: string, text: string) => intOption(name, text);

/** Writes one PNG per (run, layer) into dir. */
function maskWriter(dir: string): NonNullable<AccuracyOptions['onPlan']> {
  mkdirSync(dir, { recursive: true });
  return (run, module, plan) => {
    const setting = run.label.replace('~', '').replace('%', 'pct');
    const file = join(dir, `L${run.length}-${run.method}-${setting}-layer${module.layer}.png`);
    writeFileSync(file, encodePng(renderMaskImage(planPicture(plan, `${module.name} ${run.method} ${run.label} L=${run.length}`))));
  };
}

/** A whole config file as a variant row: its label is the file name, its method the first entry's. */
function configVariant(file: string, denseLayers: number): Variant {
  if (!existsSync(file)) throw new InvalidArgumentError('--configs', file, 'an existing sparse-attention config file (JSON)');
  const json = JSON.parse(readFileSync(file, 'utf8')) as SparseAttentionConfigJson;
  sparseAttentionConfig(json); // invalid configs fail before any work
  const entry = Object.values(json.sparse_cfg ?? {}).find((e) => typeof e === 'object' && e !== null && 'method' in e) as { method?: string } | undefined;
  return { method: entry?.method ?? 'config', label: basename(file).replace(/\.json$/, ''), family: 'config', settings: {}, config: withDenseLayers(json, denseLayers) };
}

/**
 * --method-settings: per registered method, settings its variants share. Checked before any work:
 * the method must exist, the settings must make one, and the searched knob is not among them.
 */
export function parseMethodSettings(text: string | undefined): Record<string, Record<string, unknown>> | undefined {
  if (text === undefined) return undefined;
  const json = jsonObjectOption('method-settings', text, 'JSON: { "<method>": { <settings> } }', 'a JSON object: { "<method>": { <settings> } }');
  const out: Record<string, Record<string, unknown>> = {};
  for (const [method, settings] of Object.entries(json)) {
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) throw new InvalidArgumentError(`--method-settings.${method}`, settings, 'an object of settings');
    const knob = sparseMethods.descriptor(method).knob?.setting;
    if (knob !== undefined && knob in settings) throw new InvalidArgumentError(`--method-settings.${method}.${knob}`, (settings as Record<string, unknown>)[knob], `left out: the evaluation searches ${knob}`);
    createSparseMethod(method, settings as Record<string, unknown>); // invalid settings fail before any work
    out[method] = settings as Record<string, unknown>;
  }
  return out;
}

export const evalCommand: Command = {
  name: 'eval',
  summary: 'accuracy of each sparse method inside a real model (loss change, answer agreement, needle accuracy)',
  usage: `sparse-attn eval [options]

Runs a Llama checkpoint (default: the bytes-llama-dev fixture) on needle prompts built from a
corpus of Python source, with dense attention and with every registered method at its defaults
and at settings found to give about 50%, 80% and 90% block sparsity, and prints a table (and JSON):
loss change vs dense (nats/byte and % of dense), agreement of the greedy answer with dense,
log-prob change of the dense answer, needle accuracy, measured prefill sparsity, 95% confidence
intervals over prompts; then the sparsity/Δloss Pareto front per method. Slow on a CPU (~1-4 min
per 4K-token run); --backend webgpu runs the forward passes on the GPU.
  --model DIR          HF Llama checkpoint folder (default test/fixtures/bytes-llama-dev)
  --corpus DIR         folder of .py files for the haystack (default test/fixtures/python-corpus)
  --lengths L1,L2      prompt lengths in tokens (default 4096,8192)
  --prompts N          prompts per length (default 4; 16 or more for useful intervals)
  --backend B          cpu | webgpu (default cpu): where the forward passes run
  --dtype T            webgpu: f16 | f32 (default f16 where the adapter has shader-f16)
  --methods a,b        methods to evaluate (default: every registered one)
  --targets 0.5,0.8,0.9  block sparsities to search settings for (default 0.5,0.8,0.9)
  --variants a,b       uniform | per-head | per-head-out | sla-proj (default uniform): per method, one
                       setting for all heads per target, one per head (per-head-out: each head's error
                       weighted by its share of the residual stream), SLA with a fitted projection
  --calibration-queries N  per-head calibration and projection fit on N query rows of the capture, in 4
                       windows spread over the prompt (default 1024; 0 = all)
  --workers N          threads measuring heads for per-head calibration (default: the CPUs Node sees)
  --configs F1,F2      whole sparse-attention configs (JSON) evaluated as extra rows at every length
  --method-settings J  JSON, per method the settings every variant of it shares, the searched knob on top
                       (e.g. '{"sla":{"BLKQ":16}}': SLA's uniform and per-head rows with 16-row query blocks)
  --dense-layers N     keep the first N layers dense (default 0)
  --needles N          key lines per prompt (default 1; 0 = 1-4 at random, as in training)
  --prefill-chunk N    prefill in chunks of N tokens (default: whole prompt)
  --seed N             prompt seed (default 1)
  --out FILE           write the JSON report there (rewritten after each row, "partial": true until done)
  --plot FILE          draw the sparsity/Δloss points and Pareto fronts as SVG
  --save-masks DIR     draw each sparsified layer's block mask (first prompt, first prefill call) of
                       every method and setting as DIR/L<length>-<method>-<setting>-layer<N>.png
  --json               print the JSON report instead of the table`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: 'string', default: `${REPO_FIXTURES}bytes-llama-dev` },
        corpus: { type: 'string', default: `${REPO_FIXTURES}python-corpus` },
        lengths: { type: 'string', default: '4096,8192' },
        prompts: { type: 'string', default: '4' },
        methods: { type: 'string' },
        targets: { type: 'string', default: '0.5,0.8,0.9' },
        backend: { type: 'string', default: 'cpu' },
        dtype: { type: 'string' },
        variants: { type: 'string', default: 'uniform' },
        configs: { type: 'string' },
        'method-settings': { type: 'string' },
        'calibration-queries': { type: 'string', default: '1024' },
        workers: { type: 'string', default: String(availableParallelism()) },
        plot: { type: 'string' },
        'dense-layers': { type: 'string', default: '0' },
        needles: { type: 'string', default: '1' },
        'prefill-chunk': { type: 'string' },
        seed: { type: 'string', default: '1' },
        out: { type: 'string' },
        'save-masks': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    for (const [name, dir] of [['model', values.model], ['corpus', values.corpus]] as const) {
      if (!existsSync(dir)) throw new InvalidArgumentError(`--${name}`, dir, 'an existing folder');
    }
    const backend = parseBackendChoice('--backend', values.backend);
    if (backend !== 'cpu' && backend !== 'webgpu') throw new InvalidArgumentError('--backend', values.backend, '"cpu" or "webgpu"');
    if (values.dtype !== undefined && values.dtype !== 'f16' && values.dtype !== 'f32') throw new InvalidArgumentError('--dtype', values.dtype, '"f16" or "f32"');
    const families = checkFamilies(values.variants.split(',').map((s) => s.trim()));
    const denseLayers = Number(values['dense-layers']);
    const extraVariants = values.configs?.split(',').map((f) => configVariant(f.trim(), denseLayers));
    const methodSettings = parseMethodSettings(values['method-settings']);
    const model = LlamaModel.load(values.model);
    const corpus = loadCorpus(values.corpus);
    const needles = Number(values.needles);
    const targets = list('targets', values.targets, Number);
    if (targets.some((t) => !(t > 0 && t < 1))) throw new InvalidArgumentError('--targets', values.targets, 'sparsities in (0, 1)');
    const bar = new ProgressBar();
    const save = (report: AccuracyReport) => {
      if (!values.out) return;
      mkdirSync(dirname(values.out), { recursive: true });
      writeFileSync(values.out, `${JSON.stringify({ ...report, model: values.model }, null, 2)}\n`);
    };
    let scoring: ScoringModel = cpuScoring(model);
    let device: AccuracyOptions['device'] = cpuDeviceInfo();
    let release = async () => {};
    let searchPlanner: CallPlanner | undefined;
    if (backend === 'webgpu') {
      const { createWebGpuBackend, defaultWebGpuContext, releaseDefaultWebGpuContext } = await import('../../backends/webgpu/index.js');
      const { sparseAttention } = await import('../../attention.js');
      const { GpuLlamaModel } = await import('../../model/gpu-llama.js');
      const { webgpuDeviceInfo } = await import('../../bench/device-info.js');
      const ctx = await defaultWebGpuContext();
      const gpu = new GpuLlamaModel(model, ctx, { dtype: values.dtype as 'f16' | 'f32' | undefined });
      scoring = gpuScoring(gpu);
      // The knob searches plan on the GPU too (the backend's method hooks): at 8K the CPU's planning would dominate.
      const gpuBackend = createWebGpuBackend();
      searchPlanner = async (method, c) => (await sparseAttention(c.q, c.k, c.v ?? c.k, { method, backend: gpuBackend, ...capturedPlanOptions(c) })).plan.stats;
      device = { ...webgpuDeviceInfo(ctx.report), dtype: gpu.dtype };
      release = async () => {
        scoring.release();
        gpu.destroy();
        await releaseDefaultWebGpuContext();
      };
    }
    const opts: AccuracyOptions = {
      lengths: list('lengths', values.lengths, (s) => positiveInt('lengths', s)),
      prompts: positiveInt('prompts', values.prompts),
      methods: values.methods?.split(',').map((s) => s.trim()),
      targets,
      families,
      calibrationQueries: intOption('calibration-queries', values['calibration-queries'], 0),
      ...(methodSettings ? { methodSettings } : {}),
      measureGrid: workerGridMeasurer(intOption('workers', values.workers, 1)),
      extraVariants,
      scoring,
      searchPlanner,
      device,
      denseLayers,
      needles: needles === 0 ? undefined : positiveInt('needles', values.needles),
      prefillChunk: values['prefill-chunk'] ? positiveInt('prefill-chunk', values['prefill-chunk']) : undefined,
      seed: Number(values.seed),
      onProgress: (d, t, label) => bar.update(d, t, label),
      // A long run keeps what it has measured: the file is rewritten (partial: true) after each row.
      onRow: (rows) => save({ ...newReport(opts, [...rows]), partial: true }),
      onPlan: values['save-masks'] ? maskWriter(values['save-masks']) : undefined,
    };
    let report: AccuracyReport;
    try {
      report = await runAccuracyEval(model, corpus, opts);
    } finally {
      await release();
    }
    bar.finish();
    report.model = values.model;
    save(report);
    if (values.plot) {
      mkdirSync(dirname(values.plot), { recursive: true });
      writeFileSync(values.plot, paretoSvg(report));
    }
    const text = `${formatAccuracyTable(report)}\n\nPareto front (sparsity up, Δloss down) per length and method:\n${formatParetoTable(report)}\n\n` +
      (report.skipped?.length ? `skipped:\n${report.skipped.map((k) => `  L=${k.length} ${k.method} ${k.label}: ${k.reason}`).join('\n')}\n\n` : '') +
      `${report.date}, ${report.device.name} (${report.device.backend}), ${report.machine}\nintervals: ${report.ciMethod}`;
    console.log(values.json ? JSON.stringify(report, null, 2) : text);
    return 0;
  },
};
