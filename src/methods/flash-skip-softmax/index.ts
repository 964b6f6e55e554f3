/**
 * flash_skip_softmax, both versions: the knob is the skip threshold (higher, sparser), calibrated by
 * ModelOpt's exponential fit; the eval's search turns the prefill threshold with ModelOpt's default
 * decode threshold; its CPU plan computes every QKᵀ tile.
 */
import type { MethodDescriptor } from '../descriptor.js';
import { FlashSkipSoftmax, FlashSkipSoftmaxSequential } from './flash-skip-softmax.js';

const common: Omit<MethodDescriptor, 'version' | 'cls'> = {
  name: 'flash_skip_softmax',
  knob: {
    setting: 'threshold', min: 1e-9, max: 0.5, logScale: true, sparserWhenHigher: true, fit: 'exponential',
    settings: (v) => ({ threshold: { prefill: v, decode: 1e-4 } }),
  },
  bench: {
    sweep: [{ settings: {}, causal: true, oneCallMaxLength: 32768 }],
    smoke: [],
    planFlops: (qk) => qk,
  },
};

export const FLASH_SKIP_SOFTMAX_V1: MethodDescriptor = { ...common, version: 'v1', cls: FlashSkipSoftmax };
export const FLASH_SKIP_SOFTMAX_V2: MethodDescriptor = { ...common, version: 'v2', cls: FlashSkipSoftmaxSequential };

export {
  FlashSkipSoftmax, FlashSkipSoftmaxSequential, DEFAULT_THRESHOLD as FLASH_SKIP_DEFAULT_THRESHOLD, flashSkipStatistics, groupConsensusView,
  parseFlashSkipSettings,
  type ExponentialFit, type FlashSkipCalibration, type FlashSkipCalibrationRequest, type FlashSkipSettings, type PhaseValues,
} from './flash-skip-softmax.js';
export { TileSkipDecider, scoreTile, tileOperands, type FlashSkipVariant, type TileOperands } from './flash-skip-tiles.js';
export { flashSkipAttention, type FlashSkipAttentionOptions, type FlashSkipAttentionResult } from './flash-skip-cpu.js';
export { FIT_SPARSITY_RANGE, fitExponential, flashSkipTileMargins, sparsityAt, type ExponentialFitResult, type TileMargins } from './flash-skip-fit.js';
