/**
 * SLA / SageSLA on the CPU reference: validates first (topkRatio 1 must equal dense attention on a
 * small input), then times dense flash attention, sla (proj zero and identity) and sage_sla on
 * structuredQKV, and writes JSON (device, date, shapes, ms, density, relative L2 error vs dense).
 *
 *   npx tsc -p . && node dist/bench/sla.js [--length 2048] [--out sla-bench.json]
 */
import { writeFileSync } from 'node:fs';
import { arch, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { flashAttention, naiveAttention } from '../src/backends/cpu/index.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import { createSparseMethod } from '../src/methods/index.js';
import { relativeL2Error as relL2 } from '../src/core/error-metrics.js';

const { values } = parseArgs({ options: { length: { type: 'string', default: '2048' }, out: { type: 'string', default: 'sla-bench.json' } } });
const L = Number(values.length);

// Validate: every block kept (and the linear part then empty) is dense attention.
const small = structuredQKV({ heads: 2, kvHeads: 1, length: 200, headDim: 64, seed: 7 });
for (const name of ['sla', 'sage_sla']) {
  const m = createSparseMethod(name, { topkRatio: 1, proj: 'identity' });
  const err = relL2(m.attention!(small.q, small.k, small.v, { causal: true }).output.toFloat32Array(), naiveAttention(small.q, small.k, small.v, { causal: true }).toFloat32Array());
  if (err > (name === 'sla' ? 1e-5 : 5e-2)) throw new Error(`validation failed: ${name} at topkRatio 1 differs from dense by relL2 ${err}`);
}

const { q, k, v } = structuredQKV({ heads: 4, kvHeads: 2, length: L, headDim: 64, seed: 1 });
const rows: Record<string, unknown>[] = [];
for (const causal of [false, true]) {
  let t = performance.now();
  const dense = flashAttention(q, k, v, { causal }).toFloat32Array();
  rows.push({ method: 'dense (flash)', causal, ms: Math.round(performance.now() - t), density: 1, relL2: 0 });
  for (const [name, settings] of [['sla', {}], ['sla', { proj: 'identity' }], ['sage_sla', {}]] as const) {
    const m = createSparseMethod(name, settings);
    t = performance.now();
    const { output, plan } = m.attention!(q, k, v, { causal });
    const ms = Math.round(performance.now() - t);
    rows.push({ method: name, settings, causal, ms, density: 1 - plan.stats.sparsity, relL2: relL2(output.toFloat32Array(), dense) });
  }
}
const report = {
  device: `${cpus()[0]?.model ?? 'cpu'} x${cpus().length} (${arch()}), Node ${process.version}, CPU reference`,
  date: new Date().toISOString(),
  shape: { batch: 1, heads: 4, kvHeads: 2, length: L, headDim: 64, input: 'structuredQKV seed 1' },
  rows,
};
writeFileSync(values.out!, JSON.stringify(report, null, 2));
console.log(JSON.stringify(report, null, 2));
