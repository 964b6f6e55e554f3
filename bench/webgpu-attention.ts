/**
 * WebGPU attention benchmark: validates every variant it times against the CPU reference on a
 * small shape first, then times dense and block-sparse causal attention on device-resident
 * buffers (B=1, H=32, Hkv=8, D=128) and writes JSON.
 *
 *   node dist/bench/webgpu-attention.js [--lengths 1024,4096] [--reps 5] [--robustness on|off|both] [--out result.json]
 *
 * `--robustness both` times every row on a device with Dawn's robustness (the default) and on one
 * without (disable_robustness): the cost of the bounds clamps per kernel, same inputs, same run.
 *
 * Napkin math: causal FLOPs = 4·B·H·L²·D / 2 (QKᵀ and PV); block-sparse counts the same dense
 * figure ("effective TFLOP/s") and the kept fraction of valid blocks.
 */
import { parseArgs } from 'node:util';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import {
  type AttentionDispatchOptions, blockSparseAttentionWebGpu, createOutputTensor, createWebGpuContext, encodeAttention, type GpuTensorView,
  uploadArray, uploadTensor, type WebGpuContext,
} from '../src/backends/webgpu/index.js';
import { hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { attentionFlops, randomCausalBlockMask, tflopsOf } from '../src/bench/cases.js';
import { checkOutput } from '../src/bench/check.js';
import { webgpuDeviceInfo } from '../src/bench/device-info.js';
import { type Destroyable, timeOnDevice, timerRuns } from '../src/bench/gpu-timing.js';
import { emitReport, scriptReport } from '../src/bench/report.js';
import { BlockMask } from '../src/core/block-mask.js';
import { type DType, HeadTensor } from '../src/core/tensor.js';

type Loop = 'unrolled' | 'rolled';
type Kernel = NonNullable<AttentionDispatchOptions['kernel']>;
const [H, HKV, D] = [32, 8, 128];

async function validate(ctx: WebGpuContext, dtype: DType): Promise<Record<string, number>> {
  const q = HeadTensor.randn({ batch: 1, heads: 4, length: 300, headDim: D }, 1, { dtype });
  const k = HeadTensor.randn({ batch: 1, heads: 1, length: 300, headDim: D }, 2, { dtype });
  const v = HeadTensor.randn({ batch: 1, heads: 1, length: 300, headDim: D }, 3, { dtype });
  const dims = { batch: 1, heads: 4, queryLength: 300, keyLength: 300, blockRows: 64, blockCols: 64, causal: true };
  const out: Record<string, number> = {};
  for (const [name, mask] of [['dense', BlockMask.full(dims)], ['sparse', randomCausalBlockMask(dims, 0.3, 5)]] as const) {
    const gpu = await blockSparseAttentionWebGpu(ctx, q, k, v, mask, { causal: true });
    out[name] = checkOutput(`${dtype} ${name}`, gpu, flashAttention(q, k, v, { causal: true, mask }), dtype === 'f32' ? 1e-5 : 2e-3).relativeL2;
  }
  return out;
}

interface Operands {
  q: GpuTensorView;
  k: GpuTensorView;
  v: GpuTensorView;
  o: GpuTensorView;
}

/** B=1, H=32, Hkv=8, D=128 operands on the device (generated once per length and dtype). */
function uploadOperands(ctx: WebGpuContext, L: number, dtype: DType): Operands {
  const { device } = ctx;
  return {
    q: uploadTensor(device, HeadTensor.randn({ batch: 1, heads: H, length: L, headDim: D }, 1, { dtype, std: 0.5 }), 'bench.q'),
    k: uploadTensor(device, HeadTensor.randn({ batch: 1, heads: HKV, length: L, headDim: D }, 2, { dtype, std: 0.5 }), 'bench.k'),
    v: uploadTensor(device, HeadTensor.randn({ batch: 1, heads: HKV, length: L, headDim: D }, 3, { dtype }), 'bench.v'),
    o: createOutputTensor(device, { batch: 1, heads: H, length: L, headDim: D }, 'BHLD', dtype, 'bench.o'),
  };
}

async function timeOne(ctx: WebGpuContext, ops: Operands, loop: Loop, mask: BlockMask | undefined, reps: number, kernel: Kernel) {
  const { device } = ctx;
  const opts: AttentionDispatchOptions = { causal: true, scale: 1 / Math.sqrt(D), blocks: { kind: 'all' }, headDimLoop: loop, kernel };
  const extra: Destroyable[] = [];
  if (mask) {
    const rowPtr = uploadArray(device, mask.rowPtr, 'bench.rowPtr');
    const colIdx = uploadArray(device, mask.colIdx, 'bench.colIdx');
    extra.push(rowPtr, colIdx);
    opts.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: mask.blockRows, blockCols: mask.blockCols };
  }
  try {
    return await timeOnDevice(device, (encoder) => encodeAttention(device, encoder, ops, opts), timerRuns(ctx, reps));
  } finally {
    for (const b of extra) b.destroy();
  }
}

const { values } = parseArgs({
  options: { lengths: { type: 'string', default: '1024,4096,8192' }, out: { type: 'string' }, reps: { type: 'string', default: '5' }, robustness: { type: 'string', default: 'on' } },
});
if (!['on', 'off', 'both'].includes(values.robustness!)) throw new Error(`--robustness must be on, off or both, got ${values.robustness}`);
const reps = Number(values.reps);
const date = new Date();
const rows: Record<string, unknown>[] = [];
const validation: Record<string, unknown> = {};
let ctx!: WebGpuContext;
for (const robust of values.robustness === 'both' ? [true, false] : [values.robustness === 'on']) {
  ctx = await createWebGpuContext({ robustness: robust });
  const label = robust ? 'robust' : 'no-robustness';
  validation[label] = { f32: await validate(ctx, 'f32'), f16: ctx.report.shaderF16 ? await validate(ctx, 'f16') : null };
  console.error(JSON.stringify({ [label]: validation[label] }));
  await timeAll(ctx, robust);
  if (values.robustness === 'both' && robust) ctx.destroy();
}

async function timeAll(ctx: WebGpuContext, robustness: boolean): Promise<void> {
for (const L of values.lengths!.split(',').map(Number)) {
  const dims = { batch: 1, heads: H, queryLength: L, keyLength: L, blockRows: 64, blockCols: 64, causal: true };
  const flops = attentionFlops({ ...dims, headDim: D });
  const mask = randomCausalBlockMask(dims, 0.2, 7);
  const configs: [DType, Loop, BlockMask | undefined, Kernel][] = [
    ['f32', 'unrolled', undefined, 'portable'], ['f16', 'unrolled', undefined, 'portable'], ['f16', 'unrolled', mask, 'portable'],
  ];
  if (hasTensorCores(ctx.device)) configs.push(['f16', 'unrolled', undefined, 'tensor-core'], ['f16', 'unrolled', mask, 'tensor-core']);
  const operands = new Map<DType, Operands>();
  for (const [dtype, loop, m, kernel] of configs) {
    if (dtype === 'f16' && !ctx.report.shaderF16) continue;
    if (!operands.has(dtype)) operands.set(dtype, uploadOperands(ctx, L, dtype));
    const t = await timeOne(ctx, operands.get(dtype)!, loop, m, reps, kernel);
    const row = {
      L, robustness, dtype, headDimLoop: loop, impl: kernel, kernel: m ? 'block-sparse' : 'dense', density: m ? m.density : 1, ms: t.ms,
      effectiveTflops: tflopsOf(flops, t.ms), minMs: t.minMs, ...(t.kernelMs ? { kernelMs: t.kernelMs } : {}),
    };
    console.error(JSON.stringify(row));
    rows.push(row);
  }
  for (const ops of operands.values()) for (const t of Object.values(ops)) t.buffer.destroy();
}
}
const report = scriptReport('webgpu-attention', webgpuDeviceInfo(ctx.report), {
  flopRule: 'dense causal 4·B·H·L²·D/2; effectiveTflops = those dense FLOPs / ms, for block-sparse rows too',
  timing: 'gpu-fence: median of --reps runs on device-resident inputs, after the warm-up (src/bench/gpu-timing.ts)',
  adapter: ctx.report, validation, shape: { batch: 1, heads: H, kvHeads: HKV, headDim: D, causal: true, blocks: '64×64' }, rows,
}, date);
ctx.destroy();
emitReport(report, { out: values.out });
