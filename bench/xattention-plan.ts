/**
 * GPU planning benchmark for XAttention and tri-shape: validates the GPU plans against the CPU
 * methods on small shapes first (block lists must be equal), then times on device-resident
 * buffers (B=1, H=32, Hkv=8, D=128, causal, structured inputs) the plan alone and plan + block-
 * sparse attention in one submit, next to dense attention, and writes JSON.
 *
 *   node dist/bench/xattention-plan.js [--lengths 4096,16384] [--reps 5] [--dtype f16] [--out result.json]
 *     [--stride 8] [--block-size 64] [--rows dense,xattention-plan,xattention,trishape,estimate]
 *     [--estimates portable,tc,tc-prefetch,…] (the names in ESTIMATES; default all)
 *
 * `estimate` rows time the estimation dispatch alone, one row per --estimates variant (the portable
 * kernel, and tensor-core variants: tensor-core-xattention-estimate.ts), each first validated on a
 * small shape (W against the CPU's), with its share of the dense row of the same length.
 *
 * Napkin math: XAttention estimation scores (Lq/S)·(Lk/S)/2 strided entries per head (causal),
 * each S·D multiply-adds, twice (max/sum pass, then mass pass): 2·H·L²·D/S FLOPs. Attention FLOPs
 * are the dense causal 4·H·L²·D/2 ("effective TFLOP/s" for the sparse run).
 */
import { parseArgs } from 'node:util';
import {
  type AttentionDispatchOptions, createOutputTensor, createWebGpuContext, encodeAttention, encodeTriShapePlan, encodeXAttentionEstimate, encodeXAttentionPlan,
  estimateXAttentionWebGpu, type GpuTensorView, readBlockMask, triShapeBlockMaskWebGpu, uploadTensor, type WebGpuContext, type XAttentionGpuOptions,
} from '../src/backends/webgpu/index.js';
import { hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { attentionFlops, tflopsOf } from '../src/bench/cases.js';
import { checkOutput, checkSameBlocks } from '../src/bench/check.js';
import { webgpuDeviceInfo } from '../src/bench/device-info.js';
import { timeOnDevice, timerRuns } from '../src/bench/gpu-timing.js';
import { emitReport, scriptReport } from '../src/bench/report.js';
import { structuredQKV } from '../src/core/structured-inputs.js';
import type { DType } from '../src/core/tensor.js';
import { triShapeBlockMask, triShapeTokenRule } from '../src/methods/tri-shape/tri-shape.js';
import { estimateXAttention, type XAttentionParams } from '../src/methods/xattention/antidiagonal-estimate.js';

/** Estimation variants by name: the kernel and, on tensor cores, TcEstimateOptions. */
const ESTIMATES: Record<string, Pick<XAttentionGpuOptions, 'estimateKernel' | 'tensorCore'>> = {
  portable: { estimateKernel: 'portable' },
  tc: { estimateKernel: 'tensor-core', tensorCore: {} },
  'tc-prefetch': { estimateKernel: 'tensor-core', tensorCore: { prefetch: true } },
  'tc-unstaged': { estimateKernel: 'tensor-core', tensorCore: { stage: false } },
  'tc-plain': { estimateKernel: 'tensor-core', tensorCore: { swizzle: false } },
  'tc-rows2-sg2': { estimateKernel: 'tensor-core', tensorCore: { rowTiles: 2, subgroups: 2 } },
  'tc-rows2-sg2-prefetch': { estimateKernel: 'tensor-core', tensorCore: { rowTiles: 2, subgroups: 2, prefetch: true } },
  'tc-rows2-unstaged': { estimateKernel: 'tensor-core', tensorCore: { rowTiles: 2, stage: false } },
  'tc-1pass': { estimateKernel: 'tensor-core', tensorCore: { passes: 1 } },
  'tc-1pass-prefetch': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, prefetch: true } },
  'tc-1pass-unstaged': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, stage: false } },
  'tc-1pass-rows2-sg2': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, rowTiles: 2, subgroups: 2 } },
  // 32 key columns per step (the default's 64 halved): twice the workgroups per SM; with 2 row tiles
  // 4 subgroups fit staged (2026-12-04, third session; not measured yet).
  'tc-1pass-c32': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, cols: 32 } },
  'tc-1pass-c32-rows2': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, cols: 32, rowTiles: 2 } },
  // The next slice's Q fragments loaded before this slice's products (not measured yet).
  'tc-1pass-pq': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, prefetchQ: true } },
  'tc-1pass-c32-pq': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, cols: 32, prefetchQ: true } },
  // The GEMM tiling's default is 32-deep steps with panels where 48 KiB of workgroup memory is there.
  'tc-gemm': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true } },
  'tc-gemm-flat16': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmBk: 16, gemmPanels: false } },
  'tc-gemm-panels16': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmBk: 16, gemmPanels: true } },
  'tc-gemm-flat32': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmBk: 32, gemmPanels: false } },
  // Diagnostics of the default GEMM tiling, each with one stage left out (wrong W: run, not validated).
  'tc-gemm-diag-no-staging': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmDiag: 'no-staging' } },
  'tc-gemm-diag-no-mma': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmDiag: 'no-mma' } },
  'tc-gemm-diag-no-epilogue': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmDiag: 'no-epilogue' } },
  'tc-gemm-diag-global-only': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmDiag: 'global-only' } },
  'tc-gemm-diag-stores-only': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmDiag: 'stores-only' } },
  // Loads skipped past the operands by a test in the loop (the default clamps them, as the ceiling GEMM); clamped 16-deep.
  'tc-gemm-guarded': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmClamp: false } },
  'tc-gemm-clamp16': { estimateKernel: 'tensor-core', tensorCore: { passes: 1, gemm: true, gemmBk: 16 } },
};
const isDiagnostic = (name: string): boolean => ESTIMATES[name]?.tensorCore?.gemmDiag !== undefined;
const DIAGNOSTIC = 'diagnostic: ran, not validated (a stage is left out)';
const { values } = parseArgs({
  options: {
    lengths: { type: 'string', default: '4096,16384' }, out: { type: 'string' }, reps: { type: 'string', default: '5' }, dtype: { type: 'string', default: 'f16' },
    stride: { type: 'string', default: '8' }, 'block-size': { type: 'string', default: '64' },
    rows: { type: 'string', default: 'dense,xattention-plan,xattention,trishape' }, estimates: { type: 'string', default: Object.keys(ESTIMATES).join(',') },
  },
});
const [H, HKV, D] = [32, 8, 128];
const XATTN: XAttentionParams = { threshold: 0.9, blockSize: Number(values['block-size']), stride: Number(values.stride) };
const TRISHAPE = { sinkTokens: 128, localWindow: 1024, lastDenseQueries: 100 };

async function validate(ctx: WebGpuContext): Promise<Record<string, number>> {
  const { q, k } = structuredQKV({ heads: 4, kvHeads: 2, length: 700, headDim: D, seed: 3 });
  const cpu = estimateXAttention(q, k, XATTN, { causal: true });
  const gpu = await estimateXAttentionWebGpu(ctx, q, k, XATTN, { causal: true });
  checkSameBlocks('XAttention GPU block list', gpu.mask, cpu.mask);
  const dims = { batch: 1, heads: 4, queryLength: 3000, keyLength: 3000, blockRows: 64, blockCols: 64 };
  const tri = await triShapeBlockMaskWebGpu(ctx, dims, triShapeTokenRule(TRISHAPE));
  checkSameBlocks('tri-shape GPU block list', tri, triShapeBlockMask(dims, TRISHAPE));
  return { xattentionDensity: cpu.mask.density, trishapeDensity: tri.density };
}

/**
 * Each estimation variant's W on a small GQA shape (1024 tokens: a multiple of 32·S) against the
 * CPU's; a variant that fails to compile or to validate is recorded with its error and not timed.
 */
async function validateEstimates(ctx: WebGpuContext, names: string[]): Promise<Record<string, number | string>> {
  const { q, k } = structuredQKV({ heads: 4, kvHeads: 2, length: 1024, headDim: D, seed: 5 });
  const [q16, k16] = [q.toDType('f16'), k.toDType('f16')];
  const cpu = estimateXAttention(q16.toDType('f32'), k16.toDType('f32'), XATTN, { causal: true });
  const out: Record<string, number | string> = {};
  for (const name of names) {
    try {
      const gpu = await estimateXAttentionWebGpu(ctx, q16, k16, XATTN, { causal: true, ...ESTIMATES[name] });
      out[name] = isDiagnostic(name) ? DIAGNOSTIC : checkOutput(`estimate ${name} W`, gpu.blockScores, cpu.blockScores, 1e-4).relativeL2;
    } catch (err) {
      out[name] = `error: ${String((err as Error).message ?? err).slice(0, 2000)}`;
    }
    console.error(`estimate ${name}: ${out[name]}`);
  }
  return out;
}

type Views = { q: GpuTensorView; k: GpuTensorView; v: GpuTensorView; o: GpuTensorView };
type Variant = 'xattention-plan' | 'xattention' | 'trishape' | 'dense' | `estimate:${string}`;

/** Encodes one run of a variant; returns the buffers to free and, for plans, a mask reader. */
async function encodeVariant(ctx: WebGpuContext, encoder: GPUCommandEncoder, views: Views, variant: Variant) {
  const { device } = ctx;
  const L = views.q.length;
  const opts: AttentionDispatchOptions = { causal: true, scale: 1 / Math.sqrt(D), blocks: { kind: 'all' } };
  if (variant.startsWith('estimate:')) {
    const est = await encodeXAttentionEstimate(device, encoder, views, XATTN, { causal: true, scale: opts.scale, ...ESTIMATES[variant.slice(9)] });
    return { plan: undefined, destroy: () => est.destroy() };
  }
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
  const uniforms = variant === 'xattention-plan' ? [] : await encodeAttention(device, encoder, views, opts);
  return { plan, destroy: () => { plan?.destroy(); for (const u of uniforms) u.destroy(); } };
}

/**
 * One untimed run (compiles the pipelines, and its block list gives the density), then the shared
 * fenced series: median GPU ms of `reps` runs, and the per-kernel split of a profiled run.
 */
async function timeVariant(ctx: WebGpuContext, views: Views, variant: Variant, reps: number) {
  const { device } = ctx;
  const encoder = device.createCommandEncoder({ label: variant });
  const first = await encodeVariant(ctx, encoder, views, variant);
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  const density = first.plan ? (await readBlockMask(device, first.plan.blocks)).density : 1;
  first.destroy();
  const t = await timeOnDevice(device, async (e) => [await encodeVariant(ctx, e, views, variant)], { ...timerRuns(ctx, reps), warmRuns: 0 });
  return { ...t, density };
}

const ctx = await createWebGpuContext();
const { device } = ctx;
const dtype = (values.dtype === 'f16' && ctx.report.shaderF16 ? 'f16' : 'f32') as DType;
const reps = Number(values.reps);
const date = new Date();
const kinds = values.rows!.split(',');
const estimates = kinds.includes('estimate') ? values.estimates!.split(',') : [];
for (const name of estimates) if (!ESTIMATES[name]) throw new Error(`--estimates: unknown variant "${name}" (known: ${Object.keys(ESTIMATES).join(', ')})`);
if (estimates.some((n) => n !== 'portable') && (dtype !== 'f16' || !hasTensorCores(device))) throw new Error('tensor-core estimates need f16 and an adapter with subgroup matrices');
const estimateChecks = await validateEstimates(ctx, estimates);
const validation = { ...(await validate(ctx)), ...(estimates.length ? { estimateRelativeL2: estimateChecks } : {}) };
const timedEstimates = estimates.filter((e) => typeof estimateChecks[e] === 'number' || estimateChecks[e] === DIAGNOSTIC);
console.error(JSON.stringify(validation));
const rows: Record<string, unknown>[] = [];
for (const L of values.lengths!.split(',').map(Number)) {
  const t = structuredQKV({ heads: H, kvHeads: HKV, length: L, headDim: D, seed: 1 });
  const views: Views = {
    q: uploadTensor(device, t.q.toDType(dtype), 'bench.q'), k: uploadTensor(device, t.k.toDType(dtype), 'bench.k'),
    v: uploadTensor(device, t.v.toDType(dtype), 'bench.v'), o: createOutputTensor(device, { batch: 1, heads: H, length: L, headDim: D }, 'BHLD', dtype, 'bench.o'),
  };
  const denseFlops = attentionFlops({ batch: 1, heads: H, queryLength: L, keyLength: L, headDim: D, causal: true });
  const estimateFlops = (2 * H * L * L * D) / XATTN.stride;
  const variants = kinds.flatMap((v): Variant[] => (v === 'estimate' ? timedEstimates.map((e) => `estimate:${e}` as const) : [v as Variant]));
  let denseMs: number | undefined;
  for (const variant of variants) {
    let timed: Awaited<ReturnType<typeof timeVariant>>;
    try {
      timed = await timeVariant(ctx, views, variant, reps);
    } catch (err) { // e.g. a buffer over the device's binding limit at this length
      rows.push({ L, variant, error: String((err as Error).message ?? err).slice(0, 2000) });
      console.error(JSON.stringify(rows.at(-1)));
      continue;
    }
    const { ms, minMs, density, kernelMs } = timed;
    if (variant === 'dense') denseMs = ms;
    const tflops = tflopsOf(variant === 'xattention-plan' || variant.startsWith('estimate:') ? estimateFlops : denseFlops, ms);
    const ofDense = denseMs && variant !== 'dense' ? { ofDense: Number((ms / denseMs).toFixed(4)) } : {};
    const row = { L, variant, ms, density, tflops: Number(tflops.toFixed(2)), ...ofDense, minMs, ...(kernelMs ? { kernelMs } : {}) };
    console.error(JSON.stringify(row));
    rows.push(row);
  }
  for (const view of Object.values(views)) view.buffer.destroy();
}
const report = scriptReport('xattention-plan', webgpuDeviceInfo(ctx.report), {
  flopRule: 'attention rows: dense causal 4·B·H·L²·D/2 (effective for the sparse rows); xattention-plan and estimate rows: estimation 2·H·L²·D/S (both passes, also for one-pass variants: an equivalent rate)',
  timing: 'gpu-fence: median of --reps runs on device-resident inputs, after the warm-up (src/bench/gpu-timing.ts)',
  adapter: ctx.report, validation,
  shape: { batch: 1, heads: H, kvHeads: HKV, headDim: D, causal: true, dtype, inputs: 'structuredQKV' }, xattention: XATTN, estimates: Object.fromEntries(estimates.map((e) => [e, ESTIMATES[e]])), trishape: { ...TRISHAPE, br: 64, bc: 64 }, rows,
}, date);
ctx.destroy();
emitReport(report, { out: values.out });
