/**
 * Accuracy benchmark of sparse attention inside bytes-llama-dev: `sparse-attn eval` with its JSON
 * written to bench/results/accuracy-<date>.json unless --out is given. All options of
 * `sparse-attn eval --help` apply, e.g.
 *   node dist/bench/accuracy.js --lengths 4096 --prompts 3 --methods tri_shape,xattention
 */
import { evalCommand } from '../src/cli/commands/eval.js';

const argv = process.argv.slice(2);
if (!argv.includes('--out') && !argv.includes('--help')) {
  argv.push('--out', `bench/results/accuracy-${new Date().toISOString().slice(0, 16).replace(/:/g, '')}.json`);
}
process.exitCode = argv.includes('--help') ? (console.log(evalCommand.usage), 0) : await evalCommand.run(argv);
