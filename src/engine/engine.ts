/**
 * The chunked-prefill engine: a scheduler, a paged KV cache, a QKV producer (the model) and a
 * paged-attention backend. Each step: schedule chunks; for every chunk and layer, produce Q/K/V of
 * its tokens, write K/V into the cache, then attend over the chunk's visible blocks with its plan
 * (skipped blocks and/or a method's block mask, as the sparse prefill mode's method decided: TRISHAPE
 * skips blocks, XATTENTION estimates a mask from the chunk's queries and every cached key); then decode
 * steps, one token per sequence, dense over the whole cache. With `useCacheEviction`, chunks that saw
 * their whole cache score its tokens and, from the end of the prompt on, each step evicts the
 * lowest-scored blocks of each layer (eviction-controller.ts), so a sequence's cache stays bounded.
 *
 * Outputs are kept per sequence and layer ([1, H, totalLength, D], the latest computation of each
 * position) so tests can compare them with a dense reference over the whole sequence.
 */
import { BlockMask } from '../core/block-mask.js';
import { InvalidArgumentError, UnsupportedError } from '../core/errors.js';
import { HeadTensor } from '../core/tensor.js';
import { createSparseMethod } from '../methods/index.js';
import { parseSchedulerConfig, resolveNumKvBlocks, type SchedulerConfig, type SchedulerConfigInput } from '../config/openvino.js';
import type { AttentionBackend } from '../backends/backend.js';
import { cpuBackend } from '../backends/cpu/index.js';
import { pagedAttentionScores } from './attention-scores.js';
import { EvictionController } from './eviction-controller.js';
import { PagedKvCache } from './paged-kv-cache.js';
import { Scheduler, type SchedulerSequenceStats, type ScheduledChunk, type SequenceRequest, type StepSchedule } from './scheduler.js';
import type { QkvProducer } from './synthetic-model.js';

export interface EngineOptions {
  model: QkvProducer;
  /** OpenVINO-shaped scheduler config (validated here). */
  config: SchedulerConfigInput;
  backend?: AttentionBackend;
}

export interface ChunkRecord {
  step: number;
  start: number;
  /** First cache slot of the chunk (start minus the tokens evicted before it). */
  cacheStart: number;
  length: number;
  phase: 'prefill' | 'decode';
  kind: ScheduledChunk['plan']['kind'];
  skippedBlocks: number[];
  /** The method's threshold for this chunk (XAttention's tau); null when dense or thresholdless. */
  threshold: number | null;
  /** (query, key) pairs attended, and causally possible, over heads and layers. */
  keptPairs: number;
  totalPairs: number;
  /** Tokens evicted (per layer) right after this chunk's step. */
  evictedTokens: number;
}

export interface SequenceStats extends SchedulerSequenceStats {
  seqId: number;
  promptLength: number;
  /** Logical blocks skipped, summed over prefill chunks. */
  skippedBlocks: number;
  /** 1 - kept / causal (query, key) pairs over prefill chunks, heads and layers. */
  prefillSparsity: number;
  chunks: ChunkRecord[];
}

export class Engine {
  readonly config: SchedulerConfig;
  readonly cache: PagedKvCache;
  readonly scheduler: Scheduler;
  readonly model: QkvProducer;
  readonly backend: AttentionBackend;
  /** Present when the config turns cache eviction on. */
  readonly eviction: EvictionController | null;
  private readonly outputs = new Map<number, Float32Array[]>();
  private readonly records = new Map<number, { promptLength: number; totalLength: number; chunks: ChunkRecord[] }>();

  constructor(opts: EngineOptions) {
    this.config = parseSchedulerConfig(opts.config);
    this.model = opts.model;
    this.backend = opts.backend ?? cpuBackend;
    const { numLayers, kvHeads, headDim } = opts.model;
    this.cache = new PagedKvCache({ numLayers, kvHeads, headDim, blockSize: this.config.kvBlockSize, numBlocks: resolveNumKvBlocks(this.config, opts.model) });
    this.scheduler = new Scheduler(this.config, this.cache);
    refuseUnimplemented(this.config);
    this.eviction = this.config.useCacheEviction ? new EvictionController(this.config, this.cache) : null;
  }

  /** Positions of the tokens a layer's cache holds for a running sequence (all of them without eviction). */
  cachedPositions(seqId: number, layer: number): number[] {
    if (this.eviction) return this.eviction.cachedPositions(seqId, layer);
    return Array.from({ length: this.scheduler.cachedTokens(seqId) }, (_, i) => i);
  }

  addRequest(req: SequenceRequest): void {
    this.scheduler.addRequest(req);
    const totalLength = req.promptLength + (req.decodeTokens ?? 0);
    const { numLayers, heads, headDim } = this.model;
    this.outputs.set(req.id, Array.from({ length: numLayers }, () => new Float32Array(heads * totalLength * headDim)));
    this.records.set(req.id, { promptLength: req.promptLength, totalLength, chunks: [] });
  }

  get done(): boolean {
    return !this.scheduler.hasUnfinished;
  }

  /** Runs one scheduler step; null when every request has finished. */
  async step(): Promise<StepSchedule | null> {
    if (this.done) return null;
    const schedule = this.scheduler.schedule();
    for (const id of schedule.preempted) this.eviction?.drop(id);
    const records: ChunkRecord[] = [];
    for (const chunk of schedule.chunks) records.push(await this.runChunk(schedule.step, chunk));
    if (this.eviction) schedule.chunks.forEach((c, i) => (records[i].evictedTokens = this.eviction!.evictAfterStep(c)));
    this.scheduler.finishStep(schedule);
    // The scheduler counts the step's tokens as processed only now; then it learns what left the cache.
    schedule.chunks.forEach((c, i) => {
      if (!this.eviction) return;
      if (!this.scheduler.isRunning(c.seqId)) this.eviction.drop(c.seqId);
      else if (records[i].evictedTokens > 0) this.scheduler.registerEviction(c.seqId, records[i].evictedTokens);
    });
    return schedule;
  }

  /** Steps until every request has finished (or `maxSteps` steps ran). */
  async run(maxSteps = Number.POSITIVE_INFINITY): Promise<StepSchedule[]> {
    const steps: StepSchedule[] = [];
    for (let i = 0; i < maxSteps; i++) {
      const s = await this.step();
      if (!s) break;
      steps.push(s);
    }
    return steps;
  }

  /** Frees what a backend keeps of the cache (the WebGPU backend's resident K/V buffers); the engine can still run, re-creating it. */
  dispose(): void {
    this.cache.attachDeviceCopy(null);
  }

  /** Attention outputs of a sequence for one layer: [1, H, promptLength + decodeTokens, D]. */
  output(seqId: number, layer: number): HeadTensor {
    const rec = this.record(seqId);
    const data = this.outputs.get(seqId)![layer];
    if (!data) throw new InvalidArgumentError('layer', layer, `in [0, ${this.model.numLayers})`);
    return new HeadTensor({ batch: 1, heads: this.model.heads, length: rec.totalLength, headDim: this.model.headDim }, data);
  }

  stats(seqId: number): SequenceStats {
    const rec = this.record(seqId);
    const prefill = rec.chunks.filter((c) => c.phase === 'prefill');
    const kept = prefill.reduce((a, c) => a + c.keptPairs, 0);
    const total = prefill.reduce((a, c) => a + c.totalPairs, 0);
    return {
      seqId, promptLength: rec.promptLength, ...this.scheduler.stats(seqId),
      skippedBlocks: prefill.reduce((a, c) => a + c.skippedBlocks.length, 0),
      prefillSparsity: total === 0 ? 0 : 1 - kept / total,
      chunks: rec.chunks.map((c) => ({ ...c, skippedBlocks: [...c.skippedBlocks] })),
    };
  }

  private async runChunk(step: number, chunk: ScheduledChunk): Promise<ChunkRecord> {
    const { seqId, start, cacheStart, length, plan } = chunk;
    const contextLength = cacheStart + length;
    const record: ChunkRecord = {
      step, start, cacheStart, length, phase: chunk.phase, kind: plan.kind, skippedBlocks: plan.skippedBlocks,
      threshold: plan.threshold, keptPairs: 0, totalPairs: 0, evictedTokens: 0,
    };
    this.eviction?.appendTokens(chunk);
    // OpenVINO registers eviction scores only from chunks that attended to the whole cache.
    const scored = this.eviction && plan.skippedBlocks.length === 0 ? this.eviction.scoredQueries(chunk) : 0;
    const layerScores: Float64Array[] = [];
    for (let layer = 0; layer < this.model.numLayers; layer++) {
      const blockTable = this.cache.blockTable(seqId, layer);
      const { q, k, v } = this.model.qkv(layer, seqId, start, length);
      this.cache.write(layer, seqId, cacheStart, k, v);
      const mask = plan.mask ? await this.chunkMask(plan.mask, layer, blockTable, q, contextLength, plan.visibleBlocks) : undefined;
      const input = { cache: this.cache, layer, blockTable, q, contextLength, visibleBlocks: plan.visibleBlocks, mask };
      const out = await this.backend.pagedAttention(input);
      if (scored > 0) layerScores.push(pagedAttentionScores(input, scored));
      this.storeOutput(seqId, layer, start, out);
      const pairs = countPairs(q.heads, start, length, this.visibleTokens(plan.visibleBlocks, contextLength), mask);
      record.keptPairs += pairs.kept;
      record.totalPairs += pairs.total;
    }
    if (scored > 0) this.eviction!.registerScores(chunk, layerScores, scored);
    this.record(seqId).chunks.push(record);
    return record;
  }

  /**
   * The chunk method's block mask for the chunk's queries against its visible keys (queries
   * right-aligned), planned by the backend where it has a plan hook (XAttention's estimation on the
   * GPU, over keys gathered on the GPU from the resident cache), else by the method on the CPU.
   */
  private async chunkMask(
    spec: NonNullable<ScheduledChunk['plan']['mask']>, layer: number, blockTable: number[], q: HeadTensor, contextLength: number, visibleBlocks: readonly number[],
  ): Promise<BlockMask> {
    const method = createSparseMethod(spec.method, spec.settings);
    const hooks = this.backend.methodHooks?.(method);
    const opts = { causal: true, phase: 'prefill' as const };
    if (hooks?.planPaged) return (await hooks.planPaged(q, { cache: this.cache, layer, blockTable, contextLength, visibleBlocks }, opts)).mask;
    const { k } = this.cache.gatherBlocks(layer, blockTable, visibleBlocks, contextLength);
    return (hooks?.plan ? await hooks.plan(q, k, opts) : method.planBlockMask(q, k, opts)).mask;
  }

  private visibleTokens(visibleBlocks: readonly number[], contextLength: number): number {
    const bs = this.cache.blockSize;
    return visibleBlocks.reduce((a, b) => a + Math.max(0, Math.min(bs, contextLength - b * bs)), 0);
  }

  private storeOutput(seqId: number, layer: number, start: number, out: HeadTensor): void {
    const dst = this.outputs.get(seqId)![layer];
    const { heads, headDim } = this.model;
    const totalLength = this.record(seqId).totalLength;
    const o = out.toFloat32Array();
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < out.length; i++) {
        const src = out.offset(0, h, i);
        dst.set(o.subarray(src, src + headDim), (h * totalLength + start + i) * headDim);
      }
  }

  private record(seqId: number) {
    const rec = this.records.get(seqId);
    if (!rec) throw new InvalidArgumentError('seqId', seqId, 'the id of a request added to this engine');
    return rec;
  }
}

/** SchedulerConfig fields OpenVINO reads that this engine does not implement, when set away from their defaults. */
function refuseUnimplemented(c: SchedulerConfig): void {
  if (!c.dynamicSplitFuse) throw new UnsupportedError('SchedulerConfig.dynamicSplitFuse false (vLLM-style scheduling) is not implemented; the engine schedules by dynamic split-fuse');
  if (c.enablePrefixCaching) throw new UnsupportedError('SchedulerConfig.enablePrefixCaching is not implemented');
  if (c.useCacheEviction && c.cacheEvictionConfig.applyRotation) {
    throw new UnsupportedError('CacheEvictionConfig.applyRotation (re-rotating kept keys after eviction) is not implemented; set it to false');
  }
}

/**
 * Causally possible and attended (query, key) pairs of a chunk, over heads. Without a mask the
 * query at position p sees every gathered key up to p: the G - n visible cached tokens, then the
 * chunk's tokens up to itself. With a mask, its expanded token mask is counted.
 */
function countPairs(heads: number, start: number, n: number, gathered: number, mask?: BlockMask): { kept: number; total: number } {
  const total = heads * (n * start + (n * (n + 1)) / 2);
  if (!mask) return { kept: heads * (n * (gathered - n) + (n * (n + 1)) / 2), total };
  let kept = 0;
  for (let h = 0; h < heads; h++) for (const x of mask.expand(0, h)) kept += x;
  return { kept, total };
}
