/**
 * The OpenVINO GenAI config surface: every field's default as the current headers state it (each row
 * names the file and the line it was checked against, openvino.genai da1db864, 2026-08-21), the JSON
 * form llm_bench reads (tools/llm_bench/prompts/scheduler_config.json, copied below), and the
 * validation rules of the headers and of llm_bench's loader.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AggregationMode, KVCrushAnchorPointMode } from '../src/config/cache-eviction-config.js';
import { parseCacheEvictionConfig, parseSchedulerConfig, parseSparseAttentionConfig, SparseAttentionMode } from '../src/config/openvino.js';
import { loadSchedulerConfigJson, schedulerConfigToJson } from '../src/config/openvino-json.js';

const SCHEDULER_HPP = 'src/cpp/include/openvino/genai/scheduler_config.hpp';
const SPARSE_HPP = 'src/cpp/include/openvino/genai/sparse_attention.hpp';
const EVICTION_HPP = 'src/cpp/include/openvino/genai/cache_eviction.hpp';

// [struct.field (ours), default, where checked: file, what it says]
const scheduler = parseSchedulerConfig({ numKvBlocks: 1 });
const eviction = parseCacheEvictionConfig();
const sparse = parseSparseAttentionConfig();
const DEFAULTS: [string, unknown, unknown, string, string][] = [
  ['SchedulerConfig.max_num_batched_tokens', scheduler.maxNumBatchedTokens, 256, SCHEDULER_HPP, 'std::size_t max_num_batched_tokens = 256;'],
  ['SchedulerConfig.num_kv_blocks', parseSchedulerConfig({ cacheSizeBytes: 1 }).numKvBlocks, 0, SCHEDULER_HPP, 'std::size_t num_kv_blocks = 0;'],
  ['SchedulerConfig.cache_size', scheduler.cacheSizeBytes, 0, SCHEDULER_HPP, 'std::size_t cache_size = 0; (GB)'],
  ['SchedulerConfig.num_linear_attention_blocks', scheduler.numLinearAttentionBlocks, 0, SCHEDULER_HPP, 'std::size_t num_linear_attention_blocks = 0;'],
  ['SchedulerConfig.cache_interval_multiplier', scheduler.cacheIntervalMultiplier, null, SCHEDULER_HPP, 'std::optional<std::size_t> cache_interval_multiplier = std::nullopt;'],
  ['SchedulerConfig.dynamic_split_fuse', scheduler.dynamicSplitFuse, true, SCHEDULER_HPP, 'bool dynamic_split_fuse = true;'],
  ['SchedulerConfig.use_cache_eviction', scheduler.useCacheEviction, false, SCHEDULER_HPP, 'bool use_cache_eviction = false;'],
  ['SchedulerConfig.max_num_seqs', scheduler.maxNumSeqs, 256, SCHEDULER_HPP, 'std::size_t max_num_seqs = 256;'],
  ['SchedulerConfig.enable_prefix_caching', scheduler.enablePrefixCaching, false, SCHEDULER_HPP, 'bool enable_prefix_caching = false;'],
  ['SchedulerConfig.use_sparse_attention', scheduler.useSparseAttention, false, SCHEDULER_HPP, 'bool use_sparse_attention = false;'],
  ['SchedulerConfig.kv_block_size (ours)', scheduler.kvBlockSize, 32, 'src/plugins/intel_cpu/.../executor_pa.cpp (openvino)', '"CPU: block size must be 32"'],
  ['SparseAttentionConfig.mode', sparse.mode, SparseAttentionMode.TRISHAPE, SPARSE_HPP, 'SparseAttentionMode mode = SparseAttentionMode::TRISHAPE;'],
  ['SparseAttentionConfig.num_last_dense_tokens_in_prefill', sparse.numLastDenseTokensInPrefill, 100, SPARSE_HPP, 'size_t num_last_dense_tokens_in_prefill = 100;'],
  ['SparseAttentionConfig.num_retained_start_tokens_in_cache', sparse.numRetainedStartTokensInCache, 128, SPARSE_HPP, 'size_t num_retained_start_tokens_in_cache = 128;'],
  ['SparseAttentionConfig.num_retained_recent_tokens_in_cache', sparse.numRetainedRecentTokensInCache, 1920, SPARSE_HPP, 'size_t num_retained_recent_tokens_in_cache = 1920;'],
  ['SparseAttentionConfig.xattention_threshold', sparse.xattentionThreshold, 0.8, SPARSE_HPP, 'float xattention_threshold = 0.8;'],
  ['SparseAttentionConfig.xattention_block_size', sparse.xattentionBlockSize, 64, SPARSE_HPP, 'size_t xattention_block_size = 64;'],
  ['SparseAttentionConfig.xattention_stride', sparse.xattentionStride, 8, SPARSE_HPP, 'size_t xattention_stride = 8;'],
  ['CacheEvictionConfig.start_size', eviction.startSize, 32, EVICTION_HPP, 'std::size_t m_start_size = 32;'],
  ['CacheEvictionConfig.recent_size', eviction.recentSize, 128, EVICTION_HPP, 'std::size_t m_recent_size = 128;'],
  ['CacheEvictionConfig.max_cache_size', eviction.maxCacheSize, 672, EVICTION_HPP, 'std::size_t m_max_cache_size = 672;'],
  ['CacheEvictionConfig.evictable_size', eviction.maxCacheSize - eviction.startSize - eviction.recentSize, 512, EVICTION_HPP, 'std::size_t m_evictable_size = 512;'],
  ['CacheEvictionConfig.aggregation_mode', eviction.aggregationMode, AggregationMode.NORM_SUM, EVICTION_HPP, 'AggregationMode aggregation_mode = AggregationMode::NORM_SUM;'],
  ['CacheEvictionConfig.apply_rotation', eviction.applyRotation, false, EVICTION_HPP, 'bool apply_rotation = false;'],
  ['CacheEvictionConfig.snapkv_window_size', eviction.snapkvWindowSize, 8, EVICTION_HPP, 'size_t snapkv_window_size = 8;'],
  ['KVCrushConfig.budget', eviction.kvcrushConfig.budget, 0, EVICTION_HPP, 'std::size_t budget = 0;'],
  ['KVCrushConfig.anchor_point_mode', eviction.kvcrushConfig.anchorPointMode, KVCrushAnchorPointMode.RANDOM, EVICTION_HPP, 'KVCrushAnchorPointMode anchor_point_mode = KVCrushAnchorPointMode::RANDOM;'],
  ['KVCrushConfig.rng_seed', eviction.kvcrushConfig.rngSeed, 0, EVICTION_HPP, 'size_t rng_seed = 0;'],
  ['AdaptiveRKVConfig.attention_mass', eviction.adaptiveRkvConfig.attentionMass, 0.9, EVICTION_HPP, 'double attention_mass = 0.9;'],
  ['AdaptiveRKVConfig.window_size', eviction.adaptiveRkvConfig.windowSize, 8, EVICTION_HPP, 'size_t window_size = 8;'],
];

describe('OpenVINO GenAI defaults, field by field', () => {
  for (const [field, actual, expected, file, says] of DEFAULTS) {
    it(`${field} = ${String(expected)} (${file}: ${says})`, () => assert.equal(actual, expected));
  }

  it('enum values keep OpenVINO\'s order', () => {
    assert.deepEqual([AggregationMode.SUM, AggregationMode.NORM_SUM, AggregationMode.ADAPTIVE_RKV], [0, 1, 2]);
    assert.deepEqual([KVCrushAnchorPointMode.RANDOM, KVCrushAnchorPointMode.ZEROS, KVCrushAnchorPointMode.ONES, KVCrushAnchorPointMode.MEAN, KVCrushAnchorPointMode.ALTERNATING], [0, 1, 2, 3, 4]);
  });
});

// tools/llm_bench/prompts/scheduler_config.json, verbatim.
const LLM_BENCH_JSON = `{
    "num_kv_blocks": 300,
    "dynamic_split_fuse": true,
    "max_num_batched_tokens": 256,
    "max_num_seqs": 256,
    "use_cache_eviction": true,
    "enable_prefix_caching": false,
    "cache_eviction_config": {
        "start_size": 32,
        "recent_size": 32,
        "max_cache_size": 128,
        "aggregation_mode": "NORM_SUM",
        "apply_rotation": false,
        "snapkv_window_size": 8,
        "kvcrush_config": {"budget": 0, "anchor_point_mode": "RANDOM", "rng_seed": 0}
    },
    "sparse_attention_config": {
        "mode": "TRISHAPE",
        "num_last_dense_tokens_in_prefill": 100,
        "num_retained_start_tokens_in_cache": 128,
        "num_retained_recent_tokens_in_cache": 1920,
        "xattention_threshold": 0.8,
        "xattention_block_size": 64,
        "xattention_stride": 8
    }
}`;

describe('OpenVINO\'s JSON form', () => {
  it('loads llm_bench\'s scheduler_config.json, and writes it back with the same values', () => {
    const c = loadSchedulerConfigJson(LLM_BENCH_JSON);
    assert.equal(c.numKvBlocks, 300);
    assert.equal(c.useCacheEviction, true);
    assert.equal(c.cacheEvictionConfig.maxCacheSize, 128);
    assert.equal(c.cacheEvictionConfig.aggregationMode, AggregationMode.NORM_SUM);
    assert.equal(c.useSparseAttention, true, 'a sparse_attention_config block turns sparse attention on (llm_bench)');
    assert.equal(c.sparseAttentionConfig.mode, SparseAttentionMode.TRISHAPE);
    const written = schedulerConfigToJson(c);
    const original = JSON.parse(LLM_BENCH_JSON) as Record<string, unknown>;
    const pick = (o: Record<string, unknown>, like: Record<string, unknown>): unknown =>
      Object.fromEntries(Object.keys(like).map((k) => [k, like[k] !== null && typeof like[k] === 'object' ? pick(o[k] as Record<string, unknown>, like[k] as Record<string, unknown>) : o[k]]));
    assert.deepEqual(pick(written, original), original);
    assert.deepEqual(loadSchedulerConfigJson(written as Record<string, unknown>), c, 'load(save(c)) = c');
  });

  it('cache_size is in GiB, as in OpenVINO', () => {
    assert.equal(loadSchedulerConfigJson({ cache_size: 2 }).cacheSizeBytes, 2 * 2 ** 30);
    assert.equal(schedulerConfigToJson(loadSchedulerConfigJson({ cache_size: 2 })).cache_size, 2);
  });

  it('eviction block: on unless use_cache_eviction says otherwise (llm_bench sets it, then applies the explicit field)', () => {
    assert.equal(loadSchedulerConfigJson({ num_kv_blocks: 4, cache_eviction_config: { max_cache_size: 672 } }).useCacheEviction, true);
    assert.equal(loadSchedulerConfigJson({ num_kv_blocks: 4, use_cache_eviction: false, cache_eviction_config: {} }).useCacheEviction, false);
  });

  const bad: [string, Record<string, unknown>, RegExp][] = [
    ['sparse block with use_sparse_attention false (llm_bench: "sparse_attention_config cannot be specified when use_sparse_attention is False")',
      { num_kv_blocks: 4, use_sparse_attention: false, sparse_attention_config: {} }, /SchedulerConfig\.use_sparse_attention must be true or absent when sparse_attention_config is given/],
    ['unknown field, named in snake_case', { num_kv_blocks: 4, cache_eviction_config: { start: 32 } }, /SchedulerConfig\.cache_eviction_config field name must be one of start_size, recent_size, .*, got "start"/],
    ['an eviction area not a multiple of the block, named in snake_case', { num_kv_blocks: 4, cache_eviction_config: { recent_size: 48 } },
      /SchedulerConfig\.cache_eviction_config\.recent_size must be a multiple of the KV block size \(32\), got 48/],
    ['max_cache_size not above start + recent (CacheEvictionConfig constructor)', { num_kv_blocks: 4, cache_eviction_config: { start_size: 32, recent_size: 64, max_cache_size: 96 } },
      /SchedulerConfig\.cache_eviction_config\.max_cache_size must be larger than startSize \+ recentSize \(32 \+ 64\), got 96/],
    ['cache_interval_multiplier 0 with prefix caching (SchedulerConfig::validate)', { num_kv_blocks: 4, enable_prefix_caching: true, cache_interval_multiplier: 0 },
      /SchedulerConfig\.cache_interval_multiplier must be greater than 0 when prefix caching is enabled, got 0/],
    ['aggregation mode by an unknown name', { num_kv_blocks: 4, cache_eviction_config: { aggregation_mode: 'MEAN' } }, /aggregation_mode must be one of "SUM", "NORM_SUM", "ADAPTIVE_RKV" or its number/],
  ];
  for (const [name, json, re] of bad) it(`rejects: ${name}`, () => assert.throws(() => loadSchedulerConfigJson(json), re));
});
