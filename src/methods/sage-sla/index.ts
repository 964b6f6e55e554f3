/**
 * sage_sla: SLA's knob; not in the long-context bench menu (its GPU timing is bench/sla.ts's, beside
 * SLA's, on the head sizes its int8 kernels support).
 */
import type { MethodDescriptor } from '../descriptor.js';
import { SageSlaMethod } from './sage-sla.js';

export const SAGE_SLA: MethodDescriptor = {
  name: 'sage_sla',
  version: 'v1',
  cls: SageSlaMethod,
  knob: { setting: 'topkRatio', min: 1e-3, max: 1, logScale: true },
  bench: { sweep: [], smoke: [] },
};

export { SageSlaMethod, sageQuantize, quantizeInt8PerBlock, int8Logits, SAGE_SLA_HEAD_DIMS, type SageOperands } from './sage-sla.js';
