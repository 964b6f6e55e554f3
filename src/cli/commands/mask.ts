import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../../core/errors.js';
import { inputsOfKind, INPUT_KINDS, parseInputKind } from '../../core/input-kinds.js';
import { createSparseMethod, sparseMethods } from '../../methods/index.js';
import { encodePng } from '../../viz/png.js';
import { renderMaskImage, renderMaskSvg } from '../../viz/render.js';
import { pictureTitle, planPicture } from '../../viz/mask-figure.js';
import type { Command } from '../command.js';
import { intOption, jsonObjectOption } from '../options.js';
import { demoSettings } from './demo.js';

export const maskCommand: Command = {
  name: 'mask',
  summary: 'draw the block mask a method plans, one panel per head, as PNG or SVG',
  usage: `sparse-attn mask --method M --out FILE.png|FILE.svg [options]

Plans the method's block mask (on the CPU) for seeded inputs and draws it: one panel per head,
rows = query positions, columns = key positions. Kept blocks are dark blue; with a token rule
(tri-shape) the part of a kept block the rule hides is light blue; block scores (XAttention,
SLA) are drawn as a heat map, dropped blocks faded.
  --method M        a registered method (sparse-attn methods)
  --settings JSON   the method's settings (default: the settings the demo uses at this length)
  --length L        tokens (default 1024)
  --heads H         query heads (default 4)
  --kv-heads N      key/value heads (default: heads)
  --head-dim D      (default 64)
  --input KIND      ${INPUT_KINDS.join(' | ')} (default structured)
  --non-causal      bidirectional attention; default causal
  --seed N          (default 1)
  --panel N         panel width in pixels (default 256)
  --out FILE        .png or .svg`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        method: { type: 'string' },
        settings: { type: 'string' },
        length: { type: 'string', default: '1024' },
        heads: { type: 'string', default: '4' },
        'kv-heads': { type: 'string' },
        'head-dim': { type: 'string', default: '64' },
        input: { type: 'string', default: 'structured' },
        'non-causal': { type: 'boolean', default: false },
        seed: { type: 'string', default: '1' },
        panel: { type: 'string', default: '256' },
        out: { type: 'string' },
      },
    });
    if (!values.method) throw new InvalidArgumentError('--method', values.method, `one of ${sparseMethods.list().map((m) => m.name).join(', ')}`);
    const format = pictureFormat(values.out);
    const length = positiveInt('length', values.length);
    const heads = positiveInt('heads', values.heads);
    const settings = values.settings === undefined ? demoSettings(values.method, length) : parseSettings(values.settings);
    const method = createSparseMethod(values.method, settings);
    const { q, k } = inputsOfKind(parseInputKind('--input', values.input), {
      length, heads, kvHeads: positiveInt('kv-heads', values['kv-heads'] ?? String(heads)),
      headDim: positiveInt('head-dim', values['head-dim']), seed: positiveInt('seed', values.seed),
    });
    const plan = method.planBlockMask(q, k, { causal: !values['non-causal'] });
    // The title shows the settings in force, defaults included, where the method exposes them.
    const effective = (method as { settings?: Record<string, unknown> }).settings ?? settings;
    const input = planPicture(plan, pictureTitle(values.method, effective));
    const panelSize = positiveInt('panel', values.panel);
    writeFileSync(values.out!, format === 'svg' ? renderMaskSvg(input, { panelSize }) : encodePng(renderMaskImage(input, { panelSize })));
    console.log(`${values.out}: ${values.method}, L=${length}, ${heads} heads, density ${plan.mask.density.toFixed(3)}`);
    return 0;
  },
};

/** 'png' or 'svg' from a file name's extension. */
export function pictureFormat(out: string | undefined): 'png' | 'svg' {
  const ext = out?.toLowerCase().match(/\.(png|svg)$/)?.[1];
  if (!ext) throw new InvalidArgumentError('--out', out, 'a file name ending in .png or .svg');
  return ext as 'png' | 'svg';
}

const parseSettings = (text: string): Record<string, unknown> => jsonObjectOption('settings', text, 'a JSON object, e.g. {"threshold":0.9}', 'a JSON object');

const positiveInt = (name: string, text: string) => intOption(name, text);
