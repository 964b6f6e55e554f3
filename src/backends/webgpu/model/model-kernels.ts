/// <reference types="@webgpu/types" />
/**
 * Encoding helpers the GPU model runner shares with the kernel tests: one call encodes one
 * dispatch of a model kernel into a command encoder and remembers its Params uniform, so a whole
 * forward pass is one submit and the uniforms are freed after it.
 */
import { UnsupportedError } from '../../../core/errors.js';
import { type CompiledProgram, compileProgram, encodeProgram, type KernelProgram, type KernelSpec } from '../runtime/program.js';
import { BufferUsage, isSoftwareDevice } from '../runtime/webgpu-device.js';
import { tensorCoreGemmProgram, tensorCoreGemmReason, type TensorCoreGemmSpec, tensorCoreGemmWorkgroups } from './tensor-core-gemm.js';
import { tiledGemmProgram, tiledGemmReason, type TiledGemmSpec, tiledGemmWorkgroups } from './tiled-gemm.js';
import { type StorageType, checkGemmDtypes, type GemmParamName, type GemmSpec, gemmProgram, gemmWorkgroups } from './gemm.js';

/**
 * 'tiled': the staged, double-buffered subgroup-matrix GEMM (tiled-gemm.ts); 'tensor-core': the
 * one that loads fragments from storage (tensor-core-gemm.ts); 'auto' takes 'tiled' for calls of
 * more than 64 rows, 'tensor-core' for shorter ones (a 128-row tile would be mostly idle), where
 * the adapter and the call allow, else 'portable'.
 */
export const GEMM_KERNELS = ['auto', 'portable', 'tensor-core', 'tiled'] as const;
export type GemmKernel = (typeof GEMM_KERNELS)[number];

/** Rows above which 'auto' takes the tiled GEMM. */
const TILED_MIN_ROWS = 64;

export class KernelEncoder {
  /** The GEMM kernel every gemm() call of this encoder uses unless the call says otherwise. */
  gemmKernel: GemmKernel = 'auto';

  private readonly uniforms: GPUBuffer[] = [];
  readonly encoder: GPUCommandEncoder;

  constructor(readonly device: GPUDevice, label: string) {
    this.encoder = device.createCommandEncoder({ label });
  }

  async dispatch<S extends KernelSpec, F extends string>(
    program: KernelProgram<S, F>, spec: S, params: Readonly<Record<F, number>>, buffers: Readonly<Record<string, GPUBuffer>>, workgroups: readonly [number, number, number],
  ): Promise<void> {
    const compiled: CompiledProgram = await compileProgram(this.device, program, spec);
    this.uniforms.push(encodeProgram(this.device, this.encoder, program, compiled, { params, buffers, workgroups }));
  }

  /** y (=|+=) x · Wᵀ (+ bias) with offsets and row strides in elements (see gemm.ts). */
  /**
   * kernel 'auto' (default): the subgroup-matrix GEMM where the adapter and the call allow it, else
   * the portable one, whose staging defaults to 'direct' on software adapters, 'shared' elsewhere.
   */
  async gemm(partial: { x: StorageType; w: StorageType; y: StorageType; bias: boolean; accumulate: boolean; staging?: GemmSpec['staging']; kernel?: GemmKernel }, p: Readonly<Record<GemmParamName, number>>, buffers: { x: GPUBuffer; w: GPUBuffer; y: GPUBuffer; bias?: GPUBuffer }): Promise<void> {
    const { kernel = this.gemmKernel, staging, ...types } = partial;
    const b: Record<string, GPUBuffer> = { x: buffers.x, w: buffers.w, y: buffers.y };
    if (types.bias) {
      if (!buffers.bias) throw new UnsupportedError('a GEMM with bias needs the bias buffer');
      b.bias = buffers.bias;
    }
    if (kernel === 'tiled' || (kernel === 'auto' && p.m > TILED_MIN_ROWS)) {
      const reason = tiledGemmReason(this.device, types.x, types.w, p);
      if (reason === null) {
        const spec: TiledGemmSpec = { y: types.y, bias: types.bias, accumulate: types.accumulate, emulate: false };
        const why = tiledGemmProgram.supports(spec, p, this.device.limits);
        if (why) throw new UnsupportedError(`model GEMM (tiled): ${why}`);
        return this.dispatch(tiledGemmProgram, spec, p, b, tiledGemmWorkgroups(p));
      }
      if (kernel === 'tiled') throw new UnsupportedError(`tiled GEMM: ${reason}`);
    }
    if (kernel !== 'portable') {
      const reason = tensorCoreGemmReason(this.device, types.x, types.w, p);
      if (reason === null) {
        const tc: TensorCoreGemmSpec = { y: types.y, bias: types.bias, accumulate: types.accumulate };
        const why = tensorCoreGemmProgram.supports(tc, p, this.device.limits);
        if (why) throw new UnsupportedError(`model GEMM (tensor cores): ${why}`);
        return this.dispatch(tensorCoreGemmProgram, tc, p, b, tensorCoreGemmWorkgroups(p));
      }
      if (kernel === 'tensor-core') throw new UnsupportedError(`tensor-core GEMM: ${reason}`);
    }
    const spec: GemmSpec = { ...types, staging: staging ?? (isSoftwareDevice(this.device) ? 'direct' : 'shared') };
    checkGemmDtypes(this.device, spec);
    const reason = gemmProgram.supports(spec, p, this.device.limits);
    if (reason) throw new UnsupportedError(`model GEMM: ${reason}`);
    await this.dispatch(gemmProgram, spec, p, b, gemmWorkgroups(spec, p));
  }

  /** Keeps a buffer (e.g. another dispatch's uniform) to free with this encoder's. */
  own(buffer: GPUBuffer): void {
    this.uniforms.push(buffer);
  }

  submit(): void {
    this.device.queue.submit([this.encoder.finish()]);
  }

  /** Frees the uniforms once the submitted work no longer needs them (after a read-back). */
  release(): void {
    for (const u of this.uniforms.splice(0)) u.destroy();
  }
}

/** A storage buffer of `bytes` (at least 4, rounded to 4), copyable both ways. */
export function storageBuffer(device: GPUDevice, bytes: number, label: string): GPUBuffer {
  return device.createBuffer({ label, size: Math.max(4, Math.ceil(bytes / 4) * 4), usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST });
}
