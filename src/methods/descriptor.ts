/**
 * A method's descriptor: the one row every table reads. Registering a descriptor is all it takes for a
 * method to appear in `sparse-attn methods`, the demo, calibration, the sparsity search of the eval,
 * the bench menu and (with an engine hook) the engine's sparse prefill. Every field but the class is
 * optional; what is absent takes the documented default.
 */
import type { SchedulerConfig } from '../config/openvino.js';
import type { SparseMethodClass } from './method.js';

/**
 * The one setting that trades accuracy for sparsity. Calibration and the eval's sparsity search
 * bisect it (bisectKnob in calibration/knobs.ts) on the sparsity the method plans.
 */
export interface MethodKnob {
  /** The method's setting that is turned (a field of its own settings schema). */
  setting: string;
  /** Range searched (inclusive); 'keyLength': the longest calibration input's key length. */
  min: number;
  max: number | 'keyLength';
  integer?: boolean;
  /** Bisect in log space (values spanning decades). */
  logScale?: boolean;
  /** A larger value makes the method sparser (default false: a larger value keeps more). */
  sparserWhenHigher?: boolean;
  /** The settings object for a value (default `{ [setting]: value }`). */
  settings?(value: number): Record<string, unknown>;
  /** Calibrated by a model instead of the search: 'exponential' is ModelOpt's fit of flash-skip-softmax. */
  fit?: 'exponential';
}

/** One entry of the bench menu: the method at these settings, causal or not. */
export interface BenchVariant {
  settings: Record<string, unknown>;
  causal: boolean;
  /** Longest length of this variant in the sweep cut to one device call (`h100`); unset: every length. */
  oneCallMaxLength?: number;
}

export interface BenchEntry {
  /** The long-context menu (`issue8`, `h100` sweeps). Default: the method at its defaults, causal. */
  sweep?: BenchVariant[];
  /** Tiny, awkward sizes the harness test and CI run (`smoke`). Default: none. */
  smoke?: BenchVariant[];
  /**
   * FLOPs of the method's CPU planBlockMask, given the QKᵀ FLOPs of the shape (half the dense
   * attention FLOPs): what decides whether a long case must plan on the target. Default 0.
   */
  planFlops?(qkFlops: number, settings: Record<string, unknown>): number;
}

/** Where a prompt chunk stands: tokens [start, start + length) of a prompt of promptLength. */
export interface EngineChunk {
  promptLength: number;
  start: number;
  length: number;
}

/** What a method decides for one chunk before any attention runs; null from the planner: dense. */
export interface ChunkDecision {
  /** Logical KV blocks the chunk does not attend to (ascending). */
  skippedBlocks?: number[];
  /** Settings of this method's per-layer block mask over the chunk's visible keys; absent: no mask. */
  maskSettings?: Record<string, unknown>;
  /** The threshold the chunk ran with, for its record (XAttention's tau). */
  threshold?: number;
}

/** The engine's sparse prefill by this method, as one of OpenVINO GenAI's SparseAttentionMode values. */
export interface EngineHook {
  /** The SparseAttentionMode name this method serves ('TRISHAPE', 'XATTENTION'). */
  mode: string;
  /** Chunk kind recorded for a chunk the method made sparse. */
  kind: string;
  /** Built once per engine; decides each chunk (prompt chunks and decode steps alike). */
  planner(config: SchedulerConfig): (chunk: EngineChunk) => ChunkDecision | null;
}

export interface MethodDescriptor {
  name: string;
  version: string;
  cls: SparseMethodClass;
  knob?: MethodKnob;
  /** Settings the demo runs at for an input of `length` tokens (default: the method's defaults). */
  demoSettings?(length: number): Record<string, unknown>;
  bench?: BenchEntry;
  engine?: EngineHook;
}
