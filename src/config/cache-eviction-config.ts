/**
 * OpenVINO GenAI's `CacheEvictionConfig` (cache_eviction.hpp) with its `KVCrushConfig` and
 * `AdaptiveRKVConfig`, in camelCase; defaults are the header's (a default-constructed config: start
 * 32, recent 128, max 672 tokens, NORM_SUM, no rotation, SnapKV window 8, KVCrush off, Adaptive R-KV
 * mass 0.9 over 8 scores). Validation is the constructor's (every size non-zero, max larger than start
 * + recent); the block-size multiples OpenVINO checks when it builds the algorithm are checked with
 * the scheduler config that knows the block size (openvino.ts).
 */
import { z } from 'zod';

export enum AggregationMode {
  /** Importance = scores summed over every step a token has been in the cache. */
  SUM = 0,
  /** SUM divided by the number of steps the token has been scored in (its lifetime). */
  NORM_SUM = 1,
  /** Adaptive R-KV: keep the blocks holding most of the recent attention mass, fill up with the most diverse. */
  ADAPTIVE_RKV = 2,
}

export enum KVCrushAnchorPointMode {
  RANDOM = 0,
  ZEROS = 1,
  ONES = 2,
  MEAN = 3,
  ALTERNATING = 4,
}

const enumByNumberOrName = <E extends Record<string, string | number>>(e: E, what: string) => {
  const names = Object.keys(e).filter((k) => Number.isNaN(Number(k)));
  const error = `${names.map((n) => `"${n}"`).join(', ')} or its number`;
  return z.union([z.enum(e), z.enum(names as [string, ...string[]]).transform((n) => e[n] as E[keyof E])], { error: `one of ${error} (${what})` });
};

const nonZero = (what: string) => z.number({ error: what }).int({ error: what }).min(1, { error: what });
const count = (what: string) => z.number({ error: what }).int({ error: what }).min(0, { error: what });

export const kvCrushConfigSchema = z.strictObject({
  /** Blocks KVCrush keeps among those the scores would evict; 0 turns KVCrush off. */
  budget: count('an integer >= 0').default(0),
  anchorPointMode: enumByNumberOrName(KVCrushAnchorPointMode, 'KVCrushAnchorPointMode').default(KVCrushAnchorPointMode.RANDOM),
  rngSeed: count('an integer >= 0').default(0),
});

export const adaptiveRkvConfigSchema = z.strictObject({
  /** Share of the evictable area's attention mass the kept high-score blocks must reach. */
  attentionMass: z.number({ error: 'a number in [0, 1]' }).min(0, { error: 'a number in [0, 1]' }).max(1, { error: 'a number in [0, 1]' }).default(0.9),
  /** Number of latest score vectors averaged. */
  windowSize: nonZero('an integer >= 1').default(8),
});

export const cacheEvictionConfigSchema = z.strictObject({
  /** Tokens at the beginning of the cache that are never evicted. */
  startSize: nonZero('an integer >= 1 (OpenVINO: "must be non-zero")').default(32),
  /** Most recent tokens that are not evicted yet. */
  recentSize: nonZero('an integer >= 1 (OpenVINO: "must be non-zero")').default(128),
  /** Cache tokens a sequence may keep after each eviction (plus up to one partly filled block). */
  maxCacheSize: nonZero('an integer >= 1 (OpenVINO: "must be non-zero")').default(672),
  aggregationMode: enumByNumberOrName(AggregationMode, 'AggregationMode').default(AggregationMode.NORM_SUM),
  /** Re-rotate the RoPE of the kept keys so their positions are contiguous again after an eviction. */
  applyRotation: z.boolean({ error: 'a boolean' }).default(false),
  /** Last prompt positions whose attention scores seed the importance (SnapKV); 0: every prompt position. */
  snapkvWindowSize: count('an integer >= 0').default(8),
  kvcrushConfig: kvCrushConfigSchema.default(() => kvCrushConfigSchema.parse({})),
  adaptiveRkvConfig: adaptiveRkvConfigSchema.default(() => adaptiveRkvConfigSchema.parse({})),
}).superRefine((c, ctx) => {
  if (c.maxCacheSize <= c.startSize + c.recentSize) {
    ctx.addIssue({ code: 'custom', path: ['maxCacheSize'], message: `larger than startSize + recentSize (${c.startSize} + ${c.recentSize})` });
  }
});

export type CacheEvictionConfig = z.output<typeof cacheEvictionConfigSchema>;
export type CacheEvictionConfigInput = z.input<typeof cacheEvictionConfigSchema>;

/** Tokens between the start and recent areas that an eviction step keeps (OpenVINO's get_evictable_size). */
export function evictableSize(c: Pick<CacheEvictionConfig, 'startSize' | 'recentSize' | 'maxCacheSize'>): number {
  return c.maxCacheSize - c.startSize - c.recentSize;
}
