/**
 * SLA, sparse-linear attention (thu-ml/SLA, arXiv 2509.24006; FastVideo's `SLAAttentionImpl`):
 * per query block, exact softmax attention over the top-k key blocks chosen from mean-pooled
 * Q and smoothed K (the sparse part Os), linear attention with a feature map over the other key
 * blocks (Ol), and O = Os + proj(Ol) with a learned D→D projection (zero by default).
 *
 * Settings (defaults from FastVideo / TurboDiffusion):
 *   topkRatio 0.1      fraction of key blocks each query block attends to exactly, in (0, 1]
 *   featureMap         'softmax' (over the head dim, default) | 'elu' (elu + 1) | 'relu'
 *   BLKQ 128, BLKK 64  query / key block sizes (aliases br, bc)
 *   causal false       used when the call does not say; a call's causal flag always wins
 *   proj 'zero'        'zero' | 'identity' | weights (see sla-projection.ts); projFile: a JSON path
 *   linearBlocks       'unselected' (paper, default) | 'all' (thu-ml/SLA since Dec 2025 and FastVideo
 *                      run the linear part over every key)
 * Inputs [B, L, H, D] ('BLHD', FastVideo's layout) or 'BHLD'; the output takes q's layout; GQA.
 */
import { type AttentionProblem, describeAttention } from '../../core/attention-shape.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { checkScores, type Scores } from '../../core/scores.js';
import { phaseOf, statsFromMask } from '../../core/stats.js';
import { HeadTensor } from '../../core/tensor.js';
import { type BlockPlan, maskScores, type PlanOptions, type SparseAttentionMethod, type SparsityResult, type ThresholdInfo } from '../method.js';
import { blockMapToMask, checkTopkRatio, getBlockMap, selectTopBlocks, type SlaBlockMap, slaTopk, tileMeans } from './sla-block-map.js';
import { FEATURE_MAPS, type FeatureMap, type LinearBlocks, slaLinearPart } from './sla-linear-part.js';
import { addProjection, checkProjectionSize, loadProjectionFile, parseProjection, projectionIsZero, type SlaProjection } from './sla-projection.js';
import { floatLogits, slaSparsePart } from './sla-sparse-part.js';

export interface SlaSettings {
  topkRatio: number;
  featureMap: FeatureMap;
  BLKQ: number;
  BLKK: number;
  causal: boolean;
  proj: SlaProjection;
  linearBlocks: LinearBlocks;
}

/** What tells SLA and SageSLA apart at construction: the name and the defaults. */
export interface SlaVariant {
  name: string;
  defaults: { topkRatio: number; BLKQ: number; BLKK: number };
}

const SLA_VARIANT: SlaVariant = { name: 'sla', defaults: { topkRatio: 0.1, BLKQ: 128, BLKK: 64 } };
const KNOWN_SETTINGS = ['topkRatio', 'featureMap', 'BLKQ', 'BLKK', 'br', 'bc', 'causal', 'proj', 'projFile', 'linearBlocks'];

export function parseSlaSettings(variant: SlaVariant, settings: Record<string, unknown>): SlaSettings {
  const m = variant.name;
  for (const key of Object.keys(settings)) {
    if (!KNOWN_SETTINGS.includes(key)) throw new InvalidArgumentError(`${m} setting name`, key, `one of ${KNOWN_SETTINGS.join(', ')}`);
  }
  const topkRatio = checkTopkRatio(`${m}.topkRatio`, settings.topkRatio ?? variant.defaults.topkRatio);
  const featureMap = settings.featureMap ?? 'softmax';
  if (!FEATURE_MAPS.includes(featureMap as FeatureMap)) throw new InvalidArgumentError(`${m}.featureMap`, featureMap, `one of ${FEATURE_MAPS.map((f) => `"${f}"`).join(', ')}`);
  const BLKQ = blockSize(m, 'BLKQ', 'br', settings, variant.defaults.BLKQ);
  const BLKK = blockSize(m, 'BLKK', 'bc', settings, variant.defaults.BLKK);
  const causal = settings.causal ?? false;
  if (typeof causal !== 'boolean') throw new InvalidArgumentError(`${m}.causal`, causal, 'true or false');
  const linearBlocks = settings.linearBlocks ?? 'unselected';
  if (linearBlocks !== 'unselected' && linearBlocks !== 'all') throw new InvalidArgumentError(`${m}.linearBlocks`, linearBlocks, '"unselected" or "all"');
  if (settings.proj !== undefined && settings.projFile !== undefined) {
    throw new InvalidArgumentError(`${m}.projFile`, settings.projFile, `absent when ${m}.proj is given (one source of weights)`);
  }
  const proj = settings.projFile !== undefined
    ? loadProjectionFile(settings.projFile as string, `${m}.projFile`)
    : parseProjection(settings.proj, `${m}.proj`);
  return { topkRatio, featureMap: featureMap as FeatureMap, BLKQ, BLKK, causal, proj, linearBlocks };
}

function blockSize(m: string, field: string, alias: string, settings: Record<string, unknown>, fallback: number): number {
  const a = settings[field];
  const b = settings[alias];
  if (a !== undefined && b !== undefined && a !== b) throw new InvalidArgumentError(`${m}.${alias}`, b, `equal to ${m}.${field} (${String(a)}) or absent (it is an alias)`);
  const v = a ?? b ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InvalidArgumentError(`${m}.${a !== undefined ? field : alias}`, v, 'an integer >= 1');
  return v;
}

export class SlaMethod implements SparseAttentionMethod {
  static readonly description: string = 'SLA: exact softmax on the top-k key blocks of each query block, linear attention on the rest, plus a learned projection';
  readonly name: string;
  readonly version = 'v1';
  readonly settings: Readonly<SlaSettings>;

  constructor(settings: Record<string, unknown> = {}, variant: SlaVariant = SLA_VARIANT) {
    this.name = variant.name;
    this.settings = parseSlaSettings(variant, settings);
  }

  /**
   * Ranks the blocks of the given scores by their mean (over the entries that are not -Infinity).
   * It cannot see Q and K, but it needs not: the mean of scale·q_i·k_j over a tile is
   * scale · pooledQ · pooledKᵀ, which differs from planBlockMask's smoothed score by a positive
   * factor and a per-row constant, so without causal masking it picks the same blocks (up to
   * float rounding and ties). With causal scores the tiles on the diagonal average only their
   * visible entries (the masked ones are gone), so the choice there can differ from the plan.
   * The mask covers the sparse part only: SLA's linear part still sees the other keys.
   */
  calculateSparsity(scores: Scores): SparsityResult {
    checkScores(scores);
    const { BLKQ, BLKK } = this.settings;
    const Lq = scores.queryLength;
    const Lk = scores.keyLength;
    const nQB = Math.ceil(Lq / BLKQ);
    const nKB = Math.ceil(Lk / BLKK);
    const pooled = tileMeans(scores, BLKQ, BLKK);
    const dims = { batch: scores.batch, heads: scores.heads, queryLength: Lq, keyLength: Lk, blockRows: BLKQ, blockCols: BLKK, causal: false };
    const map = selectTopBlocks(dims, pooled, slaTopk(this.settings.topkRatio, nKB), (r, _qb, kb) => pooled[r * nKB + kb] !== -Infinity);
    const mask = new Uint8Array(scores.data.length);
    let total = 0;
    let kept = 0;
    for (let bh = 0; bh < scores.batch * scores.heads; bh++)
      for (let qb = 0; qb < nQB; qb++)
        for (let kb = 0; kb < nKB; kb++) {
          const r = (bh * nQB + qb) * nKB + kb;
          if (pooled[r] === -Infinity) continue;
          total++;
          if (!map.sparseMap[r]) continue;
          kept++;
          for (let i = qb * BLKQ; i < Math.min((qb + 1) * BLKQ, Lq); i++)
            for (let j = kb * BLKK; j < Math.min((kb + 1) * BLKK, Lk); j++) {
              const x = (bh * Lq + i) * Lk + j;
              mask[x] = scores.data[x] === -Infinity ? 0 : 1;
            }
        }
    return {
      mask,
      stats: { method: this.name, phase: phaseOf(Lq), totalBlocks: total, keptBlocks: kept, sparsity: total === 0 ? 0 : 1 - kept / total, extra: { topk: map.topk } },
    };
  }

  applySparsity(scores: Scores, mask?: Uint8Array): Scores {
    return maskScores(scores, mask ?? this.calculateSparsity(scores).mask);
  }

  getThresholdInfo(): ThresholdInfo {
    return { type: 'static', value: this.settings.topkRatio, topkRatio: this.settings.topkRatio };
  }

  get defaultCausal(): boolean { return this.settings.causal; }

  /** The call's causal flag, or the setting when the call leaves it out. */
  protected causalOf(opts: PlanOptions): boolean {
    return opts.causal ?? this.settings.causal;
  }

  /** Head-size and other limits of a variant; SLA itself takes any head size. */
  protected checkProblem(_p: AttentionProblem): void {}

  /**
   * A causal window with rowsAfter rows after it (calibration's windows) had as many keys after its
   * end in the whole call: top-k counts them, so the window keeps what it keeps inside the call.
   */
  blockMap(q: HeadTensor, k: HeadTensor, opts: PlanOptions = {}): SlaBlockMap {
    const { topkRatio, BLKQ, BLKK } = this.settings;
    return getBlockMap(q, k, topkRatio, BLKQ, BLKK, { causal: this.causalOf(opts), keysAfter: this.keysAfter(opts) });
  }

  /** Keys of the whole call after this one's: a causal window's rows after it (non-causal calls see every key). */
  keysAfter(opts: PlanOptions): number {
    return this.causalOf(opts) ? opts.rowsAfter ?? 0 : 0;
  }

  planBlockMask(q: HeadTensor, k: HeadTensor, opts: PlanOptions): BlockPlan {
    this.checkProblem(describeAttention(q, k, k, { ...opts, causal: this.causalOf(opts) }));
    return this.planFromMap(this.blockMap(q, k, opts), opts);
  }

  protected planFromMap(map: SlaBlockMap, opts: PlanOptions): BlockPlan {
    const mask = blockMapToMask(map);
    const stats = statsFromMask(this.name, mask, { topk: map.topk, topkRatio: this.settings.topkRatio });
    return { mask, stats: { ...stats, phase: opts.phase ?? phaseOf(map.queryLength) }, blockScores: map.pooledScores };
  }

  /** O = Os + proj(Ol), in q's layout (f32). */
  attention(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions): { output: HeadTensor; plan: BlockPlan } {
    const proj = this.settings.proj;
    const { problem: p, map, sparse: out, linear: ol } = this.runParts(q, k, v, opts, !projectionIsZero(proj));
    if (ol) addProjection(proj, ol, out, p.valueDim, p);
    const output = new HeadTensor({ batch: p.batch, heads: p.heads, length: p.queryLength, headDim: p.valueDim }, out, 'BHLD').toLayout(q.layout);
    return { output, plan: this.planFromMap(map, opts) };
  }

  /**
   * The two parts before the projection, Os and Ol, [B, H, Lq, Dv] f32 BHLD each, from the same
   * block map and causal setting that attention() uses: what a projection is fitted on
   * (calibration/sla-projection-fit.ts).
   */
  parts(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions): { problem: AttentionProblem; sparse: Float32Array; linear: Float32Array } {
    const { problem, sparse, linear } = this.runParts(q, k, v, opts, true);
    return { problem, sparse, linear: linear! };
  }

  private runParts(q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions, withLinear: boolean) {
    const causal = this.causalOf(opts);
    const p = describeAttention(q, k, v, { ...opts, causal });
    this.checkProblem(p);
    checkProjectionSize(this.settings.proj, p.valueDim, p.heads);
    v.assertFinite('v');
    const map = this.blockMap(q, k, opts);
    const qf = bhldF32(q);
    const kf = bhldF32(k);
    const vf = bhldF32(v);
    const sparse = this.sparsePart(p, map, qf, kf, vf);
    const linear = withLinear ? slaLinearPart(p, map, qf, kf, vf, this.settings) : null;
    return { problem: p, map, sparse, linear };
  }

  /** Os [B, H, Lq, Dv] f32 BHLD; SageSLA overrides it with its quantized version. */
  protected sparsePart(p: AttentionProblem, map: SlaBlockMap, q: Float32Array, k: Float32Array, v: Float32Array): Float32Array {
    return slaSparsePart(p, map, floatLogits(p, q, k), v);
  }
}

/** f32 values in BHLD order (no copy when the tensor already is f32 BHLD). */
export function bhldF32(t: HeadTensor): Float32Array {
  return t.toDType('f32').toLayout('BHLD').data as Float32Array;
}
