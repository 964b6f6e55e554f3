import { parseArgs } from 'node:util';
import { BENCH_INPUTS, caseName, denseFlops, type InputKind } from '../../bench/cases.js';
import { DEFAULT_TIMING, runBench, type TimingOptions } from '../../bench/harness.js';
import { type BenchReport, buildReport, formatPeerRows, formatRecords, loadPeerFiles, loadReportFiles, mergeReportRecords, shellWords } from '../../bench/report.js';
import { writeJsonFile } from '../../bench/results.js';
import { SWEEPS } from '../../bench/sweeps.js';
import { BENCH_TARGETS, benchTarget } from '../../bench/targets.js';
import { InvalidArgumentError } from '../../core/errors.js';
import type { Command } from '../command.js';
import { intOption } from '../options.js';

const list = (name: string, v: string | undefined) => (v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean));

function intList(name: string, v: string | undefined): number[] | undefined {
  return list(name, v)?.map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`--${name}`, s, 'a comma-separated list of positive integers');
    return n;
  });
}

const int = intOption;

export const benchCommand: Command = {
  name: 'bench',
  summary: 'validate then time attention kernels over a sweep; JSON with TFLOP/s, density, speedups, peers',
  usage: `sparse-attn bench [options]

Runs a sweep of cases (shape, dtype, method + settings, input kind). Each case is first validated
on a small twin (length 197, <= 4 heads, same GQA ratio) against dense attention with the block
mask expanded to tokens; only a case that passes is timed. Reports density (kept / valid blocks),
mask estimation ms, kernel ms, TFLOP/s (sparse FLOPs = dense x kept fraction of visible pairs;
dense causal = 4.B.H.L^2.D/2), GB/s (Q, K, V, O once) and the speedup over dense on the same shape.
  --sweep NAME        ${Object.keys(SWEEPS).join(' | ')} (default smoke)
  --lengths L,...     override the sweep's lengths
  --heads N           query heads
  --kv-heads N,...    KV heads per case group (GQA when < heads)
  --head-dim N
  --dtype f16|f32
  --inputs K,...      ${BENCH_INPUTS.join(',')} (local: a sharp local band, XAttention density 0.02-0.06 at 8K-128K)
  --methods M,...     keep only these methods
  --backend NAME      ${Object.keys(BENCH_TARGETS).join(' | ')} (default cpu)
  --peers F,...       peer JSON files (bench/peers/) to merge: kept whole, and listed beside our records
  --warmup N  --min-iters N  --max-iters N  --target-ms N   timing loop (defaults ${DEFAULT_TIMING.warmup}/${DEFAULT_TIMING.minIters}/${DEFAULT_TIMING.maxIters}/${DEFAULT_TIMING.targetMs})
  --budget-s N        skip the cases left after N seconds (reported, with that reason)
  --from F,...        run nothing: merge the records of earlier --out reports (a later file's timed
                      record of a case replaces an earlier one), recompute speedups, add --peers
  --dry-run           list the cases (with dense GFLOP) and exit
  --out FILE          write the JSON report there
  --json              print the JSON report instead of tables`,
  async run(argv) {
    const { values: v } = parseArgs({
      args: argv,
      strict: true,
      options: {
        sweep: { type: 'string', default: 'smoke' },
        lengths: { type: 'string' },
        heads: { type: 'string' },
        'kv-heads': { type: 'string' },
        'head-dim': { type: 'string' },
        dtype: { type: 'string' },
        inputs: { type: 'string' },
        methods: { type: 'string' },
        backend: { type: 'string', default: 'cpu' },
        peers: { type: 'string' },
        from: { type: 'string' },
        warmup: { type: 'string', default: String(DEFAULT_TIMING.warmup) },
        'min-iters': { type: 'string', default: String(DEFAULT_TIMING.minIters) },
        'max-iters': { type: 'string', default: String(DEFAULT_TIMING.maxIters) },
        'target-ms': { type: 'string', default: String(DEFAULT_TIMING.targetMs) },
        'budget-s': { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        out: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const sweep = SWEEPS[v.sweep];
    if (!sweep) throw new InvalidArgumentError('--sweep', v.sweep, `one of ${Object.keys(SWEEPS).join(', ')}`);
    if (v.dtype !== undefined && v.dtype !== 'f16' && v.dtype !== 'f32') throw new InvalidArgumentError('--dtype', v.dtype, '"f16" or "f32"');
    const inputs = list('inputs', v.inputs);
    for (const k of inputs ?? []) if (!(BENCH_INPUTS as readonly string[]).includes(k)) throw new InvalidArgumentError('--inputs', k, `one of ${BENCH_INPUTS.join(', ')}`);
    const cases = sweep({
      lengths: intList('lengths', v.lengths), heads: v.heads === undefined ? undefined : int('heads', v.heads, 1),
      kvHeads: intList('kv-heads', v['kv-heads']), headDim: v['head-dim'] === undefined ? undefined : int('head-dim', v['head-dim'], 8),
      dtype: v.dtype as 'f16' | 'f32' | undefined, inputs: inputs as InputKind[] | undefined, methods: list('methods', v.methods),
    });
    const timing: TimingOptions = {
      warmup: int('warmup', v.warmup, 0), minIters: int('min-iters', v['min-iters'], 1),
      maxIters: int('max-iters', v['max-iters'], 1), targetMs: int('target-ms', v['target-ms'], 0),
    };
    if (v['dry-run']) {
      for (const c of cases) console.log(`${caseName(c)}  ${(denseFlops(c) / 1e9).toFixed(1)} GFLOP dense`);
      return 0;
    }
    const budgetMs = v['budget-s'] === undefined ? undefined : int('budget-s', v['budget-s'], 1) * 1000;
    const peers = loadPeerFiles(list('peers', v.peers) ?? []);
    const command = shellWords(['npx', 'sparse-attn', 'bench', ...argv]);
    const print = (made: BenchReport) => {
      const report = { ...made, command };
      if (v.out) writeJsonFile(v.out, report);
      if (v.json) {
        console.log(JSON.stringify(report, null, 2));
      } else {
        console.log(formatRecords(report.records));
        if (report.peerRows.length) console.log(`\npeers\n${formatPeerRows(report.peerRows)}`);
      }
      return report.records.some((r) => r.status === 'invalid') ? 1 : 0;
    };
    const from = list('from', v.from);
    if (from) {
      const docs = loadReportFiles(from);
      const first = docs[0].data as BenchReport;
      return print({ ...buildReport(first.device, first.timing, mergeReportRecords(docs), peers), sources: from });
    }
    const target = await benchTarget(v.backend);
    try {
      const device = await target.describe();
      if (!v.json) console.error(`bench: ${cases.length} cases on ${target.name} (${device.name})`);
      const records = await runBench(target, cases, {
        timing,
        budgetMs,
        onCase: (c, i, n) => !v.json && process.stderr.write(`  [${i + 1}/${n}] ${caseName(c)}\n`),
      });
      return print(buildReport(device, timing, records, peers));
    } finally {
      await target.dispose?.();
    }
  },
};
