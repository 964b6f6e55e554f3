import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../../core/errors.js';
import { type AccuracyOptions, type AccuracyReport, formatAccuracyTable, newReport, runAccuracyEval } from '../../model/accuracy.js';
import { LlamaModel } from '../../model/llama.js';
import { loadCorpus } from '../../model/needle.js';
import type { Command } from '../command.js';
import { intOption } from '../options.js';
import { ProgressBar } from '../progress.js';
import { planPicture } from '../../viz/mask-figure.js';
import { encodePng } from '../../viz/png.js';
import { renderMaskImage } from '../../viz/render.js';

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

export const evalCommand: Command = {
  name: 'eval',
  summary: 'accuracy of each sparse method inside a real model (loss change, answer agreement, needle accuracy)',
  usage: `sparse-attn eval [options]

Runs a Llama checkpoint (default: the bytes-llama-dev fixture) on needle prompts built from a
corpus of Python source, with dense attention and with every registered method at its defaults
and at settings found to give about 50% and 80% block sparsity, and prints a table (and JSON):
loss change vs dense, agreement of the greedy answer with dense, log-prob change of the dense
answer, needle accuracy, measured prefill sparsity. Slow on a CPU: ~1-4 min per 4K-token run.
  --model DIR          HF Llama checkpoint folder (default test/fixtures/bytes-llama-dev)
  --corpus DIR         folder of .py files for the haystack (default test/fixtures/python-corpus)
  --lengths L1,L2      prompt lengths in tokens (default 4096,8192)
  --prompts N          prompts per length (default 4)
  --methods a,b        methods to evaluate (default: every registered one)
  --targets 0.5,0.8    block sparsities to search settings for (default 0.5,0.8)
  --dense-layers N     keep the first N layers dense (default 0)
  --needles N          key lines per prompt (default 1; 0 = 1-4 at random, as in training)
  --prefill-chunk N    prefill in chunks of N tokens (default: whole prompt)
  --seed N             prompt seed (default 1)
  --out FILE           write the JSON report there
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
        targets: { type: 'string', default: '0.5,0.8' },
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
    const opts: AccuracyOptions = {
      lengths: list('lengths', values.lengths, (s) => positiveInt('lengths', s)),
      prompts: positiveInt('prompts', values.prompts),
      methods: values.methods?.split(',').map((s) => s.trim()),
      targets,
      denseLayers: Number(values['dense-layers']),
      needles: needles === 0 ? undefined : positiveInt('needles', values.needles),
      prefillChunk: values['prefill-chunk'] ? positiveInt('prefill-chunk', values['prefill-chunk']) : undefined,
      seed: Number(values.seed),
      onProgress: (d, t, label) => bar.update(d, t, label),
      // A long run keeps what it has measured: the file is rewritten (partial: true) after each row.
      onRow: (rows) => save({ ...newReport(opts, [...rows]), partial: true }),
      onPlan: values['save-masks'] ? maskWriter(values['save-masks']) : undefined,
    };
    const report = await runAccuracyEval(model, corpus, opts);
    bar.finish();
    report.model = values.model;
    save(report);
    console.log(values.json ? JSON.stringify(report, null, 2) : `${formatAccuracyTable(report)}\n\n${report.date}, ${report.machine}`);
    return 0;
  },
};
