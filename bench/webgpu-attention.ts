/**
 * WebGPU attention benchmark: validates every variant it times against the CPU reference on a
 * small shape first, then times dense and block-sparse causal attention on device-resident
 * buffers (B=1, H=32, Hkv=8, D=128) and writes JSON.
 *
 *   node dist/bench/webgpu-attention.js [--lengths 1024,4096] [--out result.json]
 *
 * Napkin math: causal FLOPs = 4·B·H·L²·D / 2 (QKᵀ and PV); block-sparse counts the same dense
 * figure ("effective TFLOP/s") and the kept fraction of valid blocks.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { type AttentionDispatchOptions, encodeAttention } from '../src/backends/webgpu/attention/attention-dispatch.js';
import { blockSparseAttentionWebGpu } from '../src/backends/webgpu/attention/block-sparse-attention.js';
import { createOutputTensor, type GpuTensorView, uploadArray, uploadTensor } from '../src/backends/webgpu/runtime/buffers.js';
import { createWebGpuContext, hasTensorCores, type WebGpuContext } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { BlockMask } from '../src/core/block-mask.js';
import { randomCausalBlockMask } from '../src/bench/cases.js';
import { type DType, HeadTensor } from '../src/core/tensor.js';
import { relativeL2Error } from '../src/core/error-metrics.js';

type Loop = 'unrolled' | 'rolled';

async function validate(ctx: WebGpuContext, dtype: DType): Promise<Record<string, number>> {
  const q = HeadTensor.randn({ batch: 1, heads: 4, length: 300, headDim: 128 }, 1, { dtype });
  const k = HeadTensor.randn({ batch: 1, heads: 1, length: 300, headDim: 128 }, 2, { dtype });
  const v = HeadTensor.randn({ batch: 1, heads: 1, length: 300, headDim: 128 }, 3, { dtype });
  const dims = { batch: 1, heads: 4, queryLength: 300, keyLength: 300, blockRows: 64, blockCols: 64, causal: true };
  const out: Record<string, number> = {};
  for (const [name, mask] of [['dense', BlockMask.full(dims)], ['sparse', randomCausalBlockMask(dims, 0.3, 5)]] as const) {
    const gpu = (await blockSparseAttentionWebGpu(ctx, q, k, v, mask, { causal: true })).toFloat32Array();
    const err = relativeL2Error(gpu, flashAttention(q, k, v, { causal: true, mask }).toFloat32Array());
    if (!(err < (dtype === 'f32' ? 1e-5 : 2e-3))) throw new Error(`validation failed: ${dtype} ${name} relative L2 error ${err}`);
    out[name] = err;
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
  const [H, Hkv, D] = [32, 8, 128];
  return {
    q: uploadTensor(device, HeadTensor.randn({ batch: 1, heads: H, length: L, headDim: D }, 1, { dtype, std: 0.5 }), 'bench.q'),
    k: uploadTensor(device, HeadTensor.randn({ batch: 1, heads: Hkv, length: L, headDim: D }, 2, { dtype, std: 0.5 }), 'bench.k'),
    v: uploadTensor(device, HeadTensor.randn({ batch: 1, heads: Hkv, length: L, headDim: D }, 3, { dtype }), 'bench.v'),
    o: createOutputTensor(device, { batch: 1, heads: H, length: L, headDim: D }, 'BHLD', dtype, 'bench.o'),
  };
}

type Kernel = NonNullable<AttentionDispatchOptions['kernel']>;

async function timeOne(ctx: WebGpuContext, ops: Operands, loop: Loop, mask: BlockMask | undefined, reps: number, kernel: Kernel): Promise<number> {
  const { device } = ctx;
  const { q, k, v, o } = ops;
  const D = q.headDim;
  const opts: AttentionDispatchOptions = { causal: true, scale: 1 / Math.sqrt(D), blocks: { kind: 'all' }, headDimLoop: loop, kernel };
  const extra: GPUBuffer[] = [];
  if (mask) {
    const rowPtr = uploadArray(device, mask.rowPtr, 'bench.rowPtr');
    const colIdx = uploadArray(device, mask.colIdx, 'bench.colIdx');
    extra.push(rowPtr, colIdx);
    opts.blocks = { kind: 'csr', rowPtr, colIdx, blockRows: mask.blockRows, blockCols: mask.blockCols };
  }
  const run = async () => {
    const encoder = device.createCommandEncoder({ label: 'bench' });
    const params = await encodeAttention(device, encoder, { q, k, v, o }, opts);
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    params.destroy();
  };
  await run(); // compile + warm up
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  for (const b of extra) b.destroy();
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { lengths: { type: 'string', default: '1024,4096,8192' }, out: { type: 'string' }, reps: { type: 'string', default: '5' } } });
  const ctx = await createWebGpuContext();
  const lengths = values.lengths!.split(',').map(Number);
  const reps = Number(values.reps);
  const result = {
    date: new Date().toISOString(),
    adapter: ctx.report,
    validation: { f32: await validate(ctx, 'f32'), f16: ctx.report.shaderF16 ? await validate(ctx, 'f16') : null },
    shape: { batch: 1, heads: 32, kvHeads: 8, headDim: 128, causal: true, blocks: '64×64' },
    rows: [] as Record<string, unknown>[],
  };
  console.error(JSON.stringify(result.validation));
  for (const L of lengths) {
    const flops = (4 * 32 * L * L * 128) / 2;
    const dims = { batch: 1, heads: 32, queryLength: L, keyLength: L, blockRows: 64, blockCols: 64, causal: true };
    const mask = randomCausalBlockMask(dims, 0.2, 7);
    const tc = hasTensorCores(ctx.device);
    const configs: [DType, Loop, BlockMask | undefined, Kernel][] = [
      ['f32', 'unrolled', undefined, 'portable'], ['f16', 'unrolled', undefined, 'portable'], ['f16', 'unrolled', mask, 'portable'],
    ];
    if (tc) configs.push(['f16', 'unrolled', undefined, 'tensor-core'], ['f16', 'unrolled', mask, 'tensor-core']);
    const operands = new Map<DType, Operands>();
    for (const [dtype, loop, m, kernel] of configs) {
      if (dtype === 'f16' && !ctx.report.shaderF16) continue;
      if (!operands.has(dtype)) operands.set(dtype, uploadOperands(ctx, L, dtype));
      const ms = await timeOne(ctx, operands.get(dtype)!, loop, m, reps, kernel);
      const row = { L, dtype, headDimLoop: loop, impl: kernel, kernel: m ? 'block-sparse' : 'dense', density: m ? m.density : 1, ms, effectiveTflops: flops / ms / 1e9 };
      console.error(JSON.stringify(row));
      result.rows.push(row);
    }
    for (const ops of operands.values()) for (const t of Object.values(ops)) t.buffer.destroy();
  }
  ctx.destroy();
  const json = JSON.stringify(result, null, 2);
  if (values.out) writeFileSync(values.out, json);
  else console.log(json);
}

await main();
