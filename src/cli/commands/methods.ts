import { parseArgs } from 'node:util';
import { formatTable } from '../../core/stats.js';
import { sparseMethods } from '../../methods/index.js';
import type { Command } from '../command.js';

export const methodsCommand: Command = {
  name: 'methods',
  summary: 'list registered sparse-attention methods and their versions',
  usage: `sparse-attn methods [--json]

Lists every registered method, its versions (oldest first) and the version used when none is named.
  --json   print JSON: [{ name, versions, latest, description }]`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false } }, strict: true });
    const list = sparseMethods.list();
    if (values.json) {
      console.log(JSON.stringify(list, null, 2));
    } else {
      console.log(formatTable(['method', 'versions', 'latest', 'description'], list.map((m) => [m.name, m.versions.join(','), m.latest, m.description])));
    }
    return 0;
  },
};
