/**
 * What the page computes, apart from the DOM: one method and dense attention on the same seeded
 * inputs, on WebGPU (navigator.gpu) when the browser has an adapter, else on the CPU reference.
 * The browser test calls `run` through window.sparseAttentionPage and compares `output` with the
 * CPU reference computed in Node.
 */
import {
  type AttentionBackend, cpuBackend, inputsOfKind, type InputKind, outputError, sparseAttention, sparseMethods,
  UnsupportedError,
} from '../../src/browser.js';
import { createWebGpuBackend, createWebGpuContext, type AdapterReport } from '../../src/backends/webgpu/index.js';
import type { BlockPlan } from '../../src/methods/method.js';

export interface RunRequest {
  method: string;
  /** The method's settings; omitted: the settings the demo uses at this length. */
  settings?: Record<string, unknown>;
  input: InputKind;
  length: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  seed: number;
  causal: boolean;
}

export interface RunResult {
  backend: 'webgpu' | 'cpu';
  settings: Record<string, unknown>;
  density: number;
  maxAbsError: number;
  relL2Error: number;
  ms: number;
  denseMs: number;
  /** The method's output, BHLD, as plain numbers (so it crosses page.evaluate). */
  output: number[];
  rowPtr: number[];
  colIdx: number[];
  plan: BlockPlan;
}

export type Device = { backend: AttentionBackend; kind: 'webgpu'; report: AdapterReport } | { backend: AttentionBackend; kind: 'cpu'; reason: string };

/** WebGPU when navigator.gpu gives an adapter; otherwise the CPU reference and the reason. */
export async function acquireDevice(): Promise<Device> {
  if (!(globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) {
    return { backend: cpuBackend, kind: 'cpu', reason: 'this browser has no navigator.gpu (WebGPU is off, or the page is not served from https:// or localhost)' };
  }
  try {
    const ctx = await createWebGpuContext();
    return { backend: createWebGpuBackend(ctx), kind: 'webgpu', report: ctx.report };
  } catch (err) {
    if (err instanceof UnsupportedError) return { backend: cpuBackend, kind: 'cpu', reason: err.message };
    throw err;
  }
}

export function demoSettingsOf(method: string, length: number): Record<string, unknown> {
  return sparseMethods.descriptor(method).demoSettings?.(length) ?? {};
}

export async function runMethod(device: Device, req: RunRequest): Promise<RunResult> {
  const { q, k, v } = inputsOfKind(req.input, req);
  const settings = req.settings ?? demoSettingsOf(req.method, req.length);
  const backend = device.backend;
  let t = performance.now();
  const dense = (await sparseAttention(q, k, v, { method: 'dense', causal: req.causal, backend })).output.toLayout('BHLD').toFloat32Array();
  const denseMs = performance.now() - t;
  t = performance.now();
  const { output, plan } = await sparseAttention(q, k, v, { method: req.method, settings, causal: req.causal, backend });
  const ms = performance.now() - t;
  const out = output.toLayout('BHLD').toFloat32Array();
  const { maxAbsError, relL2Error } = outputError(out, dense);
  return {
    backend: device.kind, settings, density: plan.mask.density, maxAbsError, relL2Error, ms, denseMs,
    output: Array.from(out), rowPtr: Array.from(plan.mask.rowPtr), colIdx: Array.from(plan.mask.colIdx), plan,
  };
}
