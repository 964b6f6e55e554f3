/// <reference types="@webgpu/types" />
/**
 * Encoding helpers the GPU model runner shares with the kernel tests: one call encodes one
 * dispatch of a model kernel into a command encoder and remembers its Params uniform, so a whole
 * forward pass is one submit and the uniforms are freed after it.
 */
import { UnsupportedError } from '../../../core/errors.js';
import { type CompiledProgram, compileProgram, encodeProgram, type KernelProgram, type KernelSpec } from '../runtime/program.js';
import { BufferUsage, isSoftwareDevice } from '../runtime/webgpu-device.js';
import { type StorageType, checkGemmDtypes, type GemmParamName, type GemmSpec, gemmProgram, gemmWorkgroups } from './gemm.js';

export class KernelEncoder {
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
  /** staging defaults to 'direct' on software adapters, 'shared' elsewhere. */
  async gemm(partial: { x: StorageType; w: StorageType; y: StorageType; bias: boolean; accumulate: boolean; staging?: GemmSpec['staging'] }, p: Readonly<Record<GemmParamName, number>>, buffers: { x: GPUBuffer; w: GPUBuffer; y: GPUBuffer; bias?: GPUBuffer }): Promise<void> {
    const spec: GemmSpec = { ...partial, staging: partial.staging ?? (isSoftwareDevice(this.device) ? 'direct' : 'shared') };
    checkGemmDtypes(this.device, spec);
    const reason = gemmProgram.supports(spec, p, this.device.limits);
    if (reason) throw new UnsupportedError(`model GEMM: ${reason}`);
    const b: Record<string, GPUBuffer> = { x: buffers.x, w: buffers.w, y: buffers.y };
    if (spec.bias) {
      if (!buffers.bias) throw new UnsupportedError('a GEMM with bias needs the bias buffer');
      b.bias = buffers.bias;
    }
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
