/**
 * per-head-out: per-head calibration with each head's error weighted by its share of the residual
 * stream (dense output norm × its output-projection columns' norm).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type GridMeasurer, headGridJobs, measureHeadGrid } from '../src/calibration/per-head-grid.js';
import { chooseForTarget } from '../src/calibration/per-head-target.js';
import { HeadTensor } from '../src/core/tensor.js';
import { headOutputNorms, outputWeightedPoints, perHeadOutVariants, perHeadVariants } from '../src/model/eval-variants.js';
import type { CapturedAttention } from '../src/model/sparsity-search.js';

describe('per-head-out weighting', () => {
  it('headOutputNorms: the Frobenius norm of each head’s columns of o_proj', () => {
    // [out 2, in 3 heads × D 2]: head h's columns are 2h, 2h + 1.
    const weight = Float32Array.from([1, 2, 0, 0, 3, 0, /**/ 2, 0, 0, 0, 0, 4]);
    const norms = headOutputNorms({ weight, outFeatures: 2, inFeatures: 6 }, 3);
    assert.deepEqual(norms.map((x) => +x.toFixed(6)), [3, 0, 5]);
  });

  it('scales each head’s errors by dense norm × projection norm over their mean, and names a head without norms', () => {
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: 64, headDim: 16 }, 1);
    const k = HeadTensor.randn({ batch: 1, heads: 1, length: 64, headDim: 16 }, 2);
    const v = HeadTensor.randn({ batch: 1, heads: 1, length: 64, headDim: 16 }, 3);
    const jobs = headGridJobs([{ module: 'm', q, k, v }]);
    const request = { method: 'xattention', base: { stride: 4, blockSize: 16 }, run: { causal: true }, grid: [0.5, 0.9, 0.99] };
    const points = jobs.map((job) => measureHeadGrid(request, job));
    const captured: CapturedAttention[] = [{ module: 'm', q, k, v, headOutNorms: [1, 3] }];
    const weighted = outputWeightedPoints(jobs, points, captured);
    const raw = [1 * points[0][0].denseNorm!, 3 * points[1][0].denseNorm!];
    const mean = (raw[0] + raw[1]) / 2;
    for (let h = 0; h < 2; h++) {
      for (let j = 0; j < 3; j++) {
        assert.ok(Math.abs(weighted[h][j].error - (points[h][j].error * raw[h]) / mean) < 1e-12);
        assert.equal(weighted[h][j].sparsity, points[h][j].sparsity);
      }
    }
    assert.throws(() => outputWeightedPoints(jobs, points, [{ module: 'm', q, k, v }]), /m head 0/);
  });

  it('a head whose output projection is zero takes the sparsity first', () => {
    // Two identical heads (same q), so unweighted they are interchangeable; per-head-out must push
    // the target's sparsity onto the head that does not reach the residual stream.
    const q1 = HeadTensor.randn({ batch: 1, heads: 1, length: 64, headDim: 16 }, 4);
    const q = HeadTensor.fromFunction({ batch: 1, heads: 2, length: 64, headDim: 16 }, (_b, _h, i, d) => q1.data[q1.offset(0, 0, i) + d]);
    const k = HeadTensor.randn({ batch: 1, heads: 1, length: 64, headDim: 16 }, 5);
    const v = HeadTensor.randn({ batch: 1, heads: 1, length: 64, headDim: 16 }, 6);
    const jobs = headGridJobs([{ module: 'm', q, k, v }]);
    const request = { method: 'xattention', base: { stride: 4, blockSize: 16 }, run: { causal: true }, grid: [0.2, 0.5, 0.8, 0.95, 0.999] };
    const points = jobs.map((job) => measureHeadGrid(request, job));
    const weighted = outputWeightedPoints(jobs, points, [{ module: 'm', q, k, v, headOutNorms: [0, 1] }]);
    const target = (points[0][0].sparsity + points[0][points[0].length - 1].sparsity) / 2;
    const choice = chooseForTarget(weighted, target);
    assert.ok(weighted[1].some((p) => p.error > 0), 'sparsity must cost the weighted head something');
    assert.ok(points[0][choice.indices[0]].sparsity > points[1][choice.indices[1]].sparsity,
      `head 0 (no projection) ${points[0][choice.indices[0]].sparsity} must be sparser than head 1 ${points[1][choice.indices[1]].sparsity}`);
  });

  it('per-head and per-head-out of one context share one measurement of the heads, each meeting the target', async () => {
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: 512, headDim: 16 }, 7);
    const k = HeadTensor.randn({ batch: 1, heads: 1, length: 512, headDim: 16 }, 8);
    const v = HeadTensor.randn({ batch: 1, heads: 1, length: 512, headDim: 16 }, 9);
    let measured = 0;
    const measureGrid: GridMeasurer = async (request, jobs) => {
      measured++;
      return jobs.map((job) => measureHeadGrid(request, job));
    };
    const ctx = {
      method: 'xattention', length: 512, targets: [0.3], denseLayers: 0, calibrationQueries: 0,
      captured: [{ module: 'model.layers.0.self_attn', q, k, v, headOutNorms: [1, 2] }],
      measureGrid,
    };
    const [a] = await perHeadVariants(ctx);
    const [b] = await perHeadOutVariants(ctx);
    assert.equal(measured, 1);
    assert.equal(a.label, 'per-head ~30%');
    assert.equal(b.label, 'per-head-out ~30%');
    assert.equal(b.family, 'per-head-out');
    for (const x of [a, b]) assert.ok(x.plannedSparsity !== undefined && x.plannedSparsity >= 0.3 - 1e-9, `${x.label}: planned ${x.plannedSparsity}`);
  });
});

describe('eval: settings a method\'s variants share (--method-settings)', () => {
  it('uniform and per-head variants carry the base settings, and the search plans with them', async () => {
    const { uniformVariants } = await import('../src/model/eval-variants.js');
    const q = HeadTensor.randn({ batch: 1, heads: 2, length: 512, headDim: 16 }, 11);
    const k = HeadTensor.randn({ batch: 1, heads: 1, length: 512, headDim: 16 }, 12);
    const v = HeadTensor.randn({ batch: 1, heads: 1, length: 512, headDim: 16 }, 13);
    const base = { BLKQ: 16, BLKK: 16 };
    const seen: unknown[] = [];
    const measureGrid: GridMeasurer = async (request, jobs) => {
      seen.push(request.base);
      return jobs.map((job) => measureHeadGrid(request, job));
    };
    const ctx = {
      method: 'sla', length: 512, targets: [0.6], denseLayers: 0, calibrationQueries: 0,
      captured: [{ module: 'model.layers.0.self_attn', q, k, v, headOutNorms: [1, 1] }], measureGrid, base,
    };
    const uniform = await uniformVariants(ctx);
    for (const x of uniform) {
      assert.equal((x.settings as { BLKQ?: number }).BLKQ, 16, x.label);
      assert.equal((x.config.sparse_cfg['*self_attn*'] as { BLKQ?: number }).BLKQ, 16, `${x.label}: config`);
    }
    const searched = uniform[1];
    assert.ok(typeof (searched.settings as { topkRatio?: number }).topkRatio === 'number');
    // The searched ratio planned with BLKQ 16 gives the planned sparsity; with the default BLKQ 128 it would not be this plan.
    const { createSparseMethod } = await import('../src/methods/index.js');
    const planned = createSparseMethod('sla', searched.settings).planBlockMask(q, k, { causal: true }).stats.sparsity;
    assert.ok(Math.abs(planned - searched.plannedSparsity!) < 1e-9, `planned ${planned} against ${searched.plannedSparsity}`);
    const [perHead] = await perHeadOutVariants(ctx);
    assert.deepEqual(seen, [base]);
    const entry = Object.values(perHead.config.sparse_cfg).find((e) => typeof e === 'object' && e !== null && 'per_head' in e) as Record<string, unknown>;
    assert.equal(entry.BLKQ, 16);
  });

  it('the CLI option names a bad method, bad settings and the searched knob', async () => {
    const { parseMethodSettings } = await import('../src/cli/commands/eval.js');
    assert.deepEqual(parseMethodSettings('{"sla":{"BLKQ":16}}'), { sla: { BLKQ: 16 } });
    assert.equal(parseMethodSettings(undefined), undefined);
    assert.throws(() => parseMethodSettings('{"sla":'), /--method-settings must be JSON/);
    assert.throws(() => parseMethodSettings('{"sla":{"topkRatio":0.2}}'), /--method-settings.sla.topkRatio must be left out: the evaluation searches topkRatio/);
    assert.throws(() => parseMethodSettings('{"sla":{"BLKQ":0}}'), /BLKQ/);
    assert.throws(() => parseMethodSettings('{"nosuch":{}}'), /nosuch/);
  });
});
