/**
 * SLA / SageSLA on the CPU reference: validates first (topkRatio 1 must equal dense attention on a
 * small input), then times dense flash attention, sla (proj zero and identity) and sage_sla on
 * structuredQKV, and writes JSON (device, date, shapes, ms, density, relative L2 error vs dense).
 * Each call runs once (seconds each at the default length).
 *
 *   node dist/bench/sla.js [--length 2048] [--out FILE]   (default FILE: bench/results/<date>-cpu/sla.json)
 */
import { parseArgs } from 'node:util';
import { flashAttention, naiveAttention } from '../src/backends/cpu/index.js';
import { attentionFlops, tflopsOf } from '../src/bench/cases.js';
import { checkOutput } from '../src/bench/check.js';
import { cpuDeviceInfo } from '../src/bench/device-info.js';
import { timedOnce } from '../src/bench/harness.js';
import { emitReport, scriptReport } from '../src/bench/report.js';
import { defaultResultPath } from '../src/bench/results.js';
import { relativeL2Error as relL2 } from '../src/core/error-metrics.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { createSparseMethod } from '../src/methods/index.js';

const device = cpuDeviceInfo();
const { values } = parseArgs({ options: { length: { type: 'string', default: '2048' }, out: { type: 'string', default: defaultResultPath('sla.json', device) } } });
const L = Number(values.length);

// Validate: every block kept (and the linear part then empty) is dense attention.
const small = structuredQKV({ heads: 2, kvHeads: 1, length: 200, headDim: 64, seed: 7 });
const validation = ['sla', 'sage_sla'].map((name) => {
  const m = createSparseMethod(name, { topkRatio: 1, proj: 'identity' });
  const dense = naiveAttention(small.q, small.k, small.v, { causal: true });
  return checkOutput(`${name} at topkRatio 1 against dense`, m.attention!(small.q, small.k, small.v, { causal: true }).output, dense, name === 'sla' ? 1e-5 : 5e-2);
});

const shape = { batch: 1, heads: 4, kvHeads: 2, length: L, headDim: 64 };
const { q, k, v } = structuredQKV({ ...shape, seed: 1 });
const rows: Record<string, unknown>[] = [];
for (const causal of [false, true]) {
  const flops = attentionFlops({ ...shape, queryLength: L, keyLength: L, causal });
  const d = await timedOnce(() => flashAttention(q, k, v, { causal }).toFloat32Array());
  const dense = d.result;
  rows.push({ method: 'dense (flash)', causal, ms: Math.round(d.ms), density: 1, relL2: 0, denseEquivalentTflops: tflopsOf(flops, d.ms) });
  for (const [name, settings] of [['sla', {}], ['sla', { proj: 'identity' }], ['sage_sla', {}]] as const) {
    const m = createSparseMethod(name, settings);
    const { result: { output, plan }, ms } = await timedOnce(() => m.attention!(q, k, v, { causal }));
    rows.push({ method: name, settings, causal, ms: Math.round(ms), density: 1 - plan.stats.sparsity, relL2: relL2(output.toFloat32Array(), dense), denseEquivalentTflops: tflopsOf(flops, ms) });
  }
}
const report = scriptReport('sla', device, {
  flopRule: 'dense 4·B·H·L²·D, halved when causal; denseEquivalentTflops = those dense FLOPs / ms',
  timing: 'wall-clock: one call each, CPU reference',
  shape: { ...shape, input: 'structuredQKV seed 1' }, validation, rows,
});
emitReport(report, { out: values.out, print: true });
