/**
 * Benchmark cases: a shape, a dtype, a method with its settings and an input kind. A case knows
 * its FLOPs and its minimum bytes (the napkin math printed beside every timing), and the small
 * twin it is validated on before it is timed. Test shapes double as benchmark cases: the smoke
 * sweep is what the harness test runs.
 *
 * FLOP rule (shared with bench/peers/sdpa.py so TFLOP/s compare across tools):
 *   dense   4·B·H·Lq·Lk·D, halved when causal (QKᵀ and PV, 2 FLOPs per multiply-add)
 *   sparse  dense FLOPs × (visible token pairs in kept blocks / visible token pairs in all blocks)
 * so the dense mask gives exactly the dense figure and a mask keeping half the visible pairs half.
 */
import { BlockMask, type BlockMaskDims } from '../core/block-mask.js';
import { Rng } from '../core/rng.js';
import { InvalidArgumentError, requireInteger } from '../core/errors.js';
import { structuredQKV } from '../core/structured-inputs.js';
import { type DType, HeadTensor } from '../core/tensor.js';
import { sparseMethods } from '../methods/index.js';

/**
 * structured: structuredQKV at its defaults (a sink, a weak local band, retrieval keys; XAttention τ 0.9
 * keeps ~0.9 of the blocks). local: the same with the band at LOCAL_BAND (14, against 3): most of a row's
 * mass within ~100 tokens and the sinks, as local heads at long context; XAttention τ 0.9 (stride 16,
 * block 128, one head, CPU) keeps 0.12 of the blocks at 4K, 0.06 at 8K, 0.03 at 16K, 0.016 at 32K, 0.019
 * at 64K, 0.062 at 128K. The band's strength is a cliff: 13 gave 0.22 at 128K, 15 gave 0.005. random:
 * unit normal.
 */
export const BENCH_INPUTS = ['structured', 'local', 'random'] as const;
export type InputKind = (typeof BENCH_INPUTS)[number];
export const LOCAL_BAND = 14;

/** Dense FLOPs above which the CPU reference would take minutes per call (~1 GFLOP/s in JS); software GPU adapters share the limit. */
export const CPU_MAX_FLOPS = 2e10;

export interface BenchCase {
  method: string;
  settings: Record<string, unknown>;
  batch: number;
  heads: number;
  kvHeads: number;
  queryLength: number;
  keyLength: number;
  headDim: number;
  dtype: DType;
  causal: boolean;
  input: InputKind;
  seed: number;
}

export type CaseSpec = Partial<BenchCase> & Pick<BenchCase, 'method' | 'heads' | 'headDim' | 'queryLength'>;

/** Fills defaults (B=1, MHA, self-attention, f16, causal, structured, seed 1) and checks the shape. */
export function benchCase(spec: CaseSpec): BenchCase {
  const c: BenchCase = {
    settings: {}, batch: 1, kvHeads: spec.heads, keyLength: spec.queryLength, dtype: 'f16', causal: true, input: 'structured', seed: 1,
    ...spec,
  };
  requireInteger('batch', c.batch, 1);
  requireInteger('heads', c.heads, 1);
  requireInteger('kvHeads', c.kvHeads, 1);
  requireInteger('queryLength', c.queryLength, 1);
  requireInteger('keyLength', c.keyLength, 1);
  requireInteger('headDim', c.headDim, 8);
  if (c.heads % c.kvHeads !== 0) throw new InvalidArgumentError('kvHeads', c.kvHeads, `a divisor of heads (${c.heads})`);
  if (c.causal && c.queryLength > c.keyLength) throw new InvalidArgumentError('queryLength', c.queryLength, `at most keyLength (${c.keyLength}) when causal`);
  if (c.dtype !== 'f16' && c.dtype !== 'f32') throw new InvalidArgumentError('dtype', c.dtype, '"f16" or "f32"');
  if (!BENCH_INPUTS.includes(c.input)) throw new InvalidArgumentError('input', c.input, `one of ${BENCH_INPUTS.join(', ')}`);
  return c;
}

/** A stable, readable name: `xattention{tau:0.9} B1 H32/8 L4096 D128 f16 causal structured`. */
export function caseName(c: BenchCase): string {
  const s = Object.keys(c.settings).length ? JSON.stringify(c.settings).replace(/"/g, '') : '';
  const L = c.queryLength === c.keyLength ? `L${c.queryLength}` : `Lq${c.queryLength} Lk${c.keyLength}`;
  const h = c.kvHeads === c.heads ? `H${c.heads}` : `H${c.heads}/${c.kvHeads}`;
  return `${c.method}${s} B${c.batch} ${h} ${L} D${c.headDim} ${c.dtype} ${c.causal ? 'causal' : 'non-causal'} ${c.input}`;
}

/** What two cases share when one is the other's dense baseline: everything but the method. */
export function shapeKey(c: BenchCase): string {
  return JSON.stringify([c.batch, c.heads, c.kvHeads, c.queryLength, c.keyLength, c.headDim, c.dtype, c.causal, c.input, c.seed]);
}

export interface AttentionFlopShape {
  batch: number;
  heads: number;
  queryLength: number;
  keyLength: number;
  headDim: number;
  causal: boolean;
}

/** Dense attention FLOPs of a shape by the FLOP rule above (any object with the shape's fields). */
export function attentionFlops(s: AttentionFlopShape): number {
  const full = 4 * s.batch * s.heads * s.queryLength * s.keyLength * s.headDim;
  return s.causal ? full / 2 : full;
}

export function denseFlops(c: BenchCase): number {
  return attentionFlops(c);
}

/** TFLOP/s of `flops` done in `ms`. */
export const tflopsOf = (flops: number, ms: number): number => flops / (ms * 1e9);

/** Query i may see key j when causal iff j <= (Lk - Lq) + i; counts such pairs in a block (or all of them). */
function visiblePairs(mask: BlockMask, qb: number, kb: number): number {
  const i0 = qb * mask.blockRows;
  const i1 = Math.min(i0 + mask.blockRows, mask.queryLength);
  const j0 = kb * mask.blockCols;
  const j1 = Math.min(j0 + mask.blockCols, mask.keyLength);
  const w = j1 - j0;
  if (!mask.causal) return (i1 - i0) * w;
  // Row i sees clamp(a + i, 0, w) keys of the block, a = queryOffset + 1 - j0; closed form, since
  // a 128K mask has millions of blocks: rows below the ramp see none, rows past it all w.
  const a = mask.queryOffset + 1 - j0;
  const lo = Math.max(i0, 1 - a);
  const hi = Math.min(i1 - 1, w - a - 1);
  const ramp = hi >= lo ? ((hi - lo + 1) * (2 * a + lo + hi)) / 2 : 0;
  const fullRows = Math.max(0, i1 - Math.max(i0, w - a));
  return ramp + w * fullRows;
}

/** Fraction of visible (causally valid) token pairs that the mask's kept blocks cover. */
export function keptPairFraction(mask: BlockMask): number {
  let all = 0;
  for (let qb = 0; qb < mask.numQueryBlocks; qb++) for (let kb = 0; kb < mask.numKeyBlocks; kb++) all += visiblePairs(mask, qb, kb);
  all *= mask.batch * mask.heads;
  let kept = 0;
  for (let r = 0; r < mask.rowPtr.length - 1; r++) {
    const qb = r % mask.numQueryBlocks;
    for (let i = mask.rowPtr[r]; i < mask.rowPtr[r + 1]; i++) kept += visiblePairs(mask, qb, mask.colIdx[i]);
  }
  return all === 0 ? 0 : kept / all;
}

export function sparseFlops(c: BenchCase, mask: BlockMask): number {
  return denseFlops(c) * keptPairFraction(mask);
}

/** Napkin minimum: Q, K, V read once and O written once (the mask and any re-reads excluded). */
export function minBytes(c: BenchCase): number {
  const el = c.dtype === 'f16' ? 2 : 4;
  return el * c.batch * c.headDim * (2 * c.heads * c.queryLength + 2 * c.kvHeads * c.keyLength);
}

/** Seeded inputs for a case: structured or local (sink, band, retrieval: sparsity is real) or unit normal. */
export function caseInputs(c: BenchCase): { q: HeadTensor; k: HeadTensor; v: HeadTensor } {
  let qkv: { q: HeadTensor; k: HeadTensor; v: HeadTensor };
  if (c.input === 'structured' || c.input === 'local') {
    qkv = structuredQKV({
      batch: c.batch, heads: c.heads, kvHeads: c.kvHeads, length: c.keyLength, queryLength: c.queryLength, headDim: c.headDim, seed: c.seed,
      ...(c.input === 'local' ? { band: LOCAL_BAND } : {}),
    });
  } else {
    const kv = { batch: c.batch, heads: c.kvHeads, length: c.keyLength, headDim: c.headDim };
    qkv = {
      q: HeadTensor.randn({ batch: c.batch, heads: c.heads, length: c.queryLength, headDim: c.headDim }, c.seed),
      k: HeadTensor.randn(kv, c.seed + 1),
      v: HeadTensor.randn(kv, c.seed + 2),
    };
  }
  return { q: qkv.q.toDType(c.dtype), k: qkv.k.toDType(c.dtype), v: qkv.v.toDType(c.dtype) };
}

/**
 * The small twin a case is validated on: same method, settings, dtype, causality, input kind and
 * GQA ratio, at a length that is not a multiple of any block (197) and at most 4 query heads.
 */
export function validationTwin(c: BenchCase, length = 197): BenchCase {
  const group = c.heads / c.kvHeads;
  const heads = Math.max(group, Math.min(c.heads, 4));
  const L = Math.min(length, c.keyLength);
  return { ...c, batch: 1, heads, kvHeads: heads / group, keyLength: L, queryLength: Math.min(c.queryLength, L) };
}

/**
 * Rough FLOPs of planning the case's mask with the method's CPU planBlockMask, from its descriptor
 * (XAttention: QKᵀ / stride; flash-skip-softmax: every QKᵀ tile; static patterns: none): what
 * decides whether a long-context run must plan on the target instead.
 */
export function cpuPlanFlops(c: BenchCase): number {
  if (!sparseMethods.has(c.method)) return 0;
  return sparseMethods.descriptor(c.method).bench?.planFlops?.(denseFlops(c) / 2, c.settings) ?? 0;
}

/**
 * A seeded random causal block mask for kernel benchmarks: block 0 (the sink) and the diagonal block
 * of each query block are kept, every other causally valid block with probability `density`
 * (queries and keys aligned, Lq = Lk).
 */
export function randomCausalBlockMask(dims: BlockMaskDims, density: number, seed: number): BlockMask {
  const rng = new Rng(seed);
  return BlockMask.fromPredicate(dims, (_b, _h, qb, kb) => {
    const diag = Math.floor((qb * dims.blockRows) / dims.blockCols);
    if (kb > diag) return false;
    return kb === 0 || kb === diag || rng.next() < density;
  });
}
