/// <reference types="@webgpu/types" />
/**
 * The kernel program abstraction every WebGPU kernel of this library is written against.
 *
 * A kernel is a `KernelProgram<S>`: a name, ONE typed specialisation object type S (the variant:
 * dtype, head dim, which hooks are on), a `Params` uniform layout, and functions of the spec alone:
 *   bindings(spec)       the storage buffers of bind group 0 after the Params uniform at binding 0
 *   constants(spec)      WGSL `const`s (numbers/booleans) derived from the spec
 *   wgsl(spec, header)   the module source; `header` holds the constants and the Params struct
 *   supports(spec, shape, limits)  null, or the reason this device cannot run this shape
 * The cache key and the GPU object labels are derived from the spec (`variantKey`), never written
 * by hand, so they cannot go stale when a spec field is added. Pipelines and bind-group layouts
 * are cached per device; a dispatch only writes the Params uniform and makes a bind group.
 * Shapes, offsets and strides travel in the Params uniform, so one pipeline serves every size and
 * every view of a buffer (a KV cache slice needs no copy).
 *
 * Adding a kernel (e.g. a subgroup-matrix attention variant): define its spec type, its
 * `ParamsLayout`, and a KernelProgram object; dispatch it with `runProgram`. Add the spec's values
 * to the compile-every-variant test. Set SPARSE_ATTN_PRINT_WGSL=1 (or =<part of a label>) to print
 * each kernel's WGSL when it is first compiled.
 */
import { UnsupportedError } from '../../../core/errors.js';
import { BufferUsage, ShaderStage } from './webgpu-device.js';
import { activeProfiler } from './pass-profiler.js';

export type SpecValue = string | number | boolean;
export type KernelSpec = { readonly [field: string]: SpecValue };
export type ParamType = 'u32' | 'i32' | 'f32';
export type BindingKind = 'read-only-storage' | 'storage';

/** One uniform struct of 4-byte scalars: its WGSL text and its packing come from one field list. */
export class ParamsLayout<F extends string> {
  readonly byteSize: number;
  readonly wgsl: string;

  constructor(readonly fields: readonly (readonly [F, ParamType])[]) {
    // Uniform buffers are sized in 16-byte units; padding fields make the WGSL struct agree.
    const padded = Math.ceil(fields.length / 4) * 4;
    this.byteSize = Math.max(16, padded * 4);
    const pads = Array.from({ length: padded - fields.length }, (_, i) => `  _pad${i}: u32,`);
    this.wgsl = ['struct Params {', ...fields.map(([n, t]) => `  ${n}: ${t},`), ...pads, '}'].join('\n');
  }

  pack(values: Readonly<Record<F, number>>): ArrayBuffer {
    const buf = new ArrayBuffer(this.byteSize);
    const view = new DataView(buf);
    this.fields.forEach(([name, type], i) => {
      const x = values[name];
      if (type === 'f32') view.setFloat32(i * 4, x, true);
      else if (type === 'i32') view.setInt32(i * 4, x, true);
      else if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new UnsupportedError(`Params.${name} must be a u32, got ${x}`);
      else view.setUint32(i * 4, x, true);
    });
    return buf;
  }
}

export interface BindingSpec {
  name: string;
  kind: BindingKind;
}

export interface KernelProgram<S extends KernelSpec, F extends string, Shape = unknown> {
  readonly name: string;
  readonly params: ParamsLayout<F>;
  bindings(spec: S): readonly BindingSpec[];
  constants(spec: S): Readonly<Record<string, number | boolean>>;
  workgroupSize(spec: S): number;
  wgsl(spec: S, header: string): string;
  supports(spec: S, shape: Shape, limits: GPUSupportedLimits): string | null;
}

/** `name{a=1,b=x}` with the fields sorted: the cache key and the label of every GPU object. */
export function variantKey(name: string, spec: KernelSpec): string {
  const fields = Object.keys(spec).sort().map((k) => `${k}=${spec[k]}`);
  return `${name}{${fields.join(',')}}`;
}

/** WGSL consts from a spec: camelCase field → SCREAMING_SNAKE const; numbers become u32. */
export function wgslConstants(consts: Readonly<Record<string, number | boolean>>): string {
  return Object.entries(consts)
    .map(([k, v]) => {
      const name = k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
      if (typeof v === 'boolean') return `const ${name}: bool = ${v};`;
      if (!Number.isInteger(v) || v < 0) throw new UnsupportedError(`WGSL constant ${name} must be a non-negative integer, got ${v}`);
      return `const ${name}: u32 = ${v}u;`;
    })
    .join('\n');
}

export function programSource<S extends KernelSpec>(program: KernelProgram<S, string>, spec: S): string {
  const header = [`// ${variantKey(program.name, spec)}`, wgslConstants(program.constants(spec)), program.params.wgsl].join('\n');
  return program.wgsl(spec, header);
}

export interface CompiledProgram {
  readonly label: string;
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
  readonly bindings: readonly BindingSpec[];
}

const pipelineCache = new WeakMap<GPUDevice, Map<string, Promise<CompiledProgram>>>();

/**
 * The cached pipeline of one variant; the first call compiles it, checks the compilation messages
 * and validation errors, and throws them with the WGSL line so a broken variant fails loudly.
 */
export function compileProgram<S extends KernelSpec>(device: GPUDevice, program: KernelProgram<S, string>, spec: S): Promise<CompiledProgram> {
  let perDevice = pipelineCache.get(device);
  if (!perDevice) pipelineCache.set(device, (perDevice = new Map()));
  const label = variantKey(program.name, spec);
  let compiled = perDevice.get(label);
  if (!compiled) {
    compiled = buildPipeline(device, program, spec, label);
    compiled.catch(() => perDevice.delete(label));
    perDevice.set(label, compiled);
  }
  return compiled;
}

async function buildPipeline<S extends KernelSpec>(device: GPUDevice, program: KernelProgram<S, string>, spec: S, label: string): Promise<CompiledProgram> {
  const code = programSource(program, spec);
  const printFilter = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.SPARSE_ATTN_PRINT_WGSL;
  if (printFilter && (printFilter === '1' || label.includes(printFilter))) console.error(`// ---- WGSL of ${label}\n${code}`);
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label, code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length > 0) {
    await device.popErrorScope();
    const lines = code.split('\n');
    const text = errors.map((m) => `  line ${m.lineNum}:${m.linePos} ${m.message}\n    ${lines[m.lineNum - 1] ?? ''}`).join('\n');
    throw new UnsupportedError(`WGSL of ${label} does not compile:\n${text}`);
  }
  const bindings = program.bindings(spec);
  const layout = device.createBindGroupLayout({
    label,
    entries: [
      { binding: 0, visibility: ShaderStage.COMPUTE, buffer: { type: 'uniform' } },
      ...bindings.map((b, i) => ({ binding: i + 1, visibility: ShaderStage.COMPUTE, buffer: { type: b.kind } })),
    ],
  });
  const pipeline = device.createComputePipeline({
    label,
    layout: device.createPipelineLayout({ label, bindGroupLayouts: [layout] }),
    compute: { module, entryPoint: 'main' },
  });
  const err = await device.popErrorScope();
  if (err) throw new UnsupportedError(`pipeline ${label} could not be created: ${err.message}`);
  return { label, pipeline, layout, bindings };
}

export interface Dispatch<F extends string> {
  params: Readonly<Record<F, number>>;
  /** One buffer per name in program.bindings(spec). */
  buffers: Readonly<Record<string, GPUBuffer>>;
  workgroups: readonly [number, number, number];
}

/**
 * Encodes one dispatch of a compiled variant into `encoder` (the caller submits). Returns the
 * dispatch's Params uniform buffer, which the caller may destroy once the work is done.
 */
export function encodeProgram<S extends KernelSpec, F extends string>(
  device: GPUDevice, encoder: GPUCommandEncoder, program: KernelProgram<S, F>, compiled: CompiledProgram, d: Dispatch<F>,
): GPUBuffer {
  const uniform = device.createBuffer({ label: `${compiled.label}.params`, size: program.params.byteSize, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
  device.queue.writeBuffer(uniform, 0, program.params.pack(d.params));
  const entries = compiled.bindings.map((b, i) => {
    const buffer = d.buffers[b.name];
    if (!buffer) throw new UnsupportedError(`dispatch of ${compiled.label} lacks buffer "${b.name}"`);
    return { binding: i + 1, resource: { buffer } };
  });
  const bindGroup = device.createBindGroup({ label: compiled.label, layout: compiled.layout, entries: [{ binding: 0, resource: { buffer: uniform } }, ...entries] });
  // A benchmark's PassProfiler, if one is attached, times this pass with timestamp queries.
  const timestampWrites = activeProfiler(device)?.timestampWrites(compiled.label);
  const pass = encoder.beginComputePass(timestampWrites ? { label: compiled.label, timestampWrites } : { label: compiled.label });
  pass.setPipeline(compiled.pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(...d.workgroups);
  pass.end();
  return uniform;
}
