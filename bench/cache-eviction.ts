/**
 * Memory saved and accuracy lost by cache eviction in bytes-llama-dev, run through the paged-KV
 * engine (src/model/eviction-eval.ts): a baseline without eviction, OpenVINO GenAI's default
 * CacheEvictionConfig and tighter caps, each aggregation mode, and eviction beside TRISHAPE and
 * XATTENTION prefill. Writes JSON to bench/results/<date>-<machine>/cache-eviction.json (or --out) and prints
 * the table docs/engine.md quotes:
 *   npm run build && node dist/bench/cache-eviction.js [--prompt-length 1024] [--needles 8] [--windows 4] [--continuation 64]
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuDeviceInfo } from '../src/bench/device-info.js';
import { defaultResultPath, writeJsonFile } from '../src/bench/results.js';
import { type EvictionEvalConfig, formatEvictionTable, runEvictionEval } from '../src/model/eviction-eval.js';
import { LlamaModel } from '../src/model/llama.js';
import { loadCorpus } from '../src/model/needle.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const { values } = parseArgs({
  options: {
    'prompt-length': { type: 'string', default: '1024' },
    needles: { type: 'string', default: '8' },
    windows: { type: 'string', default: '4' },
    continuation: { type: 'string', default: '64' },
    seed: { type: 'string', default: '1' },
    out: { type: 'string' },
  },
});

const common = { maxNumBatchedTokens: 256, kvBlockSize: 32 } as const;
const evict = (maxCacheSize: number, aggregationMode: 'SUM' | 'NORM_SUM' | 'ADAPTIVE_RKV' = 'NORM_SUM') =>
  ({ ...common, useCacheEviction: true, cacheEvictionConfig: { startSize: 32, recentSize: 128, maxCacheSize, aggregationMode } }) as const;
const configs: EvictionEvalConfig[] = [
  { label: 'no eviction', config: common },
  { label: 'NORM_SUM max 672 (default)', config: evict(672) },
  { label: 'NORM_SUM max 384', config: evict(384) },
  { label: 'NORM_SUM max 256', config: evict(256) },
  { label: 'NORM_SUM max 192', config: evict(192) },
  { label: 'SUM max 256', config: evict(256, 'SUM') },
  { label: 'ADAPTIVE_RKV max 256', config: evict(256, 'ADAPTIVE_RKV') },
  { label: 'NORM_SUM max 256, SnapKV off', config: { ...evict(256), cacheEvictionConfig: { ...evict(256).cacheEvictionConfig, snapkvWindowSize: 0 } } },
  {
    label: 'TRISHAPE prefill + NORM_SUM max 256',
    config: { ...evict(256), useSparseAttention: true, sparseAttentionConfig: { mode: 'TRISHAPE', numRetainedStartTokensInCache: 64, numRetainedRecentTokensInCache: 256, numLastDenseTokensInPrefill: 100 } },
  },
  {
    label: 'XATTENTION prefill + NORM_SUM max 256',
    config: { ...evict(256), useSparseAttention: true, sparseAttentionConfig: { mode: 'XATTENTION', xattentionThreshold: 0.9, xattentionBlockSize: 64, xattentionStride: 8 } },
  },
];

const model = LlamaModel.load(`${FIXTURES}bytes-llama-dev`);
const report = await runEvictionEval(model, loadCorpus(`${FIXTURES}python-corpus`), {
  promptLength: Number(values['prompt-length']), needlePrompts: Number(values.needles), nllWindows: Number(values.windows),
  continuation: Number(values.continuation), seed: Number(values.seed), configs,
  onProgress: (label, done, total) => process.stderr.write(`\r${label}: ${done}/${total}   `),
});
report.model = 'bytes-llama-dev (test/fixtures)';
process.stderr.write('\n');
const out = values.out ?? defaultResultPath('cache-eviction.json', cpuDeviceInfo(), new Date(report.date));
writeJsonFile(out, report);
console.log(formatEvictionTable(report.rows));
console.log(`(${report.machine}; prompts of ${report.options.promptLength} tokens; written to ${out})`);
