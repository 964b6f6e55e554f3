/**
 * The GPU method table: one row per method with GPU work of its own (planner, plan hook, whole
 * run, timer; see gpu-method.ts), keyed by method name. The backend's methodHooks, the benchmark
 * target's planners and timers all read it; a method absent here takes the generic path (its CPU
 * plan, then the block-sparse kernel). Token rules' visibility hooks: gpu-token-rules.ts.
 */
import { FLASH_SKIP_GPU } from './flash-skip-softmax/flash-skip-gpu.js';
import type { GpuMethod } from './gpu-method.js';
import { SLA_GPU } from './sla/sla-gpu.js';
import { TRI_SHAPE_GPU } from './tri-shape/trishape-gpu.js';
import { XATTENTION_GPU } from './xattention/xattention-gpu.js';

export const GPU_METHODS: Readonly<Record<string, GpuMethod>> = {
  xattention: XATTENTION_GPU,
  tri_shape: TRI_SHAPE_GPU,
  flash_skip_softmax: FLASH_SKIP_GPU,
  sla: SLA_GPU,
  sage_sla: SLA_GPU,
};

/** The row of a method name, or undefined (names are looked up as own keys only). */
export function gpuMethod(name: string): GpuMethod | undefined {
  return Object.hasOwn(GPU_METHODS, name) ? GPU_METHODS[name] : undefined;
}

export { GPU_TOKEN_RULES, type TokenRuleKey, tokenRuleHook } from './gpu-token-rules.js';
export type { GpuMethod, GpuMethodPlan, GpuMethodPlanner, GpuMethodRunner, GpuMethodTimer, GpuPlanHook } from './gpu-method.js';
