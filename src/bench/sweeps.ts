/**
 * Named case lists. `issue8` is the long-context sweep the README figures come from (B=1, H=32 and
 * GQA 32/8, D=128, L = 4K..128K); `smoke` is the same menu at tiny, awkward sizes, which the
 * harness test runs on the CPU backend and CI can afford; `h100` is the long menu cut to one
 * 10-minute device call. Every list is derived from the registered methods' descriptors.
 */
import { sparseMethods } from '../methods/index.js';
import type { BenchVariant } from '../methods/descriptor.js';
import { type BenchCase, benchCase, type InputKind } from './cases.js';

export interface MethodVariant extends BenchVariant {
  method: string;
  /** Longest length this variant runs at in the sweep (device time); unset: every length. */
  maxLength?: number;
}

/**
 * The long-context menu, from every registered method's descriptor (newest version): its bench
 * sweep variants, or the method at its defaults, causal, when the descriptor names none. Today:
 * dense (causal and not), XAttention (tau 0.8/0.9, S 8/16, block 64/128), tri-shape,
 * flash-skip-softmax, SLA (non-causal).
 */
export function menuVariants(): MethodVariant[] {
  return causalFirst(sparseMethods.descriptors().flatMap((d) => (d.bench?.sweep ?? [{ settings: {}, causal: true }]).map((v) => ({ method: d.name, ...v }))));
}

/** The tiny variants of every registered method's descriptor (the smoke sweep). */
export function smokeVariants(): MethodVariant[] {
  return causalFirst(sparseMethods.descriptors().flatMap((d) => (d.bench?.smoke ?? []).map((v) => ({ method: d.name, ...v }))));
}

/** Causal variants, then non-causal ones (each in method order), so a sweep's records group by causality. */
function causalFirst(variants: MethodVariant[]): MethodVariant[] {
  return [...variants.filter((v) => v.causal), ...variants.filter((v) => !v.causal)];
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
  return expand(menuVariants(), {
    lengths: o.lengths ?? [4096, 8192, 16384, 32768, 65536, 131072],
    heads: o.heads ?? 32, kvHeads: o.kvHeads ?? [32, 8], headDim: o.headDim ?? 128, dtype: o.dtype ?? 'f16',
    inputs: o.inputs ?? ['structured', 'random'], methods: o.methods ?? [],
  });
}

/** Tiny shapes that exercise every path: lengths off the block grid, GQA, both dtypes' rounding. */
export function smokeSweep(o: SweepOptions = {}): BenchCase[] {
  return expand(smokeVariants(), {
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
  const variants = menuVariants().map((v): MethodVariant => ({ ...v, maxLength: v.oneCallMaxLength }));
  return expand(variants, {
    lengths: o.lengths ?? [4096, 8192, 16384, 32768, 65536, 131072],
    heads: o.heads ?? 32, kvHeads: o.kvHeads ?? [8], headDim: o.headDim ?? 128, dtype: o.dtype ?? 'f16',
    inputs: o.inputs ?? ['structured'], methods: o.methods ?? [],
  });
}

export const SWEEPS: Record<string, (o?: SweepOptions) => BenchCase[]> = { issue8: issue8Sweep, h100: h100Sweep, smoke: smokeSweep };
