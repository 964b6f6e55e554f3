import { parseArgs } from 'node:util';
import { formatTable } from '../../core/stats.js';
import { sparseMethods } from '../../methods/index.js';
import type { Command } from '../command.js';

export const methodsCommand: Command = {
  name: 'methods',
  summary: 'list registered sparse-attention methods and their versions',
  usage: `sparse-attn methods [--json]

Lists every registered method, its versions (oldest first), the version used when none is named, the
setting calibration turns (its knob) and the engine's sparse prefill mode it serves, if any.
  --json   print JSON: [{ name, versions, latest, description, knob, engineMode }]`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false } }, strict: true });
    const list = sparseMethods.list().map((m) => {
      const d = sparseMethods.descriptor(m.name);
      return { ...m, knob: d.knob?.setting ?? null, engineMode: d.engine?.mode ?? null };
    });
    if (values.json) {
      console.log(JSON.stringify(list, null, 2));
    } else {
      console.log(formatTable(
        ['method', 'versions', 'latest', 'knob', 'engine', 'description'],
        list.map((m) => [m.name, m.versions.join(','), m.latest, m.knob ?? '-', m.engineMode ?? '-', m.description]),
      ));
    }
    return 0;
  },
};
