/// <reference types="@webgpu/types" />
/**
 * XAttention's row of the GPU method table (methods/index.ts): its plan (estimation, selection and
 * the CSR block list, xattention-plan.ts) encoded before the block-sparse attention dispatch, the
 * whole method run that way, and the backend's plan hook that the engine plans masks through.
 * `dense: true` plans nothing: attention runs dense, and the plan hook is absent.
 */
import { phaseOf, statsFromMask } from '../../../../core/stats.js';
import { InvalidArgumentError } from '../../../../core/errors.js';
import { XAttentionMethod } from '../../../../methods/xattention/xattention.js';
import { dimsOf, type GpuMethod, type GpuMethodPlanner, type GpuPlanHook, runPlanned } from '../gpu-method.js';
import { encodeXAttentionPlan, estimateXAttentionWebGpu } from './xattention-plan.js';

export const planXAttentionOnGpu: GpuMethodPlanner = async (ctx, encoder, method, views, p) => {
  if (!(method instanceof XAttentionMethod)) throw new InvalidArgumentError('method', method.name, 'an XAttentionMethod');
  const s = method.settings;
  const dims = dimsOf(p, s.blockSize, s.blockSize);
  if (s.dense) {
    return { dims, destroy() {}, finish: (mask, _w, phase) => ({ mask, stats: { ...statsFromMask(method.name, mask), phase } }) };
  }
  const plan = await encodeXAttentionPlan(ctx.device, encoder, views, s, { causal: p.causal, scale: p.scale });
  return {
    dims, blocks: plan.blocks, blockScores: plan.blockScores, destroy: plan.destroy,
    finish: (mask, blockScores, phase) => ({ mask, blockScores, stats: { ...statsFromMask(method.name, mask, { threshold: s.threshold }), phase } }),
  };
};

/** The mask and block scores estimated on the GPU and read back; same mask as planBlockMask. */
const planXAttentionHook: GpuPlanHook = (method) => {
  if (!(method instanceof XAttentionMethod) || method.settings.dense) return undefined;
  const s = method.settings;
  return async (ctx, q, k, opts) => {
    const { mask, blockScores } = await estimateXAttentionWebGpu(ctx, q, k, s, opts);
    return { mask, blockScores, stats: { ...statsFromMask(method.name, mask, { threshold: s.threshold }), phase: opts.phase ?? phaseOf(q.length) } };
  };
};

export const XATTENTION_GPU: GpuMethod = { planner: planXAttentionOnGpu, plan: planXAttentionHook, run: runPlanned(planXAttentionOnGpu) };
