/**
 * Tri-shape (MInference / SCBench, spec trishape.md part A): a static causal pattern on one
 * attention call. Every query row sees the first `sinkTokens` keys and a sliding window of
 * `localWindow` keys ending at itself (the "A-shape"); the last `lastDenseQueries` rows
 * (clamped to Lq - 1) see every causal key. Decode (Lq = 1) and calls with Lk <= localWindow are
 * dense. Queries shorter than keys are right-aligned (query i sits at key position Lk - Lq + i).
 *
 * Block form: keep every br×bc block that holds at least one visible token, and attach the
 * token rule so kernels mask inside kept blocks; block-sparse attention with this mask equals
 * dense attention with the token mask exactly.
 *
 * The chunked paged-KV form (spec part B, OpenVINO GenAI TRISHAPE) is the engine's business.
 */
import { describeAttention } from '../../core/attention-shape.js';
import { BlockMask, type BlockMaskDims, blockCausallyValid } from '../../core/block-mask.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { checkScores, type Scores } from '../../core/scores.js';
import { phaseOf, statsFromMask } from '../../core/stats.js';
import type { HeadTensor } from '../../core/tensor.js';
import { type TriShapeTokenRule, tokenRuleVisible } from '../../core/token-rule.js';
import { type BlockPlan, maskScores, type PlanOptions, type SparseAttentionMethod, type SparsityResult, type ThresholdInfo } from '../method.js';
import { blockSizeSettings } from '../settings.js';

export interface TriShapeSettings {
  /** Keys j < sinkTokens are visible to every query (n_init). Default 128. */
  sinkTokens: number;
  /** Keys with p - localWindow < j <= p are visible to the query at position p (n_local). Default 3968. */
  localWindow: number;
  /** The last rows that attend densely (n_last), clamped to Lq - 1. Default 100. */
  lastDenseQueries: number;
  /** Query block size. Default 128. */
  br: number;
  /** Key block size. Default 128. */
  bc: number;
}

export const TRI_SHAPE_DEFAULTS: Readonly<TriShapeSettings> = { sinkTokens: 128, localWindow: 3968, lastDenseQueries: 100, br: 128, bc: 128 };

const KNOWN = new Set(Object.keys(TRI_SHAPE_DEFAULTS));

export function triShapeSettings(settings: Record<string, unknown> = {}): TriShapeSettings {
  for (const key of Object.keys(settings)) {
    if (!KNOWN.has(key)) throw new InvalidArgumentError('tri_shape setting', key, `one of ${[...KNOWN].join(', ')}`);
  }
  const int = (field: 'sinkTokens' | 'localWindow' | 'lastDenseQueries', min: number): number => {
    const v = settings[field] ?? TRI_SHAPE_DEFAULTS[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new InvalidArgumentError(`tri_shape.${field}`, v, `an integer >= ${min}`);
    return v;
  };
  return {
    sinkTokens: int('sinkTokens', 0),
    // A window of 0 would hide a query's own key; 1 is the smallest meaningful window (self only).
    localWindow: int('localWindow', 1),
    lastDenseQueries: int('lastDenseQueries', 0),
    ...blockSizeSettings('tri_shape', settings, TRI_SHAPE_DEFAULTS),
  };
}

/** The token rule the block mask carries; kernels evaluate it inside kept blocks. */
export function triShapeTokenRule(s: Pick<TriShapeSettings, 'sinkTokens' | 'localWindow' | 'lastDenseQueries'>): TriShapeTokenRule {
  return { kind: 'trishape', sinkTokens: s.sinkTokens, localWindow: s.localWindow, lastDenseQueries: s.lastDenseQueries };
}

/**
 * The last dense query rows of one call, or 'dense' when every row of it is dense (planned as dense
 * attention). A window cut from a longer call (rowsAfter, calibration) counts that call's rows after
 * it and keeps its own first row sparse. A chunk of a prompt prefilled in pieces (promptRowsAfter)
 * takes its share of the whole prompt's last min(lastDenseQueries, N - 1) rows, N = keyLength +
 * rowsAfter + promptRowsAfter, so that the chunks plan what one call over the prompt would: chunks before that
 * tail have no dense rows (one per chunk cost a whole-context row each, the longest workgroup of a
 * chunk's call at long contexts), a chunk wholly inside it is dense.
 */
export function triShapeDenseRows(s: Pick<TriShapeSettings, 'lastDenseQueries'>, queryLength: number, keyLength: number, opts: Pick<PlanOptions, 'rowsAfter' | 'promptRowsAfter'> = {}): number | 'dense' {
  const windowRows = Math.max(0, s.lastDenseQueries - (opts.rowsAfter ?? 0));
  if (opts.promptRowsAfter === undefined) return windowRows;
  // Rows of the prompt after this call's: the window's rest of its call (rowsAfter), then later chunks.
  const after = opts.promptRowsAfter + (opts.rowsAfter ?? 0);
  const here = Math.min(s.lastDenseQueries, keyLength + after - 1) - after;
  if (here >= queryLength) return 'dense';
  return Math.max(0, here);
}

/** Whether the whole call is dense under tri-shape: decode, or every key inside the window. */
export function triShapeIsDense(s: Pick<TriShapeSettings, 'localWindow'>, queryLength: number, keyLength: number): boolean {
  return queryLength === 1 || keyLength <= s.localWindow;
}

/**
 * The causal tri-shape block mask over (Lq × Lk): block (qb, kb) is kept iff it holds a token the
 * token pattern shows. Same mask for every (batch, head); the token rule is attached.
 */
export function triShapeBlockMask(dims: Omit<BlockMaskDims, 'causal'>, s: Pick<TriShapeSettings, 'sinkTokens' | 'localWindow' | 'lastDenseQueries'>): BlockMask {
  const full = { ...dims, causal: true };
  const rule = triShapeTokenRule(s);
  const { queryLength: Lq, keyLength: Lk, blockRows: br, blockCols: bc } = dims;
  if (Lq > Lk) throw new InvalidArgumentError('queryLength', Lq, `at most keyLength (${Lk}) for causal tri-shape`);
  if (triShapeIsDense(s, Lq, Lk)) return BlockMask.full(full);
  const off = Lk - Lq;
  const firstDenseRow = Lq - Math.min(s.lastDenseQueries, Lq - 1);
  const keep = (qb: number, kb: number): boolean => {
    if (!blockCausallyValid(full, qb, kb)) return false;
    const i0 = qb * br;
    const i1 = Math.min(i0 + br, Lq) - 1; // last row of the block
    if (i1 >= firstDenseRow) return true; // a dense row sees every causally valid block
    const j0 = kb * bc;
    const j1 = Math.min(j0 + bc, Lk) - 1;
    // Sink: key j0 is visible to the block's last row (causally valid) when j0 < sinkTokens.
    if (j0 < s.sinkTokens) return true;
    // Windows of consecutive rows overlap into one range (off + i0 - W, off + i1].
    return j1 > off + i0 - s.localWindow && j0 <= off + i1;
  };
  return BlockMask.fromPredicate(full, (_b, _h, qb, kb) => keep(qb, kb), rule);
}

export class TriShapeMethod implements SparseAttentionMethod {
  static readonly description = 'tri-shape: sink + sliding window, last queries dense (static, causal only)';
  readonly name = 'tri_shape';
  readonly version = 'v1';
  /** Tri-shape is defined for causal attention only, so a call that leaves causal out means causal. */
  readonly defaultCausal = true;
  readonly settings: TriShapeSettings;

  constructor(settings: Record<string, unknown> = {}) {
    this.settings = triShapeSettings(settings);
  }

  /**
   * Token mask [B, H, Lq, Lk] of the pattern on the given scores, which tri-shape treats as causal
   * (queries right-aligned); entries already -Infinity stay masked. Stats count br×bc blocks.
   */
  calculateSparsity(scores: Scores): SparsityResult {
    checkScores(scores);
    const { batch, heads, queryLength: Lq, keyLength: Lk } = scores;
    const blocks = triShapeBlockMask({ batch, heads, queryLength: Lq, keyLength: Lk, blockRows: this.settings.br, blockCols: this.settings.bc }, this.settings);
    const rule = triShapeTokenRule(this.settings);
    const off = Lk - Lq;
    const mask = new Uint8Array(scores.data.length);
    for (let bh = 0; bh < batch * heads; bh++)
      for (let i = 0; i < Lq; i++)
        for (let j = 0; j <= Math.min(off + i, Lk - 1); j++) {
          const at = (bh * Lq + i) * Lk + j;
          mask[at] = scores.data[at] !== -Infinity && tokenRuleVisible(rule, i, j, Lq, off) ? 1 : 0;
        }
    return { mask, stats: statsFromMask(this.name, blocks) };
  }

  applySparsity(scores: Scores, mask?: Uint8Array): Scores {
    return maskScores(scores, mask ?? this.calculateSparsity(scores).mask);
  }

  getThresholdInfo(): ThresholdInfo {
    const { sinkTokens, localWindow, lastDenseQueries } = this.settings;
    return { type: 'static', sinkTokens, localWindow, lastDenseQueries };
  }

  planBlockMask(q: HeadTensor, k: HeadTensor, opts: PlanOptions): BlockPlan {
    const p = describeAttention(q, k, k, { ...opts, causal: opts.causal ?? this.defaultCausal });
    if (!p.causal) throw new InvalidArgumentError('causal', opts.causal, 'true: tri-shape is defined for causal attention only');
    // The pattern is static, but a plan for NaN inputs would promise an output there is none of.
    q.assertFinite('q');
    k.assertFinite('k');
    for (const f of ['rowsAfter', 'promptRowsAfter'] as const) {
      const n = opts[f];
      if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new InvalidArgumentError(f, n, 'a non-negative integer');
    }
    // Of the whole call's (or prompt's) last dense rows, those that fall in this one.
    const rows = triShapeDenseRows(this.settings, p.queryLength, p.keyLength, opts);
    const dims = { batch: p.batch, heads: p.heads, queryLength: p.queryLength, keyLength: p.keyLength, blockRows: this.settings.br, blockCols: this.settings.bc };
    const mask = rows === 'dense' ? BlockMask.full({ ...dims, causal: true }) : triShapeBlockMask(dims, { ...this.settings, lastDenseQueries: rows });
    return { mask, stats: { ...statsFromMask(this.name, mask), phase: opts.phase ?? phaseOf(p.queryLength) } };
  }
}
