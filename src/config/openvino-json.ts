/**
 * OpenVINO GenAI's JSON form of the scheduler config: the snake_case field names of its headers
 * (scheduler_config.hpp, sparse_attention.hpp, cache_eviction.hpp), enums by name, nested objects for
 * the sub-configs, as in tools/llm_bench/prompts/scheduler_config.json:
 *
 *   const cfg = loadSchedulerConfigJson(fs.readFileSync('scheduler_config.json', 'utf8'));
 *   fs.writeFileSync('out.json', JSON.stringify(schedulerConfigToJson(cfg), null, 2));
 *
 * Loading follows llm_bench's get_scheduler_config_genai, the one JSON reader OpenVINO GenAI ships: a
 * `cache_eviction_config` block turns eviction on unless `use_cache_eviction` says otherwise, and a
 * `sparse_attention_config` block turns sparse attention on (with `use_sparse_attention: false` it is
 * an error). `cache_size` is in GiB, as in OpenVINO; `kv_block_size` is ours (OpenVINO asks the device).
 */
import { InvalidArgumentError } from '../core/errors.js';
import { AggregationMode, KVCrushAnchorPointMode } from './cache-eviction-config.js';
import { parseSchedulerConfig, type SchedulerConfig, SparseAttentionMode } from './openvino.js';

type FieldTable = Readonly<Record<string, string>>;

const SPARSE_FIELDS: FieldTable = {
  mode: 'mode', num_last_dense_tokens_in_prefill: 'numLastDenseTokensInPrefill', num_retained_start_tokens_in_cache: 'numRetainedStartTokensInCache',
  num_retained_recent_tokens_in_cache: 'numRetainedRecentTokensInCache', xattention_threshold: 'xattentionThreshold',
  xattention_block_size: 'xattentionBlockSize', xattention_stride: 'xattentionStride',
};
const KVCRUSH_FIELDS: FieldTable = { budget: 'budget', anchor_point_mode: 'anchorPointMode', rng_seed: 'rngSeed' };
const ARKV_FIELDS: FieldTable = { attention_mass: 'attentionMass', window_size: 'windowSize' };
const EVICTION_FIELDS: FieldTable = {
  start_size: 'startSize', recent_size: 'recentSize', max_cache_size: 'maxCacheSize', aggregation_mode: 'aggregationMode',
  apply_rotation: 'applyRotation', snapkv_window_size: 'snapkvWindowSize', kvcrush_config: 'kvcrushConfig', adaptive_rkv_config: 'adaptiveRkvConfig',
};
const SCHEDULER_FIELDS: FieldTable = {
  max_num_batched_tokens: 'maxNumBatchedTokens', num_kv_blocks: 'numKvBlocks', cache_size: 'cacheSizeBytes',
  num_linear_attention_blocks: 'numLinearAttentionBlocks', cache_interval_multiplier: 'cacheIntervalMultiplier',
  dynamic_split_fuse: 'dynamicSplitFuse', use_cache_eviction: 'useCacheEviction', cache_eviction_config: 'cacheEvictionConfig',
  max_num_seqs: 'maxNumSeqs', enable_prefix_caching: 'enablePrefixCaching', use_sparse_attention: 'useSparseAttention',
  sparse_attention_config: 'sparseAttentionConfig', kv_block_size: 'kvBlockSize',
};
const NESTED: Readonly<Record<string, FieldTable>> = {
  cache_eviction_config: EVICTION_FIELDS, sparse_attention_config: SPARSE_FIELDS, kvcrush_config: KVCRUSH_FIELDS, adaptive_rkv_config: ARKV_FIELDS,
};

const GIB = 2 ** 30;

/** A SchedulerConfig from OpenVINO's JSON (text or parsed object); validated like parseSchedulerConfig. */
export function loadSchedulerConfigJson(json: string | Record<string, unknown>): SchedulerConfig {
  let obj: unknown = json;
  if (typeof json === 'string') {
    try {
      obj = JSON.parse(json);
    } catch (err) {
      throw new InvalidArgumentError('scheduler config JSON', json.length > 80 ? `${json.slice(0, 77)}...` : json, `valid JSON (${(err as Error).message})`);
    }
  }
  const input = renamed(obj, SCHEDULER_FIELDS, 'SchedulerConfig');
  if (typeof input.cacheSizeBytes === 'number') input.cacheSizeBytes *= GIB;
  if (input.cacheEvictionConfig !== undefined && input.useCacheEviction === undefined) input.useCacheEviction = true;
  if (input.sparseAttentionConfig !== undefined) {
    if (input.useSparseAttention === false) throw new InvalidArgumentError('SchedulerConfig.use_sparse_attention', false, 'true or absent when sparse_attention_config is given (as llm_bench requires)');
    input.useSparseAttention = true;
  }
  try {
    return parseSchedulerConfig(input);
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    throw new InvalidArgumentError(snakePath(err.parameter), err.value, err.expected);
  }
}

const SNAKE: Readonly<Record<string, string>> = Object.fromEntries(
  [SCHEDULER_FIELDS, SPARSE_FIELDS, KVCRUSH_FIELDS, ARKV_FIELDS, EVICTION_FIELDS].flatMap((t) => Object.entries(t).map(([snake, camel]) => [camel, snake])),
);

/** "SchedulerConfig.cacheEvictionConfig.startSize" → "SchedulerConfig.cache_eviction_config.start_size". */
function snakePath(parameter: string): string {
  return parameter.split('.').map((seg) => SNAKE[seg] ?? seg).join('.');
}

/** Every field of a parsed config in OpenVINO's JSON form (enums by name, cache_size in GiB). */
export function schedulerConfigToJson(c: SchedulerConfig): Record<string, unknown> {
  if (c.cacheSizeBytes % GIB !== 0) throw new InvalidArgumentError('SchedulerConfig.cacheSizeBytes', c.cacheSizeBytes, 'a whole number of GiB to be written as OpenVINO\'s cache_size (GB)');
  const e = c.cacheEvictionConfig;
  const sa = c.sparseAttentionConfig;
  return {
    max_num_batched_tokens: c.maxNumBatchedTokens, num_kv_blocks: c.numKvBlocks, cache_size: c.cacheSizeBytes / GIB,
    num_linear_attention_blocks: c.numLinearAttentionBlocks, cache_interval_multiplier: c.cacheIntervalMultiplier,
    dynamic_split_fuse: c.dynamicSplitFuse, max_num_seqs: c.maxNumSeqs, enable_prefix_caching: c.enablePrefixCaching, kv_block_size: c.kvBlockSize,
    use_cache_eviction: c.useCacheEviction,
    cache_eviction_config: {
      start_size: e.startSize, recent_size: e.recentSize, max_cache_size: e.maxCacheSize, aggregation_mode: AggregationMode[e.aggregationMode],
      apply_rotation: e.applyRotation, snapkv_window_size: e.snapkvWindowSize,
      kvcrush_config: { budget: e.kvcrushConfig.budget, anchor_point_mode: KVCrushAnchorPointMode[e.kvcrushConfig.anchorPointMode], rng_seed: e.kvcrushConfig.rngSeed },
      adaptive_rkv_config: { attention_mass: e.adaptiveRkvConfig.attentionMass, window_size: e.adaptiveRkvConfig.windowSize },
    },
    use_sparse_attention: c.useSparseAttention,
    sparse_attention_config: {
      mode: SparseAttentionMode[sa.mode], num_last_dense_tokens_in_prefill: sa.numLastDenseTokensInPrefill,
      num_retained_start_tokens_in_cache: sa.numRetainedStartTokensInCache, num_retained_recent_tokens_in_cache: sa.numRetainedRecentTokensInCache,
      xattention_threshold: sa.xattentionThreshold, xattention_block_size: sa.xattentionBlockSize, xattention_stride: sa.xattentionStride,
    },
  };
}

/** snake_case keys → our camelCase ones, nested objects too; an unknown key is an error naming it. */
function renamed(obj: unknown, table: FieldTable, at: string): Record<string, unknown> & { cacheSizeBytes?: unknown } {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new InvalidArgumentError(at, obj, 'an object of OpenVINO field names');
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(obj)) {
    const name = table[key];
    if (!name) throw new InvalidArgumentError(`${at} field name`, key, `one of ${Object.keys(table).join(', ')}`);
    out[name] = NESTED[key] && value !== null && typeof value === 'object' ? renamed(value, NESTED[key], `${at}.${key}`) : value;
  }
  return out;
}
