/**
 * tri_shape: its knob is the local window (fewer tokens, sparser); the demo scales the window to the
 * input (the default 3968 tokens would make it dense at demo lengths); in the engine it is
 * OpenVINO GenAI's TRISHAPE mode (whole KV blocks skipped per prompt chunk).
 */
import type { MethodDescriptor } from '../descriptor.js';
import { TriShapeMethod } from './tri-shape.js';
import { TriShapeTokenSkipper } from './trishape-skipper.js';

export const TRI_SHAPE: MethodDescriptor = {
  name: 'tri_shape',
  version: 'v1',
  cls: TriShapeMethod,
  // Tokens of the local band; sink and last-query rows stay as configured.
  knob: { setting: 'localWindow', min: 1, max: 'keyLength', integer: true, logScale: true },
  demoSettings: (length) => ({ localWindow: Math.max(16, Math.floor(length / 4)), sinkTokens: 64, lastDenseQueries: 64 }),
  bench: {
    sweep: [{ settings: {}, causal: true }],
    smoke: [{ settings: { sinkTokens: 16, localWindow: 64, lastDenseQueries: 8, br: 32, bc: 32 }, causal: true }],
  },
  engine: {
    mode: 'TRISHAPE',
    kind: 'trishape',
    planner(config) {
      const sa = config.sparseAttentionConfig;
      const skipper = new TriShapeTokenSkipper(config.kvBlockSize, sa.numLastDenseTokensInPrefill, sa.numRetainedStartTokensInCache, sa.numRetainedRecentTokensInCache);
      return ({ promptLength, start, length }) => {
        // OpenVINO applies the skipper only while the chunk stays inside the prompt.
        if (start + length > promptLength) return null;
        const skippedBlocks = skipper.skippedBlocks({ promptLength, processed: start, scheduled: length });
        return skippedBlocks.length > 0 ? { skippedBlocks } : null;
      };
    },
  },
};

export { TriShapeMethod, TRI_SHAPE_DEFAULTS, triShapeSettings, triShapeTokenRule, triShapeBlockMask, triShapeIsDense, type TriShapeSettings } from './tri-shape.js';
export { TriShapeTokenSkipper, type ChunkPosition } from './trishape-skipper.js';
