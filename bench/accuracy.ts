/**
 * Accuracy benchmark of sparse attention inside bytes-llama-dev: `sparse-attn eval` (it runs the
 * model on the CPU reference) with its JSON written, unless --out is given, to
 * bench/results/<date>-cpu/accuracy-<lengths>-<methods>.json, e.g. accuracy-4k-trishape-xattention.json.
 * All options of `sparse-attn eval --help` apply, e.g.
 *   node dist/bench/accuracy.js --lengths 4096 --prompts 3 --methods tri_shape,xattention
 */
import { cpuDeviceInfo } from '../src/bench/device-info.js';
import { defaultResultPath } from '../src/bench/results.js';
import { evalCommand } from '../src/cli/commands/eval.js';

const argv = process.argv.slice(2);
const option = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
if (!argv.includes('--out') && !argv.includes('--help')) {
  // The eval's own defaults: lengths 4096,8192, every registered method.
  const lengths = (option('lengths') ?? '4096,8192').split(',').map((l) => (Number(l) % 1024 === 0 ? `${Number(l) / 1024}k` : l.trim())).join('-');
  const methods = option('methods')?.split(',').map((m) => m.trim().replace(/_/g, '')).join('-') ?? 'all';
  argv.push('--out', defaultResultPath(`accuracy-${lengths}-${methods}.json`, cpuDeviceInfo()));
}
process.exitCode = argv.includes('--help') ? (console.log(evalCommand.usage), 0) : await evalCommand.run(argv);
