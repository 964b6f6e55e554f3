/**
 * The shape of one attention call, checked once: every kernel and method takes an
 * `AttentionProblem` instead of re-deriving GQA groups and query offsets on its own.
 *
 * Queries shorter than keys are right-aligned: query i sits at key position `queryOffset + i`
 * with `queryOffset = Lk - Lq` (a prefill chunk after cached tokens, or decode with Lq = 1).
 */
import { InvalidArgumentError } from './errors.js';
import { optionalBoolean } from './validate.js';
import type { HeadTensor, HeadTensorShape } from './tensor.js';

type TensorDims = Pick<HeadTensorShape, 'batch' | 'heads' | 'length' | 'headDim'>;

export interface AttentionOptions {
  /** Causal mask (key j visible to query i iff j <= queryOffset + i). Default false. */
  causal?: boolean;
  /** Softmax scale; default 1/sqrt(headDim). */
  scale?: number;
}

export interface AttentionProblem {
  batch: number;
  heads: number;
  kvHeads: number;
  /** heads / kvHeads: query head h reads KV head floor(h / groupSize). */
  groupSize: number;
  queryLength: number;
  keyLength: number;
  headDim: number;
  valueDim: number;
  causal: boolean;
  scale: number;
  queryOffset: number;
}

/** k and v are read for their shape only (so GPU views of resident keys can be described too). */
export function describeAttention(q: HeadTensor, k: TensorDims, v: TensorDims, opts: AttentionOptions = {}): AttentionProblem {
  if (k.batch !== q.batch) throw new InvalidArgumentError('k.batch', k.batch, `equal to q.batch (${q.batch})`);
  if (v.batch !== q.batch) throw new InvalidArgumentError('v.batch', v.batch, `equal to q.batch (${q.batch})`);
  if (k.headDim !== q.headDim) throw new InvalidArgumentError('k.headDim', k.headDim, `equal to q.headDim (${q.headDim})`);
  if (v.heads !== k.heads) throw new InvalidArgumentError('v.heads', v.heads, `equal to k.heads (${k.heads})`);
  if (v.length !== k.length) throw new InvalidArgumentError('v.length', v.length, `equal to k.length (${k.length})`);
  if (q.heads % k.heads !== 0) {
    throw new InvalidArgumentError('k.heads (KV heads)', k.heads, `a divisor of q.heads (${q.heads}) for grouped-query attention`);
  }
  if (q.length < 1) throw new InvalidArgumentError('q.length', q.length, 'at least 1');
  if (k.length < 1) throw new InvalidArgumentError('k.length', k.length, 'at least 1');
  const causal = optionalBoolean('causal', opts.causal) ?? false;
  if (causal && q.length > k.length) {
    throw new InvalidArgumentError('q.length', q.length, `at most k.length (${k.length}) for causal attention (queries are right-aligned to keys)`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(q.headDim);
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0) throw new InvalidArgumentError('scale', scale, 'a finite number > 0');
  return {
    batch: q.batch,
    heads: q.heads,
    kvHeads: k.heads,
    groupSize: q.heads / k.heads,
    queryLength: q.length,
    keyLength: k.length,
    headDim: q.headDim,
    valueDim: v.headDim,
    causal,
    scale,
    queryOffset: k.length - q.length,
  };
}

/** Dense causal FLOPs counted the usual way (QKᵀ and PV, halved when causal). */
export function attentionFlops(p: AttentionProblem): number {
  const full = 2 * p.batch * p.heads * p.queryLength * p.keyLength * (p.headDim + p.valueDim);
  return p.causal ? full / 2 : full;
}
