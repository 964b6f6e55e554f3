/**
 * `sparse-attn calibrate --method sla --fit-projection`: fits SLA's projection in closed form
 * (calibration/sla-projection-fit.ts) on a model's attention inputs over needle prompts, and writes
 * a sparse-attention config whose per-layer entries carry the weights (projFile JSONs beside it, or
 * inline), ready for `sparsify(model, config)` or `--config` of the model commands.
 */
import { writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { fitSlaProjection } from '../../calibration/sla-projection-fit.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { formatTable } from '../../core/stats.js';
import { LlamaModel } from '../../model/llama.js';
import { buildNeedlePrompt, loadCorpus } from '../../model/needle.js';
import { captureAttentionInputs, slaProjectionConfig } from '../../model/sla-projection-capture.js';
import { intOption, jsonObjectOption } from '../options.js';

export const FIT_PROJECTION_USAGE = `sparse-attn calibrate --method sla --fit-projection --model DIR --corpus DIR --out FILE [options]

Fits SLA's output projection (O = Os + Ol·Wᵀ + b) in closed form, per layer, so that the sparse part
plus the projected linear part best matches dense attention on the model's own attention inputs
(ridge regression; the reference trains it from zero by fine-tuning). Writes FILE, a sparse-attention
config with one entry per layer holding the method, the settings and the weights.
  --method M         sla or sage_sla
  --model DIR        Hugging Face Llama checkpoint folder
  --corpus DIR       folder of .py files for the needle prompts (e.g. test/fixtures/python-corpus)
  --prompts N        calibration prompts (default 2); folds of the ridge choice are prompts when N >= 2
  --length L         bytes per prompt (default 1024)
  --settings JSON    the SLA settings the projection is fitted for, e.g. '{"topkRatio":0.25}'
  --ridge A          α of λ = α·tr(OlᵀOl)/D, a number >= 0, or auto (default: cross-validated)
  --per-head         one W per query head instead of one per layer
  --inline           weights inside FILE instead of FILE's name + .<module>.proj.json beside it
  --seed N           prompt seed (default 1)
  --json             print the fit report as JSON`;

export async function runFitProjection(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      'fit-projection': { type: 'boolean' },
      method: { type: 'string' },
      model: { type: 'string' },
      corpus: { type: 'string' },
      prompts: { type: 'string', default: '2' },
      length: { type: 'string', default: '1024' },
      settings: { type: 'string', default: '{}' },
      ridge: { type: 'string', default: 'auto' },
      'per-head': { type: 'boolean', default: false },
      inline: { type: 'boolean', default: false },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const method = values.method ?? 'sla';
  if (method !== 'sla' && method !== 'sage_sla') throw new InvalidArgumentError('--method', method, 'sla or sage_sla with --fit-projection (the methods with a linear part)');
  for (const name of ['model', 'corpus', 'out'] as const) {
    if (!values[name]) throw new InvalidArgumentError(`--${name}`, values[name], name === 'out' ? 'the config file to write' : 'a folder');
  }
  const ridge = values.ridge === 'auto' ? 'auto' : Number(values.ridge);
  if (ridge !== 'auto' && !(Number.isFinite(ridge) && ridge >= 0)) throw new InvalidArgumentError('--ridge', values.ridge, 'a number >= 0 or auto');
  const settings = jsonObjectOption('settings', values.settings, 'a JSON object');
  const length = intOption('length', values.length, 64);
  const count = intOption('prompts', values.prompts);
  const progress = (m: string) => !values.json && process.stderr.write(`${m}\n`);

  const model = LlamaModel.load(values.model!);
  const corpus = loadCorpus(values.corpus!);
  const rng = new Rng(intOption('seed', values.seed, 0));
  const prompts = Array.from({ length: count }, () => buildNeedlePrompt(corpus, length, rng).tokens);
  progress(`capturing attention inputs of ${count} prompt(s) of ${length} bytes (dense pass)...`);
  const captured = await captureAttentionInputs(model, prompts);
  progress(`fitting ${method}'s projection on ${captured.length} attention calls...`);
  const { projections, report } = fitSlaProjection(captured, settings, { ridge, perHead: values['per-head'], method });
  const out = values.out!;
  const cfg = slaProjectionConfig(settings, projections, { method, ...(values.inline ? {} : { dir: dirname(out), prefix: basename(out).replace(/\.json$/, '') }) });
  writeFileSync(out, `${JSON.stringify(cfg, null, 2)}\n`);
  progress(`wrote ${out}`);
  if (values.json) {
    console.log(JSON.stringify({ method, settings, ridge, perHead: values['per-head'], prompts: { count, length, seed: Number(values.seed) }, report }, null, 2));
    return 0;
  }
  console.log(formatTable(
    ['module', 'rows', 'rel. error, proj 0', 'fitted', 'cross-validated', 'α'],
    report.map((r) => [r.module, String(r.rowsFit), r.residualBefore.toFixed(4), r.residualAfter.toFixed(4), r.heldOutAfter === null ? '-' : `${r.heldOutAfter.toFixed(4)} (${r.heldOutBy})`, String(r.ridge)]),
  ));
  return 0;
}
