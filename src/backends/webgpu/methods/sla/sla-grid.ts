/// <reference types="@webgpu/types" />
/**
 * The launch shape shared by SLA's small kernels: one thread per output element, 64 threads per
 * workgroup, workgroups on a 2-D grid (x ≤ 65535) so millions of elements fit the per-dimension
 * limit. Each kernel's Params starts with `total` (threads that do work) and `gridX`.
 */
import { UnsupportedError } from '../../../../core/errors.js';
import { compileProgram, encodeProgram, type KernelProgram, type KernelSpec } from '../../runtime/program.js';

export const GRID_WORKGROUP = 64;
export const GRID_FIELDS = [['total', 'u32'], ['gridX', 'u32']] as const;

/** WGSL: the flat thread index (P.total and P.gridX from Params); threads >= P.total return early. */
export const GRID_WGSL = /* wgsl */ `
fn threadIndex(wg: vec3<u32>, lid: u32) -> u32 { return (wg.y * P.gridX + wg.x) * ${GRID_WORKGROUP}u + lid; }`;

/** Compiles (cached) and encodes a grid kernel over `total` threads; returns its Params uniform. */
export async function encodeGrid<S extends KernelSpec, F extends string>(
  device: GPUDevice, encoder: GPUCommandEncoder, program: KernelProgram<S, F>, spec: S,
  params: Readonly<Record<Exclude<F, 'total' | 'gridX'>, number>>, buffers: Readonly<Record<string, GPUBuffer>>, total: number,
): Promise<GPUBuffer> {
  const groups = Math.max(1, Math.ceil(total / GRID_WORKGROUP));
  const maxX = device.limits.maxComputeWorkgroupsPerDimension;
  const gridX = Math.min(groups, maxX);
  const gridY = Math.ceil(groups / gridX);
  if (gridY > maxX) throw new UnsupportedError(`${program.name}: ${total} threads exceed a ${maxX}×${maxX} grid of ${GRID_WORKGROUP}-thread workgroups`);
  const compiled = await compileProgram(device, program, spec);
  const all = { ...params, total, gridX } as Record<F, number>;
  return encodeProgram(device, encoder, program, compiled, { params: all, buffers, workgroups: [gridX, gridY, 1] });
}
