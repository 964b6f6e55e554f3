/**
 * flash-skip-softmax decode-phase calibration (one query row, tiles of bc keys): calibrated vs
 * target sparsity per length on structured inputs.
 *
 *   node dist/bench/flash-skip-decode.js [--lengths 2048,8192,32768] [--target 0.5] [--samples 4]
 *
 * Decode rows are cheap (Lk dot products per head), so several seeds per length are averaged:
 * one query row sees only Lk/bc tiles, and a single input's sparsity moves in steps of bc/Lk.
 * Writes bench/results/<date>-cpu/flash-skip-decode.json unless --out is given.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { cpuDeviceInfo } from '../src/bench/device-info.js';
import { scriptReport } from '../src/bench/report.js';
import { defaultResultPath, writeJsonFile } from '../src/bench/results.js';
import { calibrate, createCalibratedMethod } from '../src/calibration/calibrate.js';
import { formatTable } from '../src/core/stats.js';
import { structuredQKV } from '../src/core/structured-inputs.js';

const device = cpuDeviceInfo();
const { values } = parseArgs({
  options: {
    lengths: { type: 'string', default: '2048,8192,32768' },
    target: { type: 'string', default: '0.5' },
    samples: { type: 'string', default: '4' },
    out: { type: 'string', default: defaultResultPath('flash-skip-decode.json', device) },
  },
});
const lengths = values.lengths.split(',').map(Number);
const target = Number(values.target);
const samples = Number(values.samples);
const shape = { heads: 8, kvHeads: 2, headDim: 32 };
const scale = 1; // as in calibration-sparsity: LLM-like logit ranges for these synthetic inputs
const settings = { br: 64, bc: 64 };
const inputs = (seed0: number) => lengths.flatMap((length) => Array.from({ length: samples }, (_, s) => ({
  length, ...structuredQKV({ ...shape, length, queryLength: 1, seed: seed0 + s + length }),
})));

const t0 = performance.now();
const calInputs = inputs(1);
const cal = calibrate({ method: 'flash_skip_softmax', inputs: calInputs, target: { decode: target }, scale, causal: true, settings });
const method = createCalibratedMethod(cal);
const heldOut = inputs(1001).map(({ q, k }) => method.planBlockMask(q, k, { causal: true, scale }).stats);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const perLength = lengths.map((L) => {
  const idx = calInputs.flatMap((x, i) => (x.length === L ? [i] : []));
  return {
    length: L,
    threshold: cal.samples[idx[0]].value,
    calibrationSparsity: mean(idx.map((i) => cal.samples[i].sparsity)),
    heldOutSparsity: mean(idx.map((i) => heldOut[i].sparsity)),
    heldOutGroupConsensusSparsity: mean(idx.map((i) => heldOut[i].extra!.group_consensus_sparsity)),
  };
});
const fit = cal.fit!.decode!;
const report = scriptReport('flash-skip-decode', device, {
  machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version },
  inputs: { kind: 'structuredQKV defaults, queryLength 1', ...shape, scale, samplesPerLength: samples, calibrationSeeds: '1 + s + L', heldOutSeeds: '1001 + s + L', ...settings },
  target,
  fit: { a: fit.a, b: fit.b, rSquared: fit.rSquared, numPoints: fit.numPoints },
  perLength,
  ms: performance.now() - t0,
});
writeJsonFile(values.out, report);
console.log(`decode: threshold = ${fit.a.toPrecision(4)}·exp(${fit.b.toPrecision(4)}·${target})/Lk (R² ${fit.rSquared.toFixed(3)})`);
console.log(formatTable(['length', 'threshold', 'calibration', 'held-out', 'held-out GQA consensus'], perLength.map((p) => [
  String(p.length), p.threshold.toPrecision(4), p.calibrationSparsity.toFixed(3), p.heldOutSparsity.toFixed(3), p.heldOutGroupConsensusSparsity.toFixed(3),
])));
console.log(`wrote ${values.out}`);
