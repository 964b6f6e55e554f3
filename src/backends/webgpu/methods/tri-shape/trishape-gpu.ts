/// <reference types="@webgpu/types" />
/**
 * Tri-shape's row of the GPU method table (methods/index.ts): the block list from a GPU kernel
 * (trishape-blocks.ts), carrying the token rule that the attention skeletons apply inside kept
 * blocks through tri-shape's visibility hook (trishape-visibility.ts).
 */
import { InvalidArgumentError } from '../../../../core/errors.js';
import { statsFromMask } from '../../../../core/stats.js';
import { triShapeDenseRows, TriShapeMethod, triShapeTokenRule } from '../../../../methods/tri-shape/tri-shape.js';
import { dimsOf, type GpuMethod, type GpuMethodPlan, type GpuMethodPlanner, runPlanned } from '../gpu-method.js';
import { encodeTriShapePlan } from './trishape-blocks.js';

export const planTriShapeOnGpu: GpuMethodPlanner = async (ctx, encoder, method, _views, p, opts = {}) => {
  if (!(method instanceof TriShapeMethod)) throw new InvalidArgumentError('method', method.name, 'a TriShapeMethod');
  if (!p.causal) throw new InvalidArgumentError('causal', false, 'true: tri-shape is defined for causal attention only');
  const { br, bc } = method.settings;
  const dims = dimsOf(p, br, bc);
  const finish: GpuMethodPlan['finish'] = (mask, _w, phase) => ({ mask, stats: { ...statsFromMask(method.name, mask), phase } });
  // The same dense rows as the CPU plan (a chunk of a prompt, a window of a call): tri-shape.ts.
  const rows = triShapeDenseRows(method.settings, p.queryLength, p.keyLength, opts);
  if (rows === 'dense') return { dims, destroy() {}, finish };
  const plan = await encodeTriShapePlan(ctx.device, encoder, dims, triShapeTokenRule({ ...method.settings, lastDenseQueries: rows }));
  return { dims, blocks: plan.blocks, destroy: plan.destroy, finish };
};

export const TRI_SHAPE_GPU: GpuMethod = { planner: planTriShapeOnGpu, run: runPlanned(planTriShapeOnGpu) };
