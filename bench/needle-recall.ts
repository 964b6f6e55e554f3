/**
 * Where the fixture model reads its answer, and which methods keep it. On needle prompts (CPU, dense
 * forward pass), for every layer and head: the last query row's dense attention mass on the queried
 * key line's 6 value bytes, whether each method's plan (settings given per method) keeps the blocks
 * holding those bytes for the last query block, and the share of the last row's dense mass that falls
 * on kept blocks. A method that drops the value bytes in the heads that read them cannot keep the
 * dense answer, whatever else it keeps. Writes JSON.
 *
 *   node dist/bench/needle-recall.js [--length 4096] [--prompts 4] [--seed 1]
 *     [--methods 'xattention:{"threshold":0.844};sla:{"topkRatio":0.118}'] [--out file]
 */
import { parseArgs } from 'node:util';
import { cpuDeviceInfo } from '../src/bench/device-info.js';
import { emitReport, scriptReport } from '../src/bench/report.js';
import { Rng } from '../src/core/rng.js';
import type { HeadTensor } from '../src/core/tensor.js';
import { createSparseMethod } from '../src/methods/index.js';
import { LlamaModel } from '../src/model/llama.js';
import { buildNeedlePrompt, loadCorpus } from '../src/model/needle.js';
import { captureAttentionInputs } from '../src/model/sla-projection-capture.js';

const { values } = parseArgs({
  options: {
    length: { type: 'string', default: '4096' }, prompts: { type: 'string', default: '4' }, seed: { type: 'string', default: '1' },
    methods: { type: 'string', default: 'xattention:{"threshold":0.844};sla:{"topkRatio":0.118}' }, out: { type: 'string' },
    model: { type: 'string', default: 'test/fixtures/bytes-llama-dev' }, corpus: { type: 'string', default: 'test/fixtures/python-corpus' },
  },
});
const L = Number(values.length);
const methods = values.methods!.split(';').map((m) => {
  const at = m.indexOf(':');
  return at < 0 ? { name: m, settings: {} } : { name: m.slice(0, at), settings: JSON.parse(m.slice(at + 1)) as Record<string, unknown> };
});
const model = LlamaModel.load(values.model!);
const corpus = loadCorpus(values.corpus!);
const rng = new Rng(Number(values.seed));

/** Softmax of the last query row of head h over every key (causal: the last row sees all). */
function lastRowProbs(q: HeadTensor, k: HeadTensor, h: number): Float64Array {
  const D = q.headDim;
  const kh = Math.floor(h / (q.heads / k.heads));
  const scale = 1 / Math.sqrt(D);
  const qo = q.offset(0, h, q.length - 1);
  const s = new Float64Array(k.length);
  let max = -Infinity;
  for (let j = 0; j < k.length; j++) {
    const ko = k.offset(0, kh, j);
    let x = 0;
    for (let d = 0; d < D; d++) x += q.data[qo + d] * k.data[ko + d];
    s[j] = x * scale;
    max = Math.max(max, s[j]);
  }
  let sum = 0;
  for (let j = 0; j < s.length; j++) sum += (s[j] = Math.exp(s[j] - max));
  for (let j = 0; j < s.length; j++) s[j] /= sum;
  return s;
}

const rows: Record<string, unknown>[] = [];
const t0 = Date.now();
for (let n = 0; n < Number(values.prompts); n++) {
  const p = buildNeedlePrompt(corpus, L, rng, 1);
  // The queried key line: "\n# key NNNN = vvvvvv\n" at its position; the value bytes start at +14.
  const line = p.positions.find((at) => String.fromCharCode(...p.tokens.subarray(at + 7, at + 11)) === String(p.key).padStart(4, '0'));
  if (line === undefined) throw new Error(`prompt ${n}: the queried key line was not found`);
  const value = [line + 14, line + 20];
  const captured = await captureAttentionInputs(model, [p.tokens]);
  for (const c of captured) {
    const plans = methods.map((m) => createSparseMethod(m.name, m.settings).planBlockMask(c.q, c.k, { causal: true }));
    for (let h = 0; h < c.q.heads; h++) {
      const probs = lastRowProbs(c.q, c.k, h);
      let needleMass = 0;
      for (let j = value[0]; j < value[1]; j++) needleMass += probs[j];
      const perMethod = plans.map((plan, i) => {
        const { blockRows, blockCols } = plan.mask.dims;
        const qb = Math.floor((c.q.length - 1) / blockRows);
        const kept = (j: number) => plan.mask.isKept(0, h, qb, Math.floor(j / blockCols));
        let keptMass = 0;
        for (let j = 0; j < probs.length; j++) if (kept(j)) keptMass += probs[j];
        let valueKept = true;
        for (let j = value[0]; j < value[1]; j++) valueKept &&= kept(j);
        return { method: methods[i].name, settings: methods[i].settings, sparsity: plan.mask.sparsity, valueKept, keptMass };
      });
      rows.push({ prompt: n, module: c.module, head: h, needleMass, methods: perMethod });
    }
  }
  console.error(`prompt ${n + 1}/${values.prompts} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

// Summary: over the (prompt, layer, head) cells where the last row puts at least 30% of its mass on the value.
const reading = rows.filter((r) => (r.needleMass as number) >= 0.3);
const summary = methods.map((m, i) => {
  const cells = rows.map((r) => (r.methods as { valueKept: boolean; keptMass: number; sparsity: number }[])[i]);
  const readCells = reading.map((r) => (r.methods as { valueKept: boolean; keptMass: number }[])[i]);
  return {
    method: m.name, settings: m.settings,
    meanSparsity: cells.reduce((a, x) => a + x.sparsity, 0) / cells.length,
    readingCells: readCells.length,
    valueKeptInReadingCells: readCells.filter((x) => x.valueKept).length,
    meanKeptMassInReadingCells: readCells.reduce((a, x) => a + x.keptMass, 0) / Math.max(1, readCells.length),
    meanKeptMassAll: cells.reduce((a, x) => a + x.keptMass, 0) / cells.length,
  };
});
for (const s of summary) console.log(JSON.stringify(s));
emitReport(scriptReport('needle-recall', cpuDeviceInfo(), {
  shape: { length: L, prompts: Number(values.prompts), seed: Number(values.seed), model: values.model },
  readme: 'needleMass: the last query row\'s dense attention on the queried value bytes; valueKept: every block holding them kept for the last query block; keptMass: the last row\'s dense mass on kept blocks. Reading cells: needleMass >= 0.3.',
  summary, rows,
}, new Date()), { out: values.out });
