/**
 * Named case lists. `issue8` is the long-context sweep the README figures come from (B=1, H=32 and
 * GQA 32/8, D=128, L = 4K..128K); `smoke` is the same menu at tiny, awkward sizes, which the
 * harness test runs on the CPU backend and CI can afford. Methods not registered in this build
 * stay in the list and are reported as skipped with that reason.
 */
import { type BenchCase, benchCase, type InputKind } from './cases.js';

export interface MethodVariant {
  method: string;
  settings: Record<string, unknown>;
  /** SLA is a video (bidirectional) method: run only non-causal. Others: causal only. */
  causal: boolean;
  /** Longest length this variant runs at in the sweep (device time); unset: every length. */
  maxLength?: number;
}

/** The method menu of issue 8: dense, XAttention (tau 0.8/0.9, S 8/16, block 64/128), tri-shape, flash-skip-softmax, SLA. */
export function issue8Methods(): MethodVariant[] {
  const out: MethodVariant[] = [{ method: 'dense', settings: {}, causal: true }];
  for (const threshold of [0.8, 0.9])
    for (const stride of [8, 16])
      for (const blockSize of [64, 128]) out.push({ method: 'xattention', settings: { threshold, stride, blockSize }, causal: true });
  out.push({ method: 'tri_shape', settings: {}, causal: true });
  out.push({ method: 'flash_skip_softmax', settings: {}, causal: true });
  out.push({ method: 'dense', settings: {}, causal: false });
  out.push({ method: 'sla', settings: {}, causal: false });
  return out;
}

export interface SweepOptions {
  lengths?: number[];
  heads?: number;
  kvHeads?: number[];
  headDim?: number;
  dtype?: 'f16' | 'f32';
  inputs?: InputKind[];
  /** Keep only these method names. */
  methods?: string[];
}

function expand(variants: MethodVariant[], o: Required<SweepOptions>): BenchCase[] {
  const cases: BenchCase[] = [];
  for (const input of o.inputs)
    for (const kvHeads of o.kvHeads)
      for (const L of o.lengths)
        for (const v of variants) {
          if (o.methods.length && !o.methods.includes(v.method)) continue;
          if (v.maxLength !== undefined && L > v.maxLength) continue;
          cases.push(benchCase({
            method: v.method, settings: v.settings, heads: o.heads, kvHeads, headDim: o.headDim,
            queryLength: L, keyLength: L, dtype: o.dtype, causal: v.causal, input,
          }));
        }
  return cases;
}

export function issue8Sweep(o: SweepOptions = {}): BenchCase[] {
  return expand(issue8Methods(), {
    lengths: o.lengths ?? [4096, 8192, 16384, 32768, 65536, 131072],
    heads: o.heads ?? 32, kvHeads: o.kvHeads ?? [32, 8], headDim: o.headDim ?? 128, dtype: o.dtype ?? 'f16',
    inputs: o.inputs ?? ['structured', 'random'], methods: o.methods ?? [],
  });
}

/** Tiny shapes that exercise every path: lengths off the block grid, GQA, both dtypes' rounding. */
export function smokeSweep(o: SweepOptions = {}): BenchCase[] {
  const small: MethodVariant[] = [
    { method: 'dense', settings: { br: 32, bc: 32 }, causal: true },
    { method: 'xattention', settings: { threshold: 0.9, stride: 8, blockSize: 32 }, causal: true },
    { method: 'tri_shape', settings: { sinkTokens: 16, localWindow: 64, lastDenseQueries: 8, br: 32, bc: 32 }, causal: true },
    { method: 'dense', settings: { br: 32, bc: 32 }, causal: false },
  ];
  return expand(small, {
    lengths: o.lengths ?? [200], heads: o.heads ?? 4, kvHeads: o.kvHeads ?? [4, 2], headDim: o.headDim ?? 32,
    dtype: o.dtype ?? 'f32', inputs: o.inputs ?? ['structured'], methods: o.methods ?? [],
  });
}

/**
 * The issue-8 menu cut to one 10-minute device call on the H100 (GQA 32/8, structured inputs):
 * dense, XAttention (tau 0.9, S 16, block 128), tri-shape at every length to 128K; the other
 * XAttention settings to 16K; flash-skip-softmax (its in-loop kernel is the portable one) to 32K;
 * non-causal dense and SLA to 16K. At 128K one input set takes ~40 s to build in JS.
 */
export function h100Sweep(o: SweepOptions = {}): BenchCase[] {
  const variants = issue8Methods().map((v): MethodVariant => {
    if (v.method === 'xattention') {
      const s = v.settings as { threshold: number; stride: number; blockSize: number };
      const headline = s.threshold === 0.9 && s.stride === 16 && s.blockSize === 128;
      return headline ? v : { ...v, maxLength: 16384 };
    }
    if (v.method === 'flash_skip_softmax') return { ...v, maxLength: 32768 };
    if (!v.causal) return { ...v, maxLength: 16384 };
    return v;
  });
  return expand(variants, {
    lengths: o.lengths ?? [4096, 8192, 16384, 32768, 65536, 131072],
    heads: o.heads ?? 32, kvHeads: o.kvHeads ?? [8], headDim: o.headDim ?? 128, dtype: o.dtype ?? 'f16',
    inputs: o.inputs ?? ['structured'], methods: o.methods ?? [],
  });
}

export const SWEEPS: Record<string, (o?: SweepOptions) => BenchCase[]> = { issue8: issue8Sweep, h100: h100Sweep, smoke: smokeSweep };
