/**
 * OpenVINO GenAI's per-chunk XAttention threshold (Scheduler::_schedule_xattention_threshold):
 *   - decode (the prompt is done, one new token): dense;
 *   - a prompt chunk that ends inside the last numLastDenseTokensInPrefill tokens, but not at the
 *     prompt's end: dense (so the dense tail can spill over by up to one chunk);
 *   - every other prompt chunk, the final one and a one-chunk prompt included: the configured threshold.
 * OpenVINO returns 0.0 for "dense"; we return null so that a threshold is never overloaded.
 */
import { requireInteger } from '../../core/errors.js';

export interface XAttentionChunkState {
  promptLength: number;
  /** Tokens of this sequence processed before this step. */
  processed: number;
  scheduled: number;
}

export function xattentionChunkThreshold(state: XAttentionChunkState, threshold: number, numLastDenseTokensInPrefill: number): number | null {
  const { promptLength, processed, scheduled } = state;
  requireInteger('scheduled', scheduled, 1);
  if (processed >= promptLength) return null;
  const after = processed + scheduled;
  if (after < promptLength && promptLength - after < numLastDenseTokensInPrefill) return null;
  return threshold;
}
