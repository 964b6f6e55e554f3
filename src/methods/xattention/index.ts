/**
 * xattention: its knob is tau, the attention mass each query block keeps (more mass, more blocks);
 * its CPU plan scores Q·K on antidiagonals (QKᵀ FLOPs / stride); in the engine it is OpenVINO GenAI's
 * XATTENTION mode (a per-chunk threshold, a block mask per layer).
 */
import type { BenchVariant, MethodDescriptor } from '../descriptor.js';
import { XAttentionMethod } from './xattention.js';
import { xattentionChunkThreshold } from './xattention-chunk-rule.js';

/** tau 0.8/0.9 × stride 8/16 × block 64/128; one headline setting runs to 128K in the one-call sweep. */
function sweep(): BenchVariant[] {
  const out: BenchVariant[] = [];
  for (const threshold of [0.8, 0.9])
    for (const stride of [8, 16])
      for (const blockSize of [64, 128]) {
        const headline = threshold === 0.9 && stride === 16 && blockSize === 128;
        out.push({ settings: { threshold, stride, blockSize }, causal: true, ...(headline ? {} : { oneCallMaxLength: 16384 }) });
      }
  return out;
}

export const XATTENTION: MethodDescriptor = {
  name: 'xattention',
  version: 'v1',
  cls: XAttentionMethod,
  knob: { setting: 'threshold', min: 1e-3, max: 1 },
  bench: {
    sweep: sweep(),
    smoke: [{ settings: { threshold: 0.9, stride: 8, blockSize: 32 }, causal: true }],
    planFlops: (qk, settings) => qk / Number(settings.stride ?? 8),
  },
  engine: {
    mode: 'XATTENTION',
    kind: 'xattention',
    planner(config) {
      const sa = config.sparseAttentionConfig;
      return ({ promptLength, start, length }) => {
        const threshold = xattentionChunkThreshold({ promptLength, processed: start, scheduled: length }, sa.xattentionThreshold, sa.numLastDenseTokensInPrefill);
        if (threshold === null) return null;
        return { threshold, maskSettings: { threshold, blockSize: sa.xattentionBlockSize, stride: sa.xattentionStride } };
      };
    },
  },
};

export { XAttentionMethod, XATTENTION_DEFAULTS, xattentionSettings, type XAttentionSettings } from './xattention.js';
export {
  estimateXAttention, estimateXAttentionChunk, checkXAttentionParams, selectBlocks as selectXAttentionBlocks,
  type XAttentionParams, type XAttentionEstimate,
} from './antidiagonal-estimate.js';
export { xattentionChunkThreshold, type XAttentionChunkState } from './xattention-chunk-rule.js';
