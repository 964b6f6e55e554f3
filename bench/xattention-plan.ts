/**
 * GPU planning benchmark for XAttention and tri-shape: validates the GPU plans against the CPU
 * methods on small shapes first (block lists must be equal), then times on device-resident
 * buffers (B=1, H=32, Hkv=8, D=128, causal, structured inputs) the plan alone and plan + block-
 * sparse attention in one submit, next to dense attention, and writes JSON.
 *
 *   node dist/bench/xattention-plan.js [--lengths 4096,16384] [--reps 5] [--dtype f16] [--out result.json]
 *
 * Napkin math: XAttention estimation scores (Lq/S)·(Lk/S)/2 strided entries per head (causal),
 * each S·D multiply-adds, twice (max/sum pass, then mass pass): 2·H·L²·D/S FLOPs. Attention FLOPs
 * are the dense causal 4·H·L²·D/2 ("effective TFLOP/s" for the sparse run).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type AttentionDispatchOptions, encodeAttention } from '../src/backends/webgpu/attention/attention-dispatch.js';
import { readBlockMask } from '../src/backends/webgpu/attention/block-list.js';
import { createOutputTensor, type GpuTensorView, uploadTensor } from '../src/backends/webgpu/runtime/buffers.js';
import { createWebGpuContext, type WebGpuContext } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { encodeTriShapePlan, triShapeBlockMaskWebGpu } from '../src/backends/webgpu/methods/tri-shape/trishape-blocks.js';
import { encodeXAttentionPlan, estimateXAttentionWebGpu } from '../src/backends/webgpu/methods/xattention/xattention-plan.js';
import type { BlockMask } from '../src/core/block-mask.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import type { DType } from '../src/core/tensor.js';
import { triShapeBlockMask, triShapeTokenRule } from '../src/methods/tri-shape/tri-shape.js';
import { estimateXAttention, type XAttentionParams } from '../src/methods/xattention/antidiagonal-estimate.js';

const [H, HKV, D] = [32, 8, 128];
const XATTN: XAttentionParams = { threshold: 0.9, blockSize: 64, stride: 8 };
const TRISHAPE = { sinkTokens: 128, localWindow: 1024, lastDenseQueries: 100 };

function sameMask(a: BlockMask, b: BlockMask): boolean {
  return a.rowPtr.length === b.rowPtr.length && a.rowPtr.every((x, i) => x === b.rowPtr[i]) && a.colIdx.length === b.colIdx.length && a.colIdx.every((x, i) => x === b.colIdx[i]);
}

async function validate(ctx: WebGpuContext): Promise<Record<string, number>> {
  const { q, k } = structuredQKV({ heads: 4, kvHeads: 2, length: 700, headDim: D, seed: 3 });
  const cpu = estimateXAttention(q, k, XATTN, { causal: true });
  const gpu = await estimateXAttentionWebGpu(ctx, q, k, XATTN, { causal: true });
  if (!sameMask(gpu.mask, cpu.mask)) throw new Error('validation failed: XAttention GPU block list differs from the CPU one');
  const dims = { batch: 1, heads: 4, queryLength: 3000, keyLength: 3000, blockRows: 64, blockCols: 64 };
  const tri = await triShapeBlockMaskWebGpu(ctx, dims, triShapeTokenRule(TRISHAPE));
  if (!sameMask(tri, triShapeBlockMask(dims, TRISHAPE))) throw new Error('validation failed: tri-shape GPU block list differs from the CPU one');
  return { xattentionDensity: cpu.mask.density, trishapeDensity: tri.density };
}

type Views = { q: GpuTensorView; k: GpuTensorView; v: GpuTensorView; o: GpuTensorView };
type Variant = 'xattention-plan' | 'xattention' | 'trishape' | 'dense';

/** Encodes one run of a variant; returns the buffers to free and, for plans, a mask reader. */
async function encodeVariant(ctx: WebGpuContext, encoder: GPUCommandEncoder, views: Views, variant: Variant) {
  const { device } = ctx;
  const L = views.q.length;
  const opts: AttentionDispatchOptions = { causal: true, scale: 1 / Math.sqrt(D), blocks: { kind: 'all' } };
  let plan: { blocks: Parameters<typeof readBlockMask>[1]; destroy(): void } | undefined;
  if (variant.startsWith('xattention')) plan = await encodeXAttentionPlan(device, encoder, views, XATTN, { causal: true, scale: opts.scale });
  if (variant === 'trishape') {
    plan = await encodeTriShapePlan(device, encoder, { batch: 1, heads: H, queryLength: L, keyLength: L, blockRows: 64, blockCols: 64 }, triShapeTokenRule(TRISHAPE));
  }
  if (plan) {
    const { rowPtr, colIdx, dims, tokenRule } = plan.blocks;
    opts.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: dims.blockRows, blockCols: dims.blockCols };
    opts.tokenRule = tokenRule;
  }
  const uniform = variant === 'xattention-plan' ? undefined : await encodeAttention(device, encoder, views, opts);
  return { plan, destroy: () => { plan?.destroy(); uniform?.destroy(); } };
}

/** Median fenced wall-clock ms of `reps` runs after one warm-up, and the plan's density. */
async function timeVariant(ctx: WebGpuContext, views: Views, variant: Variant, reps: number): Promise<{ ms: number; density: number }> {
  const { device } = ctx;
  let density = 1;
  const times: number[] = [];
  for (let r = -1; r < reps; r++) {
    const t = performance.now();
    const encoder = device.createCommandEncoder({ label: variant });
    const { plan, destroy } = await encodeVariant(ctx, encoder, views, variant);
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    if (r >= 0) times.push(performance.now() - t);
    if (plan && r === -1) density = (await readBlockMask(device, plan.blocks)).density;
    destroy();
  }
  return { ms: times.sort((a, b) => a - b)[Math.floor(times.length / 2)], density };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { lengths: { type: 'string', default: '4096,16384' }, out: { type: 'string' }, reps: { type: 'string', default: '5' }, dtype: { type: 'string', default: 'f16' } } });
  const ctx = await createWebGpuContext();
  const dtype = (values.dtype === 'f16' && ctx.report.shaderF16 ? 'f16' : 'f32') as DType;
  const reps = Number(values.reps);
  const result = {
    date: new Date().toISOString(), adapter: ctx.report, validation: await validate(ctx),
    shape: { batch: 1, heads: H, kvHeads: HKV, headDim: D, causal: true, dtype, inputs: 'structuredQKV' }, xattention: XATTN, trishape: { ...TRISHAPE, br: 64, bc: 64 },
    rows: [] as Record<string, unknown>[],
  };
  console.error(JSON.stringify(result.validation));
  for (const L of values.lengths!.split(',').map(Number)) {
    const t = structuredQKV({ heads: H, kvHeads: HKV, length: L, headDim: D, seed: 1 });
    const { device } = ctx;
    const views: Views = {
      q: uploadTensor(device, t.q.toDType(dtype), 'bench.q'), k: uploadTensor(device, t.k.toDType(dtype), 'bench.k'),
      v: uploadTensor(device, t.v.toDType(dtype), 'bench.v'), o: createOutputTensor(device, { batch: 1, heads: H, length: L, headDim: D }, 'BHLD', dtype, 'bench.o'),
    };
    const attentionFlops = (4 * H * L * L * D) / 2;
    const estimateFlops = (2 * H * L * L * D) / XATTN.stride;
    for (const variant of ['dense', 'xattention-plan', 'xattention', 'trishape'] as const) {
      const { ms, density } = await timeVariant(ctx, views, variant, reps);
      const tflops = (variant === 'xattention-plan' ? estimateFlops : attentionFlops) / ms / 1e9;
      const row = { L, variant, ms, density, tflops: Number(tflops.toFixed(2)) };
      console.error(JSON.stringify(row));
      result.rows.push(row);
    }
    for (const view of Object.values(views)) view.buffer.destroy();
  }
  ctx.destroy();
  const json = JSON.stringify(result, null, 2);
  if (values.out) writeFileSync(values.out, json);
  else console.log(json);
}

await main();
