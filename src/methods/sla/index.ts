/** sla: the knob is the fraction of key blocks kept exact per query block; a video (non-causal) method in the bench menu. */
import type { MethodDescriptor } from '../descriptor.js';
import { SlaMethod } from './sla.js';

export const SLA: MethodDescriptor = {
  name: 'sla',
  version: 'v1',
  cls: SlaMethod,
  knob: { setting: 'topkRatio', min: 1e-3, max: 1, logScale: true },
  bench: { sweep: [{ settings: {}, causal: false, oneCallMaxLength: 16384 }], smoke: [] },
};

export { SlaMethod, parseSlaSettings, bhldF32, type SlaSettings, type SlaVariant } from './sla.js';
export {
  getBlockMap, slaTopk, selectTopBlocks as slaSelectTopBlocks, blockMapToMask as slaBlockMapToMask, selectedBlocks as slaSelectedBlocks,
  meanPool as slaMeanPool, sequenceMean as slaSequenceMean, type SlaBlockMap,
} from './sla-block-map.js';
export { slaLinearPart, applyFeatureMap, LINEAR_EPS, FEATURE_MAPS, type FeatureMap, type LinearBlocks } from './sla-linear-part.js';
export { slaSparsePart, floatLogits, type LogitsHook } from './sla-sparse-part.js';
export { parseProjection, loadProjectionFile, addProjection, type SlaProjection } from './sla-projection.js';
