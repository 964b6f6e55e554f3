/**
 * A continuous-batching scheduler in the manner of OpenVINO GenAI's dynamic split-fuse mode.
 * Each step has a budget of maxNumBatchedTokens tokens over all sequences:
 *   1. running decodes first, one token each (a decode that needs a new KV block when none is free
 *      preempts the lowest-priority sequence holding blocks, by recompute; failing that it waits);
 *   2. then prompts in admission order, each a chunk of as many tokens as budget and free KV blocks
 *      allow (a prompt that gets no block this step is held back);
 *   3. if nothing at all could run, the lowest-priority sequence holding blocks is preempted so the
 *      highest-priority one can move (a request that fits the cache alone always completes).
 * A preempted sequence frees all its blocks and later recomputes every token it had processed.
 * A request that needs more blocks than the whole cache is refused when it is added.
 *
 * Cache eviction (the engine evicts after a step, see cache-eviction.ts) makes a sequence hold fewer
 * cache slots than tokens processed: slots = processed − evicted, and blocks are reserved for slots.
 * With eviction on, a replayed prompt (after preemption) is chunked so that no chunk crosses the
 * prompt's end, since eviction only starts once the whole prompt has been seen.
 *
 * Token model: a sequence is `promptLength` prompt tokens then `decodeTokens` tokens fed one per
 * step (what a model would sample and feed back); token t's keys/values sit at position t.
 */
import { InvalidArgumentError, requireInteger, SparseAttentionError } from '../core/errors.js';
import type { SchedulerConfig } from '../config/openvino.js';
import { evictionBlockBound } from './eviction-controller.js';
import type { PagedKvCache } from './paged-kv-cache.js';
import { type ChunkPlan, SparsePrefillPlanner } from './sparse-prefill-plan.js';

export interface SequenceRequest {
  id: number;
  promptLength: number;
  /** Tokens decoded one per step after the prompt (default 0). */
  decodeTokens?: number;
}

export interface SchedulerSequenceStats {
  prefillChunks: number;
  decodeSteps: number;
  /** Steps in which the sequence had work but got no KV block for it. */
  heldBackSteps: number;
  preemptions: number;
  /** Tokens processed again after preemptions. */
  recomputedTokens: number;
  /** Most KV blocks (per layer) the sequence held at once. */
  peakBlocks: number;
  /** Tokens evicted from its cache over the run (replays after preemption included). */
  evictedTokens: number;
}

export interface ScheduledChunk {
  seqId: number;
  /** Position of the chunk's first token = tokens already processed. */
  start: number;
  /** Cache slot of the chunk's first token = tokens already in the cache (start − evicted). */
  cacheStart: number;
  length: number;
  promptLength: number;
  phase: 'prefill' | 'decode';
  plan: ChunkPlan;
}

export interface StepSchedule {
  step: number;
  chunks: ScheduledChunk[];
  totalTokens: number;
  heldBack: number[];
  preempted: number[];
}

interface SequenceState {
  id: number;
  promptLength: number;
  totalLength: number;
  processed: number;
  /** Tokens known so far: the prompt plus tokens already produced by decode. */
  known: number;
  /** Processed tokens whose keys and values were evicted from the cache. */
  evicted: number;
  stats: SchedulerSequenceStats;
}

export class Scheduler {
  private readonly sequences: SequenceState[] = [];
  private readonly finishedStats = new Map<number, SchedulerSequenceStats>();
  private readonly planner: SparsePrefillPlanner;
  private stepCount = 0;

  constructor(readonly config: SchedulerConfig, readonly cache: PagedKvCache) {
    if (cache.blockSize !== config.kvBlockSize) {
      throw new InvalidArgumentError('cache.blockSize', cache.blockSize, `equal to SchedulerConfig.kvBlockSize (${config.kvBlockSize})`);
    }
    this.planner = new SparsePrefillPlanner(config);
  }

  addRequest(req: SequenceRequest): void {
    requireInteger('request id', req.id, 0);
    requireInteger(`request ${req.id} promptLength`, req.promptLength, 1);
    const decodeTokens = requireInteger(`request ${req.id} decodeTokens`, req.decodeTokens ?? 0, 0);
    if (this.sequences.some((s) => s.id === req.id) || this.finishedStats.has(req.id)) {
      throw new InvalidArgumentError('request id', req.id, 'unique among the requests of this scheduler');
    }
    const totalLength = req.promptLength + decodeTokens;
    const blocks = this.config.useCacheEviction
      ? evictionBlockBound(this.config.cacheEvictionConfig, this.cache.blockSize, req.promptLength, totalLength)
      : this.cache.blocksFor(totalLength);
    if (blocks > this.cache.numBlocks) {
      const evicting = this.config.useCacheEviction ? ', cache eviction on' : '';
      throw new InvalidArgumentError(
        `request ${req.id} KV blocks (prompt ${req.promptLength} + ${decodeTokens} decode tokens at ${this.cache.blockSize} tokens per block${evicting})`,
        blocks, `at most the cache's ${this.cache.numBlocks} blocks: it can never fit`,
      );
    }
    this.sequences.push({
      id: req.id, promptLength: req.promptLength, totalLength, processed: 0, known: req.promptLength, evicted: 0,
      stats: { prefillChunks: 0, decodeSteps: 0, heldBackSteps: 0, preemptions: 0, recomputedTokens: 0, peakBlocks: 0, evictedTokens: 0 },
    });
  }

  get hasUnfinished(): boolean {
    return this.sequences.length > 0;
  }

  stats(seqId: number): SchedulerSequenceStats {
    const s = this.sequences.find((q) => q.id === seqId)?.stats ?? this.finishedStats.get(seqId);
    if (!s) throw new InvalidArgumentError('seqId', seqId, 'the id of a request added to this scheduler');
    return { ...s };
  }

  /** Whether the sequence is still scheduled (added and not finished). */
  isRunning(seqId: number): boolean {
    return this.sequences.some((q) => q.id === seqId);
  }

  /** Cache slots a running sequence holds tokens in (processed − evicted). */
  cachedTokens(seqId: number): number {
    const s = this.find(seqId);
    return s.processed - s.evicted;
  }

  /** Records that `tokens` of a sequence's cached tokens were evicted (the cache has dropped their blocks). */
  registerEviction(seqId: number, tokens: number): void {
    const s = this.find(seqId);
    requireInteger('evicted tokens', tokens, 0, s.processed - s.evicted);
    s.evicted += tokens;
    s.stats.evictedTokens += tokens;
  }

  /** Plans one step and reserves its KV blocks; call `finishStep` once its tokens are computed. */
  schedule(): StepSchedule {
    const out: StepSchedule = { step: this.stepCount++, chunks: [], totalTokens: 0, heldBack: [], preempted: [] };
    if (this.sequences.length === 0) return out;
    for (;;) {
      this.scheduleDecodes(out);
      this.schedulePrompts(out);
      if (out.chunks.length > 0) break;
      // Nothing could run: every sequence that has work lacks blocks. Free the lowest-priority holder.
      const victim = this.lowestPriorityHolder(0);
      if (victim === undefined) throw new SparseAttentionError('scheduler made no progress and has nothing to preempt (internal error)');
      this.preempt(victim, out);
      out.heldBack = [];
    }
    for (const id of out.heldBack) this.find(id).stats.heldBackSteps++;
    return out;
  }

  /** Marks the scheduled tokens as processed; finished sequences release their blocks. */
  finishStep(schedule: StepSchedule): void {
    for (const c of schedule.chunks) {
      const s = this.find(c.seqId);
      s.processed += c.length;
      if (c.phase === 'decode') s.stats.decodeSteps++;
      else s.stats.prefillChunks++;
      // Processing the last known token yields the next one (a model would sample it here).
      if (s.processed === s.known && s.processed >= s.promptLength && s.known < s.totalLength) s.known++;
    }
    for (const s of [...this.sequences]) {
      if (s.processed < s.totalLength) continue;
      this.cache.freeSequence(s.id);
      this.finishedStats.set(s.id, s.stats);
      this.sequences.splice(this.sequences.indexOf(s), 1);
    }
  }

  private scheduleDecodes(out: StepSchedule): void {
    for (let i = 0; i < this.sequences.length; i++) {
      const s = this.sequences[i];
      if (!this.isDecoding(s) || out.chunks.some((c) => c.seqId === s.id)) continue;
      if (out.totalTokens >= this.config.maxNumBatchedTokens) return;
      const cached = s.processed - s.evicted;
      while (this.cache.capacity(s.id) < cached + 1 && this.cache.freeBlocks === 0) {
        const victim = this.lowestPriorityHolder(i + 1);
        if (victim === undefined) break;
        this.preempt(victim, out);
      }
      if (this.cache.capacity(s.id) < cached + 1 && this.cache.freeBlocks === 0) {
        out.heldBack.push(s.id);
        continue;
      }
      this.push(out, s, 1, 'decode');
    }
  }

  private schedulePrompts(out: StepSchedule): void {
    for (const s of this.sequences) {
      // A sequence preempted in this step waits for the next one (OpenVINO marks it waiting too).
      if (this.isDecoding(s) || s.processed >= s.known || out.preempted.includes(s.id) || out.chunks.some((c) => c.seqId === s.id)) continue;
      const budget = this.config.maxNumBatchedTokens - out.totalTokens;
      if (budget <= 0) return;
      const slots = this.cache.capacity(s.id) - (s.processed - s.evicted) + this.cache.freeBlocks * this.cache.blockSize;
      const promptLeft = this.config.useCacheEviction && s.processed < s.promptLength ? s.promptLength - s.processed : Infinity;
      const n = Math.min(budget, s.known - s.processed, slots, promptLeft);
      if (n <= 0) {
        out.heldBack.push(s.id);
        continue;
      }
      this.push(out, s, n, 'prefill');
    }
  }

  private push(out: StepSchedule, s: SequenceState, length: number, phase: 'prefill' | 'decode'): void {
    const cacheStart = s.processed - s.evicted;
    this.cache.reserve(s.id, cacheStart + length);
    s.stats.peakBlocks = Math.max(s.stats.peakBlocks, this.cache.capacity(s.id) / this.cache.blockSize);
    const plan = this.planner.plan({ promptLength: s.promptLength, start: s.processed, length }, cacheStart);
    out.chunks.push({ seqId: s.id, start: s.processed, cacheStart, length, promptLength: s.promptLength, phase, plan });
    out.totalTokens += length;
  }

  /** In generation: the prompt is done and exactly the newest token is left to feed. */
  private isDecoding(s: SequenceState): boolean {
    return s.processed >= s.promptLength && s.known - s.processed === 1;
  }

  /** The last sequence at index >= `from` that holds blocks and is not part of this step's batch. */
  private lowestPriorityHolder(from: number): SequenceState | undefined {
    for (let i = this.sequences.length - 1; i >= from; i--) {
      const s = this.sequences[i];
      if (this.cache.capacity(s.id) > 0) return s;
    }
    return undefined;
  }

  private preempt(s: SequenceState, out: StepSchedule): void {
    // A sequence already in this step's batch keeps its chunk: only later ones are preempted, and
    // lowestPriorityHolder searches from after the sequence that needs the block.
    if (out.chunks.some((c) => c.seqId === s.id)) throw new SparseAttentionError(`internal error: preempting sequence ${s.id} scheduled in this step`);
    this.cache.freeSequence(s.id);
    s.stats.preemptions++;
    s.stats.recomputedTokens += s.processed;
    s.processed = 0;
    s.evicted = 0;
    out.preempted.push(s.id);
  }

  private find(id: number): SequenceState {
    const s = this.sequences.find((q) => q.id === id);
    if (!s) throw new InvalidArgumentError('seqId', id, 'a sequence that is still running');
    return s;
  }
}
