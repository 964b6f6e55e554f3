/**
 * Dispatch of the tensor-core (subgroup-matrix) attention kernel: pipelines cached per spec,
 * shapes and strides in one uniform, Q/K/V read in place. See tensor-core-attention.wgsl.ts for
 * what the kernel computes and its tile shapes.
 */
/// <reference types="@webgpu/types" />
import type { BlockMask } from '../../core/block-mask.js';
import {
  TC_KEY_TILE, TC_PARAM_FIELDS, TC_ROWS_PER_SUBGROUP, type TensorCoreAttentionSpec,
  tensorCoreAttentionLabel, tensorCoreAttentionWgsl,
} from './tensor-core-attention.wgsl.js';

export interface TensorView {
  buffer: GPUBuffer;
  /** Element offset of (0, 0, 0, 0) and element strides of batch, head, position. */
  offset: number;
  strideB: number;
  strideH: number;
  strideL: number;
}

export interface TensorCoreCall {
  batch: number;
  heads: number;
  kvHeads: number;
  queryLength: number;
  keyLength: number;
  headDim: number;
  causal: boolean;
  scale: number;
  q: TensorView;
  k: TensorView;
  v: TensorView;
  out: TensorView;
  /** Block list on the GPU (rowPtr, colIdx as u32) when sparse. */
  mask?: { rowPtr: GPUBuffer; colIdx: GPUBuffer; numQueryBlocks: number; blockRows: number; blockCols: number };
}

/** Whether the adapter has an f16 → f32 16×16×16 subgroup-matrix configuration. */
export function hasTensorCores(adapterInfo: GPUAdapterInfo | undefined): boolean {
  const configs = (adapterInfo as unknown as { subgroupMatrixConfigs?: { componentType: string; resultComponentType: string; M: number; N: number; K: number }[] })?.subgroupMatrixConfigs ?? [];
  return configs.some((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16);
}

/** Why the kernel cannot take a call, or null when it can. */
export function tensorCoreSupports(call: Omit<TensorCoreCall, 'q' | 'k' | 'v' | 'out'>, subgroups: number): string | null {
  const rows = TC_ROWS_PER_SUBGROUP * subgroups;
  if (call.headDim !== 64 && call.headDim !== 128) return `head dim ${call.headDim} is not 64 or 128`;
  if (call.queryLength % rows !== 0) return `query length ${call.queryLength} is not a multiple of ${rows}`;
  if (call.keyLength % TC_KEY_TILE !== 0) return `key length ${call.keyLength} is not a multiple of ${TC_KEY_TILE}`;
  if (call.mask && call.mask.blockRows % rows !== 0) return `mask block rows ${call.mask.blockRows} is not a multiple of ${rows}`;
  if (call.mask && call.mask.blockCols % TC_KEY_TILE !== 0) return `mask block cols ${call.mask.blockCols} is not a multiple of ${TC_KEY_TILE}`;
  return null;
}

/** Staged tiles are read as vec4<u32>: K and V rows must start on 8-element boundaries. */
function stagingSupports(call: TensorCoreCall): string | null {
  for (const [name, t] of [['k', call.k], ['v', call.v]] as const) {
    if (t.offset % 8 || t.strideB % 8 || t.strideH % 8 || t.strideL % 8) return `${name} offset/strides are not multiples of 8 elements (staged tiles read 16-byte vectors)`;
  }
  return null;
}

export class TensorCoreAttention {
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly empty: GPUBuffer;
  private readonly layout: GPUPipelineLayout;
  private readonly bindLayout: GPUBindGroupLayout;

  constructor(readonly device: GPUDevice, readonly subgroups: 4 | 8 = 4, readonly stage = false) {
    if (stage && subgroups !== 4) throw new Error('tensor-core attention: staged K/V tiles fit workgroup memory only with 4 subgroups');
    this.empty = device.createBuffer({ label: 'tc-attention-empty', size: 16, usage: GPUBufferUsage.STORAGE });
    // Explicit layout: 'auto' would drop the block-list bindings from dense variants.
    const ro = { type: 'read-only-storage' } as const;
    this.bindLayout = device.createBindGroupLayout({
      label: 'tc-attention-bindings',
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
        ...[1, 2, 3, 5, 6].map((binding) => ({ binding, visibility: GPUShaderStage.COMPUTE, buffer: ro })),
        { binding: 4, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
      ],
    });
    this.layout = device.createPipelineLayout({ label: 'tc-attention-layout', bindGroupLayouts: [this.bindLayout] });
  }

  pipeline(spec: TensorCoreAttentionSpec): GPUComputePipeline {
    const label = tensorCoreAttentionLabel(spec);
    let p = this.pipelines.get(label);
    if (!p) {
      const code = tensorCoreAttentionWgsl(spec);
      if (process.env.SPARSE_ATTN_PRINT_WGSL) console.error(`// ${label}\n${code}`);
      const module = this.device.createShaderModule({ label, code });
      p = this.device.createComputePipeline({ label, layout: this.layout, compute: { module, entryPoint: 'main' } });
      this.pipelines.set(label, p);
    }
    return p;
  }

  /** Encodes one call into `encoder` (no submit), so benchmarks can batch repetitions. */
  encode(encoder: GPUCommandEncoder, call: TensorCoreCall): void {
    const reason = tensorCoreSupports(call, this.subgroups) ?? (this.stage ? stagingSupports(call) : null);
    if (reason) throw new Error(`tensor-core attention: ${reason}`);
    const spec: TensorCoreAttentionSpec = { headDim: call.headDim as 64 | 128, causal: call.causal, sparse: !!call.mask, subgroups: this.subgroups, stage: this.stage };
    const pipeline = this.pipeline(spec);
    const words = new ArrayBuffer(TC_PARAM_FIELDS.length * 4);
    const u = new Uint32Array(words);
    const f = new Float32Array(words);
    const values: Record<(typeof TC_PARAM_FIELDS)[number], number> = {
      qLen: call.queryLength, kLen: call.keyLength, heads: call.heads, group: call.heads / call.kvHeads,
      qOffset: call.q.offset, qStrideB: call.q.strideB, qStrideH: call.q.strideH, qStrideL: call.q.strideL,
      kOffset: call.k.offset, kStrideB: call.k.strideB, kStrideH: call.k.strideH, kStrideL: call.k.strideL,
      vOffset: call.v.offset, vStrideB: call.v.strideB, vStrideH: call.v.strideH, vStrideL: call.v.strideL,
      oOffset: call.out.offset, oStrideB: call.out.strideB, oStrideH: call.out.strideH, oStrideL: call.out.strideL,
      scaleLog2: call.scale * Math.LOG2E,
      numQueryBlocks: call.mask?.numQueryBlocks ?? 1, blockRows: call.mask?.blockRows ?? 1, blockCols: call.mask?.blockCols ?? TC_KEY_TILE,
    };
    TC_PARAM_FIELDS.forEach((name, i) => {
      if (name === 'scaleLog2') f[i] = values[name];
      else u[i] = values[name];
    });
    const uniform = this.device.createBuffer({ label: `${pipeline.label}-params`, size: words.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    this.device.queue.writeBuffer(uniform, 0, words);
    const bindGroup = this.device.createBindGroup({
      label: `${pipeline.label}-bind`,
      layout: this.bindLayout,
      entries: [
        { binding: 0, resource: { buffer: uniform } },
        { binding: 1, resource: { buffer: call.q.buffer } },
        { binding: 2, resource: { buffer: call.k.buffer } },
        { binding: 3, resource: { buffer: call.v.buffer } },
        { binding: 4, resource: { buffer: call.out.buffer } },
        { binding: 5, resource: { buffer: call.mask?.rowPtr ?? this.empty } },
        { binding: 6, resource: { buffer: call.mask?.colIdx ?? this.empty } },
      ],
    });
    const pass = encoder.beginComputePass({ label: pipeline.label });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(call.queryLength / (TC_ROWS_PER_SUBGROUP * this.subgroups), call.heads, call.batch);
    pass.end();
  }
}

/** Uploads a BlockMask's CSR lists for the kernel. */
export function uploadBlockMask(device: GPUDevice, mask: BlockMask): { rowPtr: GPUBuffer; colIdx: GPUBuffer } {
  const up = (label: string, data: Int32Array) => {
    const buffer = device.createBuffer({ label, size: Math.max(16, data.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    if (data.byteLength) device.queue.writeBuffer(buffer, 0, new Uint32Array(data.buffer, data.byteOffset, data.length));
    return buffer;
  };
  return { rowPtr: up('mask-rowptr', mask.rowPtr), colIdx: up('mask-colidx', mask.colIdx) };
}
