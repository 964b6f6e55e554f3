import { parseArgs } from 'node:util';
import { sparseAttention } from '../../attention.js';
import type { AttentionBackend } from '../../backends/backend.js';
import { createBackend, parseBackendChoice } from '../../backends/index.js';
import { cpuBackend } from '../../backends/cpu/index.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { formatTable } from '../../core/stats.js';
import { inputsOfKind } from '../../core/input-kinds.js';
import type { HeadTensor } from '../../core/tensor.js';
import { sparseMethods } from '../../methods/index.js';
import type { Command } from '../command.js';
import { intOption } from '../options.js';
import { outputError } from '../../core/error-metrics.js';

export interface DemoRow {
  method: string;
  version: string;
  density: number | null;
  maxAbsError: number | null;
  relL2Error: number | null;
  ms: number | null;
  note: string;
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run every registered method on a seeded structured input and compare with dense',
  usage: `sparse-attn demo [options]

Builds seeded Q, K, V with the structure of real attention (sink, local band, retrieval keys),
runs every registered method at its default settings, and prints density (kept / valid blocks),
max abs error and relative L2 error of the output against dense attention, and time.
  --length N      tokens (default 2048)
  --heads N       query heads (default 4)
  --kv-heads N    key/value heads (default 2: GQA)
  --head-dim N    (default 64)
  --non-causal    bidirectional attention (video); default causal (LLM prefill)
  --seed N        (default 1)
  --backend B     cpu | webgpu | auto (default auto: WebGPU when an adapter exists, else CPU)
  --json          print the rows as JSON`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        length: { type: 'string', default: '2048' },
        heads: { type: 'string', default: '4' },
        'kv-heads': { type: 'string', default: '2' },
        'head-dim': { type: 'string', default: '64' },
        'non-causal': { type: 'boolean', default: false },
        seed: { type: 'string', default: '1' },
        backend: { type: 'string', default: 'auto' },
        json: { type: 'boolean', default: false },
      },
    });
    const int = (name: string, v: string) => intOption(name, v);
    const causal = !values['non-causal'];
    const choice = parseBackendChoice('--backend', values.backend);
    const { q, k, v } = inputsOfKind('structured', {
      length: int('length', values.length), heads: int('heads', values.heads), kvHeads: int('kv-heads', values['kv-heads']),
      headDim: int('head-dim', values['head-dim']), seed: int('seed', values.seed),
    });
    const backend = await createBackend(choice);
    if (!values.json) console.error(`demo: B=1 H=${q.heads} Hkv=${k.heads} L=${q.length} D=${q.headDim} ${causal ? 'causal' : 'non-causal'}, ${backend.name} backend`);
    let rows: DemoRow[];
    try {
      rows = await runDemo(q, k, v, causal, (m) => !values.json && process.stderr.write(`  ${m}...\n`), backend);
    } finally {
      backend.dispose?.();
    }
    if (values.json) {
      console.log(JSON.stringify(rows, null, 2));
    } else {
      const f = (x: number | null, digits: number, exp = false) => (x === null ? '-' : exp ? x.toExponential(digits) : x.toFixed(digits));
      console.log(formatTable(
        ['method', 'density', 'max abs err', 'rel L2 err', 'ms', 'note'],
        rows.map((r) => [`${r.method} ${r.version}`, f(r.density, 3), f(r.maxAbsError, 2, true), f(r.relL2Error, 2, true), f(r.ms, 0), r.note]),
      ));
    }
    return 0;
  },
};

/** The settings a method's descriptor asks the demo to run at (default: the method's defaults). */
export function demoSettings(method: string, length: number): Record<string, unknown> {
  return sparseMethods.descriptor(method).demoSettings?.(length) ?? {};
}

/** Every registered method (latest version) against dense attention on the same inputs. */
export async function runDemo(
  q: HeadTensor, k: HeadTensor, v: HeadTensor, causal: boolean, progress: (method: string) => void, backend: AttentionBackend = cpuBackend,
): Promise<DemoRow[]> {
  const t0 = performance.now();
  const dense = (await sparseAttention(q, k, v, { method: 'dense', causal, backend })).output.toFloat32Array();
  const denseMs = performance.now() - t0;
  const rows: DemoRow[] = [];
  for (const m of sparseMethods.list()) {
    progress(m.name);
    if (m.name === 'dense') {
      rows.push({ method: m.name, version: m.latest, density: 1, maxAbsError: 0, relL2Error: 0, ms: denseMs, note: 'reference' });
      continue;
    }
    try {
      const t = performance.now();
      const { output, plan } = await sparseAttention(q, k, v, { method: m.name, settings: demoSettings(m.name, k.length), causal, backend });
      const ms = performance.now() - t;
      const { maxAbsError, relL2Error } = outputError(output.toFloat32Array(), dense);
      rows.push({ method: m.name, version: m.latest, density: 1 - plan.stats.sparsity, maxAbsError, relL2Error, ms, note: '' });
    } catch (err) {
      rows.push({ method: m.name, version: m.latest, density: null, maxAbsError: null, relL2Error: null, ms: null, note: `not run: ${(err as Error).message}` });
    }
  }
  return rows;
}
