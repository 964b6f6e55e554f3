/// <reference types="@webgpu/types" />
/**
 * The Llama forward pass of llama.ts on WebGPU. Weights are uploaded once (f16 where the adapter
 * has shader-f16, else f32; Q/K/V fused into one [QKV, hidden] matrix, gate and up into one
 * [2I, hidden]); the residual stream stays f32 on the GPU, every other activation in the run's
 * dtype. A forward pass is one command buffer: per layer RMSNorm, the fused QKV GEMM, RoPE on q and
 * k in place, K/V copied into the layer's cache buffer, attention (encodeAttention over views of the
 * cache, with the module's method through gpu-attention.ts: every method with GPU kernels), O GEMM added
 * into the residual, RMSNorm, gate|up GEMM, SiLU·up, down GEMM added into the residual; then the
 * final norm and LM head over the rows asked for, the only read-back. Statistics, when
 * `model.stats` (or `model.onPlan`) is set, read back each layer's plan after the pass
 * (gpu-attention.ts runs every method with GPU kernels).
 */
import type { AttentionProblem } from '../core/attention-shape.js';
import { InvalidArgumentError, requireInteger, UnsupportedError } from '../core/errors.js';
import { fromF16Bits, toF16Bits } from '../core/f16.js';
import { HeadTensor } from '../core/tensor.js';
import type { StorageType } from '../backends/webgpu/model/gemm.js';
import { copyRowsProgram, embedProgram, flatGrid, ropeProgram, ropeTable, rmsNormProgram, rowGrid, siluMulProgram } from '../backends/webgpu/model/layer-ops.js';
import { type GemmKernel, KernelEncoder, storageBuffer } from '../backends/webgpu/model/model-kernels.js';
import { type GpuTensorView, readBuffer, uploadArray } from '../backends/webgpu/runtime/buffers.js';
import type { WebGpuContext } from '../backends/webgpu/runtime/webgpu-device.js';
import type { LinearWeights } from './checkpoint.js';
import type { ForwardOptions, ForwardResult, LlamaModel } from './llama.js';
import { checkFits, type GpuMemoryPlan, gpuMemoryPlan } from './gpu-memory.js';
import { concatRows } from './ops.js';
import { encodeModelAttention, type PendingPlan } from './gpu-attention.js';

export interface GpuLlamaOptions {
  /** Storage type of weights and activations: 'f16' (default where the adapter has shader-f16) or 'f32'. */
  dtype?: StorageType;
  /** GEMM kernel: 'auto' (subgroup matrices where the adapter has them and the shape allows), 'portable', 'tensor-core'. */
  gemm?: GemmKernel;
}

/** The KV cache of one sequence on the GPU: per layer K and V buffers [capacity, Hkv, D] and the RoPE table. */
export class GpuKvCache {
  length = 0;
  constructor(
    readonly keys: GPUBuffer[],
    readonly values: GPUBuffer[],
    readonly rope: GPUBuffer,
    readonly capacity: number,
  ) {}

  destroy(): void {
    for (const b of [...this.keys, ...this.values, this.rope]) b.destroy();
  }
}

interface LayerBuffers {
  inputNorm: GPUBuffer;
  postNorm: GPUBuffer;
  qkv: GPUBuffer;
  qkvBias?: GPUBuffer;
  o: GPUBuffer;
  oBias?: GPUBuffer;
  gateUp: GPUBuffer;
  gateUpBias?: GPUBuffer;
  down: GPUBuffer;
  downBias?: GPUBuffer;
}

/** Activations of one chunk of `rows` tokens; reused while chunks fit. */
interface Scratch {
  rows: number;
  ids: GPUBuffer;
  x: GPUBuffer;
  h: GPUBuffer;
  qkv: GPUBuffer;
  attn: GPUBuffer;
  gu: GPUBuffer;
  mlp: GPUBuffer;
}


export class GpuLlamaModel {
  readonly dtype: StorageType;
  readonly gemm: GemmKernel;
  private readonly layers: LayerBuffers[];
  private readonly embed: GPUBuffer;
  private readonly finalNorm: GPUBuffer;
  private readonly lmHead: GPUBuffer;
  private scratch?: Scratch;
  private logitsBuf?: GPUBuffer;

  constructor(readonly model: LlamaModel, readonly ctx: WebGpuContext, opts: GpuLlamaOptions = {}) {
    const f16 = ctx.device.features.has('shader-f16');
    this.dtype = opts.dtype ?? (f16 ? 'f16' : 'f32');
    this.gemm = opts.gemm ?? 'auto';
    if (this.dtype === 'f16' && !f16) throw new UnsupportedError('dtype f16 needs the shader-f16 feature, which this adapter lacks');
    const w = model.weights;
    this.embed = this.upload(w.embed, 'embed');
    this.finalNorm = uploadArray(ctx.device, w.finalNorm, 'final-norm');
    this.lmHead = this.upload(w.lmHead.weight, 'lm-head');
    this.layers = w.layers.map((l, i) => {
      const bias = (ls: LinearWeights[], label: string) => (ls[0].bias ? uploadArray(ctx.device, concatRows(ls.map((x) => x.bias!)), label) : undefined);
      return {
        inputNorm: uploadArray(ctx.device, l.inputNorm, `l${i}.input-norm`),
        postNorm: uploadArray(ctx.device, l.postAttentionNorm, `l${i}.post-norm`),
        qkv: this.upload(concatRows([l.q.weight, l.k.weight, l.v.weight]), `l${i}.qkv`),
        qkvBias: bias([l.q, l.k, l.v], `l${i}.qkv-bias`),
        o: this.upload(l.o.weight, `l${i}.o`),
        oBias: bias([l.o], `l${i}.o-bias`),
        gateUp: this.upload(concatRows([l.gate.weight, l.up.weight]), `l${i}.gate-up`),
        gateUpBias: bias([l.gate, l.up], `l${i}.gate-up-bias`),
        down: this.upload(l.down.weight, `l${i}.down`),
        downBias: bias([l.down], `l${i}.down-bias`),
      };
    });
  }

  private upload(data: Float32Array, label: string): GPUBuffer {
    return uploadArray(this.ctx.device, this.dtype === 'f16' ? toF16Bits(data) : data, label);
  }

  /** Bytes of the cache, scratch and weights for `capacity` positions in chunks of `chunk`, `logitRows` rows of logits read (see gpu-memory.ts). */
  memoryPlan(capacity: number, chunk: number, logitRows = 1): GpuMemoryPlan {
    return gpuMemoryPlan(this.model.config, this.dtype, capacity, chunk, logitRows);
  }

  /** A cache for `capacity` positions; throws before allocating when it cannot fit the device. */
  newCache(capacity: number): GpuKvCache {
    requireInteger('capacity', capacity, 1);
    const c = this.model.config;
    checkFits(this.memoryPlan(capacity, 1), this.ctx.device.limits);
    const bytes = capacity * c.numKvHeads * c.headDim * (this.dtype === 'f16' ? 2 : 4);
    const make = (kind: string) => Array.from({ length: c.numLayers }, (_, l) => storageBuffer(this.ctx.device, bytes, `l${l}.${kind}-cache`));
    const rope = uploadArray(this.ctx.device, ropeTable(this.model.rope.invFreq, capacity), 'rope-table');
    return new GpuKvCache(make('k'), make('v'), rope, capacity);
  }

  private ensureScratch(rows: number): Scratch {
    if (this.scratch && this.scratch.rows >= rows) return this.scratch;
    this.destroyScratch();
    const c = this.model.config;
    checkFits(this.memoryPlan(1, rows), this.ctx.device.limits);
    const e = this.dtype === 'f16' ? 2 : 4;
    const qkvWidth = (c.numHeads + 2 * c.numKvHeads) * c.headDim;
    const d = this.ctx.device;
    this.scratch = {
      rows,
      ids: storageBuffer(d, rows * 4, 'ids'),
      x: storageBuffer(d, rows * c.hiddenSize * 4, 'residual'),
      h: storageBuffer(d, rows * c.hiddenSize * e, 'normed'),
      qkv: storageBuffer(d, rows * qkvWidth * e, 'qkv'),
      attn: storageBuffer(d, rows * c.numHeads * c.headDim * e, 'attention-out'),
      gu: storageBuffer(d, rows * 2 * c.intermediateSize * e, 'gate-up'),
      mlp: storageBuffer(d, rows * c.intermediateSize * e, 'mlp'),
    };
    return this.scratch;
  }

  private destroyScratch(): void {
    if (!this.scratch) return;
    const { rows: _rows, ...buffers } = this.scratch;
    for (const b of Object.values(buffers)) b.destroy();
    this.scratch = undefined;
  }

  /** Runs `tokens` at positions [cache.length, cache.length + n), writing their K/V into the cache. */
  async forward(tokens: ArrayLike<number>, cache: GpuKvCache, opts: ForwardOptions = {}): Promise<ForwardResult> {
    const c = this.model.config;
    const n = requireInteger('tokens.length', tokens.length, 1);
    const promptRowsAfter = opts.tokensAfter === undefined ? undefined : requireInteger('tokensAfter', opts.tokensAfter, 0);
    const start = cache.length;
    if (start + n > cache.capacity) throw new InvalidArgumentError('KV cache position', start + n, `at most the cache capacity (${cache.capacity}); make the cache larger`);
    const ids = new Uint32Array(n);
    for (let t = 0; t < n; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new InvalidArgumentError(`tokens[${t}]`, id, `an integer token id in [0, ${c.vocabSize})`);
      ids[t] = id;
    }
    // All rows of logits of a long chunk can exceed a binding: refuse before encoding anything.
    if (opts.logits === 'all') checkFits(this.memoryPlan(1, 1, n), this.ctx.device.limits);
    const s = this.ensureScratch(n);
    const device = this.ctx.device;
    device.queue.writeBuffer(s.ids, 0, ids);
    const enc = new KernelEncoder(device, 'llama-forward');
    enc.gemmKernel = this.gemm;
    const t = this.dtype;
    const H = c.hiddenSize, I = c.intermediateSize, D = c.headDim;
    const qWidth = c.numHeads * D, kvWidth = c.numKvHeads * D, qkvWidth = qWidth + 2 * kvWidth;
    const plans: { layer: number; plan: PendingPlan }[] = [];
    const e = this.dtype === 'f16' ? 2 : 4;
    const captures: GPUBuffer[] | undefined = this.model.onAttention ? [] : undefined;
    try {
      await enc.dispatch(embedProgram, { t }, { tokens: n, hidden: H, vocab: c.vocabSize }, { ids: s.ids, table: this.embed, x: s.x }, flatGrid(n * H));
      for (let l = 0; l < c.numLayers; l++) {
        const w = this.layers[l];
        await enc.dispatch(rmsNormProgram, { t }, { rows: n, hidden: H, eps: c.rmsNormEps, xOffset: 0, yOffset: 0 }, { x: s.x, weight: w.inputNorm, y: s.h }, rowGrid(n));
        await enc.gemm({ x: t, w: t, y: t, bias: !!w.qkvBias, accumulate: false }, { m: n, n: qkvWidth, k: H, xOffset: 0, xStride: H, wOffset: 0, yOffset: 0, yStride: qkvWidth }, { x: s.h, w: w.qkv, y: s.qkv, bias: w.qkvBias });
        // q and k heads are adjacent in each row: one rotation covers both.
        await enc.dispatch(ropeProgram, { t }, { tokens: n, heads: c.numHeads + c.numKvHeads, half: D / 2, rowStride: qkvWidth, offset: 0, start, sinOffset: cache.capacity * (D / 2) }, { table: cache.rope, x: s.qkv }, flatGrid(n * (c.numHeads + c.numKvHeads) * (D / 2)));
        for (const [offset, dst] of [[qWidth, cache.keys[l]], [qWidth + kvWidth, cache.values[l]]] as const) {
          await enc.dispatch(copyRowsProgram, { t }, { rows: n, width: kvWidth, srcOffset: offset, srcStride: qkvWidth, dstOffset: start * kvWidth, dstStride: kvWidth }, { src: s.qkv, dst }, flatGrid(n * kvWidth));
        }
        if (captures) {
          // After RoPE, before the next layer overwrites the shared activation buffer.
          const copy = storageBuffer(device, n * qkvWidth * e, `l${l}.captured-qkv`);
          enc.own(copy);
          enc.encoder.copyBufferToBuffer(s.qkv, 0, copy, 0, n * qkvWidth * e);
          captures.push(copy);
        }
        const plan = await this.encodeLayerAttention(enc, l, s, cache, n, start, promptRowsAfter);
        if (plan) plans.push({ layer: l, plan });
        await enc.gemm({ x: t, w: t, y: 'f32', bias: !!w.oBias, accumulate: true }, { m: n, n: H, k: qWidth, xOffset: 0, xStride: qWidth, wOffset: 0, yOffset: 0, yStride: H }, { x: s.attn, w: w.o, y: s.x, bias: w.oBias });
        await enc.dispatch(rmsNormProgram, { t }, { rows: n, hidden: H, eps: c.rmsNormEps, xOffset: 0, yOffset: 0 }, { x: s.x, weight: w.postNorm, y: s.h }, rowGrid(n));
        await enc.gemm({ x: t, w: t, y: t, bias: !!w.gateUpBias, accumulate: false }, { m: n, n: 2 * I, k: H, xOffset: 0, xStride: H, wOffset: 0, yOffset: 0, yStride: 2 * I }, { x: s.h, w: w.gateUp, y: s.gu, bias: w.gateUpBias });
        await enc.dispatch(siluMulProgram, { t }, { rows: n, inter: I }, { gu: s.gu, out: s.mlp }, flatGrid(n * I));
        await enc.gemm({ x: t, w: t, y: 'f32', bias: !!w.downBias, accumulate: true }, { m: n, n: H, k: I, xOffset: 0, xStride: I, wOffset: 0, yOffset: 0, yStride: H }, { x: s.mlp, w: w.down, y: s.x, bias: w.downBias });
      }
      const rows = opts.logits === 'all' ? n : 1;
      const V = c.vocabSize;
      if (!this.logitsBuf || this.logitsBuf.size < rows * V * 4) {
        this.logitsBuf?.destroy();
        this.logitsBuf = storageBuffer(device, rows * V * 4, 'logits');
      }
      await enc.dispatch(rmsNormProgram, { t }, { rows, hidden: H, eps: c.rmsNormEps, xOffset: (n - rows) * H, yOffset: 0 }, { x: s.x, weight: this.finalNorm, y: s.h }, rowGrid(rows));
      await enc.gemm({ x: t, w: t, y: 'f32', bias: false, accumulate: false }, { m: rows, n: V, k: H, xOffset: 0, xStride: H, wOffset: 0, yOffset: 0, yStride: V }, { x: s.h, w: this.lmHead, y: this.logitsBuf });
      enc.submit();
      const logits = new Float32Array(await readBuffer(device, this.logitsBuf, rows * V * 4));
      cache.length = start + n;
      if (captures) await this.reportOperands(captures, cache, n, start, promptRowsAfter);
      if (this.model.stats || this.model.onPlan) await this.recordStats(plans);
      return { logits, rows };
    } finally {
      enc.release();
      for (const p of plans) p.plan.destroy();
    }
  }

  /** Attention of layer l over the cache's positions [0, start + n); returns the pending plan of a sparse method. */
  private async encodeLayerAttention(enc: KernelEncoder, l: number, s: Scratch, cache: GpuKvCache, n: number, start: number, promptRowsAfter?: number): Promise<PendingPlan | undefined> {
    const c = this.model.config;
    const D = c.headDim;
    const qkvWidth = (c.numHeads + 2 * c.numKvHeads) * D;
    const Lk = start + n;
    const view = (buffer: GPUBuffer, heads: number, length: number, strideL: number): GpuTensorView =>
      ({ batch: 1, heads, length, headDim: D, buffer, dtype: this.dtype, offset: 0, strideB: length * strideL, strideH: D, strideL });
    const views = {
      q: view(s.qkv, c.numHeads, n, qkvWidth),
      k: view(cache.keys[l], c.numKvHeads, Lk, c.numKvHeads * D),
      v: view(cache.values[l], c.numKvHeads, Lk, c.numKvHeads * D),
      o: view(s.attn, c.numHeads, n, c.numHeads * D),
    };
    const p: AttentionProblem = {
      batch: 1, heads: c.numHeads, kvHeads: c.numKvHeads, groupSize: c.numHeads / c.numKvHeads, queryLength: n, keyLength: Lk,
      headDim: D, valueDim: D, causal: true, scale: 1 / Math.sqrt(D), queryOffset: start,
    };
    return encodeModelAttention(this.ctx, enc, this.model.attention[l].method, views, p, this.dtype, { promptRowsAfter });
  }

  /**
   * model.onAttention for the GPU pass: each layer's q (copied after RoPE) and its cache K/V
   * [0, start + n) read back as f32 BLHD tensors, after the pass rather than before each call.
   */
  private async reportOperands(captures: GPUBuffer[], cache: GpuKvCache, n: number, start: number, promptRowsAfter?: number): Promise<void> {
    const c = this.model.config;
    const D = c.headDim;
    const e = this.dtype === 'f16' ? 2 : 4;
    const qWidth = c.numHeads * D, kvWidth = c.numKvHeads * D, qkvWidth = qWidth + 2 * kvWidth;
    const Lk = start + n;
    const f32 = (bytes: ArrayBuffer) => (this.dtype === 'f16' ? fromF16Bits(new Uint16Array(bytes)) : new Float32Array(bytes));
    for (let l = 0; l < c.numLayers; l++) {
      const qkv = f32(await readBuffer(this.ctx.device, captures[l], n * qkvWidth * e));
      const q = new Float32Array(n * qWidth);
      for (let t = 0; t < n; t++) q.set(qkv.subarray(t * qkvWidth, t * qkvWidth + qWidth), t * qWidth);
      const [k, v] = await Promise.all([cache.keys[l], cache.values[l]].map(async (b) => f32(await readBuffer(this.ctx.device, b, Lk * kvWidth * e))));
      const kvShape = { batch: 1, heads: c.numKvHeads, length: Lk, headDim: D };
      this.model.onAttention?.(this.model.attention[l], new HeadTensor({ batch: 1, heads: c.numHeads, length: n, headDim: D }, q, 'BLHD'),
        new HeadTensor(kvShape, k, 'BLHD'), new HeadTensor(kvShape, v, 'BLHD'), { promptRowsAfter });
    }
  }

  private async recordStats(plans: { layer: number; plan: PendingPlan }[]): Promise<void> {
    for (const { layer, plan } of plans) {
      const module = this.model.attention[layer];
      const blockPlan = await plan.read();
      this.model.stats?.record(module.name, blockPlan.stats);
      this.model.onPlan?.(module, blockPlan);
    }
  }

  destroy(): void {
    this.destroyScratch();
    this.logitsBuf?.destroy();
    for (const l of this.layers) for (const b of Object.values(l)) b?.destroy();
    for (const b of [this.embed, this.finalNorm, this.lmHead]) b.destroy();
  }
}
