/**
 * OpenVINO GenAI-shaped configuration of the chunked-prefill engine: `SparseAttentionConfig`
 * (sparse_attention.hpp), `CacheEvictionConfig` (cache-eviction-config.ts) and `SchedulerConfig`
 * (scheduler_config.hpp; fields the engine does not implement are read, validated and refused by the
 * Engine when set away from their defaults). OpenVINO's snake_case JSON form: openvino-json.ts.
 * Field names are OpenVINO's in camelCase; defaults are OpenVINO's. Validated with zod; every error
 * names the field, the value and what was expected (an InvalidArgumentError).
 *
 * Deliberate differences from OpenVINO (docs/engine.md):
 *  - `kvBlockSize` is part of the scheduler config (OpenVINO takes it from the device: 32 CPU, 16 GPU).
 *  - the cache is sized by `numKvBlocks` or `cacheSizeBytes`; OpenVINO's dynamic allocation (both 0)
 *    is not offered, so one of them is required.
 *  - `xattentionThreshold` must be in (0, 1]: OpenVINO overloads 0 as "dense"; we say dense with the
 *    mode (or `useSparseAttention: false`) instead.
 *  - the retained start/recent sizes, and the eviction areas, are checked against the block size at
 *    config time, not when the first chunk is scheduled or the eviction algorithm is built.
 */
import { z } from 'zod';
import { InvalidArgumentError } from '../core/errors.js';
import { type CacheEvictionConfig, cacheEvictionConfigSchema } from './cache-eviction-config.js';

export enum SparseAttentionMode {
  TRISHAPE = 0,
  XATTENTION = 1,
}

const count = (what: string) => z.number({ error: what }).int({ error: what }).min(0, { error: what });
const positive = (what: string) => z.number({ error: what }).int({ error: what }).min(1, { error: what });

const modeSchema = z.union(
  [z.enum(SparseAttentionMode), z.enum(['TRISHAPE', 'XATTENTION']).transform((name) => SparseAttentionMode[name])],
  { error: 'SparseAttentionMode.TRISHAPE (0), SparseAttentionMode.XATTENTION (1), "TRISHAPE" or "XATTENTION"' },
);

const sparseAttentionConfigSchema = z.strictObject({
  mode: modeSchema.default(SparseAttentionMode.TRISHAPE),
  numLastDenseTokensInPrefill: count('an integer >= 0').default(100),
  numRetainedStartTokensInCache: count('an integer >= 0').default(128),
  numRetainedRecentTokensInCache: count('an integer >= 0').default(1920),
  xattentionThreshold: z.number({ error: 'a number in (0, 1]' }).gt(0, { error: 'a number in (0, 1]' }).lte(1, { error: 'a number in (0, 1]' }).default(0.8),
  xattentionBlockSize: positive('an integer >= 1').default(64),
  xattentionStride: positive('an integer >= 1').default(8),
}).superRefine((c, ctx) => {
  if (c.xattentionBlockSize % c.xattentionStride !== 0) {
    ctx.addIssue({ code: 'custom', path: ['xattentionBlockSize'], message: `a multiple of xattentionStride (${c.xattentionStride})` });
  }
});

export type SparseAttentionConfig = z.output<typeof sparseAttentionConfigSchema>;
export type SparseAttentionConfigInput = z.input<typeof sparseAttentionConfigSchema>;

/** KV block sizes OpenVINO uses: 32 tokens on CPU, 16 on GPU. */
export const KV_BLOCK_SIZES = [16, 32] as const;

const schedulerConfigSchema = z.strictObject({
  /** Tokens per step over all sequences (prefill chunks and decode tokens together). */
  maxNumBatchedTokens: positive('an integer >= 1').default(256),
  /** Physical KV blocks in the cache; 0 means "derive from cacheSizeBytes". */
  numKvBlocks: count('an integer >= 0').default(0),
  /** Cache size in bytes (OpenVINO: cache_size in GB), used when numKvBlocks is 0. */
  cacheSizeBytes: count('an integer >= 0').default(0),
  kvBlockSize: z.union(KV_BLOCK_SIZES.map((n) => z.literal(n)), { error: 'one of 16 (GPU) or 32 (CPU)' }).default(32),
  useSparseAttention: z.boolean({ error: 'a boolean' }).default(false),
  sparseAttentionConfig: sparseAttentionConfigSchema.default(() => sparseAttentionConfigSchema.parse({})),
  useCacheEviction: z.boolean({ error: 'a boolean' }).default(false),
  cacheEvictionConfig: cacheEvictionConfigSchema.default(() => cacheEvictionConfigSchema.parse({})),
  /** Only the vLLM-style policy reads it (OpenVINO too); kept so OpenVINO configs load unchanged. */
  maxNumSeqs: positive('an integer >= 1').default(256),
  /** OpenVINO's scheduling policy switch; the engine implements split-fuse (true) only. */
  dynamicSplitFuse: z.boolean({ error: 'a boolean' }).default(true),
  /** Prefix caching is not implemented by the engine (true is refused there). */
  enablePrefixCaching: z.boolean({ error: 'a boolean' }).default(false),
  /** Linear-attention (hybrid SSM) state blocks; our models have no such layers, so it is read and unused. */
  numLinearAttentionBlocks: count('an integer >= 0').default(0),
  /** Linear-attention checkpoint interval multiplier; unset (null) by default, as in OpenVINO. */
  cacheIntervalMultiplier: count('an integer >= 0 or null').nullable().default(null),
}).superRefine((c, ctx) => {
  if (c.numKvBlocks === 0 && c.cacheSizeBytes === 0) {
    ctx.addIssue({ code: 'custom', path: ['numKvBlocks'], message: 'an integer >= 1 when cacheSizeBytes is 0 (dynamic cache growth is not supported)' });
  }
  // SchedulerConfig::validate().
  if (c.enablePrefixCaching && c.cacheIntervalMultiplier === 0) {
    ctx.addIssue({ code: 'custom', path: ['cacheIntervalMultiplier'], message: 'greater than 0 when prefix caching is enabled' });
  }
  // CacheEvictionAlgorithm's constructor: the three areas are whole blocks.
  if (c.useCacheEviction) {
    for (const field of ['startSize', 'recentSize', 'maxCacheSize'] as const) {
      if (c.cacheEvictionConfig[field] % c.kvBlockSize !== 0) {
        ctx.addIssue({ code: 'custom', path: ['cacheEvictionConfig', field], message: `a multiple of the KV block size (${c.kvBlockSize})` });
      }
    }
  }
  const sa = c.sparseAttentionConfig;
  if (sa.mode !== SparseAttentionMode.TRISHAPE) return;
  for (const field of ['numRetainedStartTokensInCache', 'numRetainedRecentTokensInCache'] as const) {
    if (sa[field] % c.kvBlockSize !== 0) {
      ctx.addIssue({ code: 'custom', path: ['sparseAttentionConfig', field], message: `a multiple of the KV block size (${c.kvBlockSize})` });
    }
  }
});

export type SchedulerConfig = z.output<typeof schedulerConfigSchema>;
export type SchedulerConfigInput = z.input<typeof schedulerConfigSchema>;

export function parseSparseAttentionConfig(input: unknown = {}): SparseAttentionConfig {
  return parseOrThrow(sparseAttentionConfigSchema, input, 'SparseAttentionConfig');
}

export function parseCacheEvictionConfig(input: unknown = {}): CacheEvictionConfig {
  return parseOrThrow(cacheEvictionConfigSchema, input, 'CacheEvictionConfig');
}

export function parseSchedulerConfig(input: unknown = {}): SchedulerConfig {
  return parseOrThrow(schedulerConfigSchema, input, 'SchedulerConfig');
}

/** Bytes one KV block takes over all layers: K and V, [Hkv, blockSize, D] f32 each. */
export function kvBlockBytes(numLayers: number, kvHeads: number, headDim: number, blockSize: number): number {
  return numLayers * 2 * kvHeads * blockSize * headDim * Float32Array.BYTES_PER_ELEMENT;
}

/** numKvBlocks, or as many blocks as cacheSizeBytes holds for this model shape. */
export function resolveNumKvBlocks(config: SchedulerConfig, model: { numLayers: number; kvHeads: number; headDim: number }): number {
  if (config.numKvBlocks > 0) return config.numKvBlocks;
  const per = kvBlockBytes(model.numLayers, model.kvHeads, model.headDim, config.kvBlockSize);
  const n = Math.floor(config.cacheSizeBytes / per);
  if (n < 1) throw new InvalidArgumentError('SchedulerConfig.cacheSizeBytes', config.cacheSizeBytes, `at least one KV block (${per} bytes for this model)`);
  return n;
}

function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, prefix: string): z.output<T> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue.path.map(String);
  const at = [prefix, ...path].join('.');
  if (issue.code === 'unrecognized_keys') {
    const known = Object.keys(knownShape(schema, path));
    throw new InvalidArgumentError(`${at} field name`, issue.keys[0], `one of ${known.join(', ')}`);
  }
  throw new InvalidArgumentError(at, valueAt(input, path), issue.message);
}

function valueAt(input: unknown, path: string[]): unknown {
  let v = input;
  for (const key of path) v = v != null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined;
  return v;
}

/** The field table of the (nested) object schema at `path`, for "unknown field" messages. */
function knownShape(schema: z.ZodType, path: string[]): Record<string, unknown> {
  let s: z.ZodType = schema;
  for (const key of path) s = unwrap(s).shape[key] as z.ZodType;
  return unwrap(s).shape;
}

function unwrap(s: z.ZodType): z.ZodObject {
  let cur = s as unknown as { def: { type: string; innerType?: z.ZodType; in?: z.ZodType } };
  while (cur.def.type !== 'object') cur = (cur.def.innerType ?? cur.def.in) as unknown as typeof cur;
  return cur as unknown as z.ZodObject;
}
