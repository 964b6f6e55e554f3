/**
 * SLA with its projection fitted in closed form (calibration/sla-projection-fit.ts) against the
 * zero projection an untrained SLA has, inside bytes-llama-dev on needle prompts (CPU reference):
 *   1. capture every layer's Q/K/V on `--calib` prompts (dense pass), fit per layer and per head;
 *   2. on `--held` other prompts: per-layer attention-output relative L2 error vs dense (on the
 *      held-out prompt's dense-pass inputs), and the model's mean next-byte loss and greedy answer
 *      with SLA in every layer (zero / fitted shared / fitted per head) against dense.
 * Validates first: a projection fitted on targets Os + Ol·W₀ᵀ + b₀ gives back W₀.
 *
 *   node dist/bench/sla-projection.js [--length 1024] [--calib 1] [--held 1] [--topk 0.1,0.25] [--out FILE]
 */
import { parseArgs } from 'node:util';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { cpuDeviceInfo } from '../src/bench/device-info.js';
import { emitReport, scriptReport } from '../src/bench/report.js';
import { defaultResultPath } from '../src/bench/results.js';
import { fitSlaProjection, slaProjectionJson, solveSlaProjection } from '../src/calibration/sla-projection-fit.js';
import { relativeL2Error } from '../src/core/error-metrics.js';
import { Rng } from '../src/core/rng.js';
import { HeadTensor } from '../src/core/tensor.js';
import { LlamaModel } from '../src/model/llama.js';
import { buildNeedlePrompt, loadCorpus } from '../src/model/needle.js';
import { scorePrompt } from '../src/model/prompt-score.js';
import { captureAttentionInputs, slaProjectionConfig } from '../src/model/sla-projection-capture.js';
import { desparsify, sparsify } from '../src/model/sparsify.js';
import { SlaMethod } from '../src/methods/sla/sla.js';

const device = cpuDeviceInfo();
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'test/fixtures/bytes-llama-dev' },
    corpus: { type: 'string', default: 'test/fixtures/python-corpus' },
    length: { type: 'string', default: '1024' },
    calib: { type: 'string', default: '1' },
    held: { type: 'string', default: '1' },
    topk: { type: 'string', default: '0.1,0.25' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string', default: defaultResultPath('sla-projection.json', device) },
  },
});
const L = Number(values.length);
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${m}\n`);

// Validate: known W₀, b₀ recovered from targets built with them (ridge 0).
const validation = (() => {
  const H = 2, Lq = 300, D = 16;
  const sla = new SlaMethod({ BLKQ: 32, BLKK: 16, topkRatio: 0.25 });
  const t = (seed: number, h: number) => HeadTensor.randn({ batch: 1, heads: h, length: Lq, headDim: D }, seed);
  const { problem, sparse, linear } = sla.parts(t(1, H), t(2, 1), t(3, 1), { causal: true });
  const rng = new Rng(5);
  const w0 = Float32Array.from({ length: D * D }, () => rng.normal());
  const b0 = Float32Array.from({ length: D }, () => rng.normal());
  const target = sparse.map((x, i) => {
    const r = i % D, o = i - r;
    let s = x + b0[r];
    for (let c = 0; c < D; c++) s += w0[r * D + c] * linear[o + c];
    return s;
  });
  const fit = solveSlaProjection([{ module: 'm', sparse, linear, target, heads: problem.heads, queryLength: Lq, valueDim: D }], { ridge: 0 }).projections.get('m')!;
  const error = relativeL2Error(fit.weight, w0);
  if (!(error < 1e-3)) throw new Error(`validation: fitted W differs from W₀ by ${error}`);
  return { check: 'known W₀ recovered (ridge 0, D 16, causal)', relL2: error };
})();

const model = LlamaModel.load(values.model);
const corpus = loadCorpus(values.corpus);
const rng = new Rng(Number(values.seed));
const calib = Array.from({ length: Number(values.calib) }, () => buildNeedlePrompt(corpus, L, rng));
const held = Array.from({ length: Number(values.held) }, () => buildNeedlePrompt(corpus, L, rng));
log(`capturing ${calib.length} + ${held.length} prompts of ${L} bytes`);
const capCalib = await captureAttentionInputs(model, calib.map((p) => p.tokens));
const capHeld = await captureAttentionInputs(model, held.map((p) => p.tokens));
const denseScores: Awaited<ReturnType<typeof scorePrompt>>[] = [];
for (const p of held) denseScores.push(await scorePrompt(model, p.tokens, { answerLength: 6 }));
log('dense scored');

const rows: Record<string, unknown>[] = [];
for (const topkRatio of values.topk.split(',').map(Number)) {
  const settings = { topkRatio };
  const fits = {
    shared: fitSlaProjection(capCalib, settings, { perHead: false }),
    perHead: fitSlaProjection(capCalib, settings, { perHead: true }),
  };
  log(`topkRatio ${topkRatio}: fitted`);
  const variants: [string, Record<string, unknown> | null][] = [['zero', null], ['shared', null], ['perHead', null]];
  const layerError: Record<string, Record<string, number>> = {};
  for (const c of capHeld) {
    const dense = flashAttention(c.q, c.k, c.v, { causal: true }).toLayout('BHLD').toFloat32Array();
    const e: Record<string, number> = {};
    for (const [name] of variants) {
      const proj = name === 'zero' ? 'zero' : slaProjectionJson((name === 'shared' ? fits.shared : fits.perHead).projections.get(c.module)!);
      const out = new SlaMethod({ ...settings, proj }).attention(c.q, c.k, c.v, { causal: true }).output.toLayout('BHLD').toFloat32Array();
      e[name] = relativeL2Error(out, dense);
    }
    // Several held prompts: the last one's error per layer (all are in the fit report's held-out rows).
    layerError[c.module] = e;
  }
  const model_: Record<string, unknown> = {};
  for (const [name] of variants) {
    const cfg = name === 'zero'
      ? { sparse_cfg: { '*self_attn*': { method: 'sla', ...settings }, default: { enable: false } } }
      : slaProjectionConfig(settings, (name === 'shared' ? fits.shared : fits.perHead).projections);
    const { stats } = sparsify(model, cfg);
    const per = [];
    for (const [i, p] of held.entries()) {
      const s = await scorePrompt(model, p.tokens, { answerLength: 6, reference: denseScores[i].greedy });
      per.push({
        loss: s.loss, lossDelta: s.loss - denseScores[i].loss, keptDenseAnswer: s.greedy.every((t, j) => t === denseScores[i].greedy[j]),
        correct: s.greedy.every((t, j) => t === p.answer[j]), referenceLogProb: s.referenceLogProb,
      });
    }
    const sp = stats.summary('prefill');
    const kept = sp.reduce((a, r) => a + r.keptBlocks, 0), all = sp.reduce((a, r) => a + r.totalBlocks, 0);
    model_[name] = { sparsity: 1 - kept / all, prompts: per };
    desparsify(model);
    log(`topkRatio ${topkRatio} ${name}: ${JSON.stringify(per.map((x) => x.lossDelta))}`);
  }
  rows.push({ topkRatio, fit: { shared: fits.shared.report, perHead: fits.perHead.report }, heldOutLayerRelL2: layerError, model: model_ });
}
const report = scriptReport('sla-projection', device, {
  model: values.model, prompts: { length: L, calib: calib.length, held: held.length, seed: Number(values.seed), builder: 'buildNeedlePrompt on python-corpus' },
  method: 'sla causal, BLKQ 128, BLKK 64, softmax feature map, linearBlocks unselected; ridge auto (held-out fifth of fit rows)',
  dense: denseScores.map((s, i) => ({ loss: s.loss, correct: s.greedy.every((t, j) => t === held[i].answer[j]) })),
  validation: [validation], rows,
});
emitReport(report, { out: values.out, print: true });
