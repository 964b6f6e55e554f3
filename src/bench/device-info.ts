/**
 * What every benchmark JSON says about the machine it ran on, and the short machine tag of the
 * folder its results go to (bench/results/<date>-<machine>/). The WebGPU side needs only the
 * adapter report, so this module loads no Dawn code.
 */
import { arch, cpus, platform } from 'node:os';
import type { AdapterReport } from '../backends/webgpu/index.js';
import type { DeviceInfo } from './harness.js';

/** The CPU the reference backend (or a CPU-only script) runs on. */
export function cpuDeviceInfo(): DeviceInfo {
  const c = cpus();
  return { name: `${c[0]?.model ?? 'unknown CPU'} (${c.length} cores)`, backend: 'cpu', node: process.version, platform: `${platform()} ${arch()}` };
}

/** A WebGPU adapter: its name, features, subgroup matrices and limits. */
export function webgpuDeviceInfo(r: AdapterReport): DeviceInfo {
  return {
    name: r.description || r.device || 'unknown adapter', backend: 'webgpu', adapter: `${r.vendor} ${r.architecture} (${r.runtime})`,
    // Dawn's description of an NVIDIA adapter is the driver version; the model is in `device`.
    model: r.device,
    features: r.features, enabledFeatures: r.enabledFeatures, subgroupMatrix: r.subgroupMatrix, limits: r.limits, softwareAdapter: r.softwareAdapter,
  };
}

/**
 * The machine part of a results folder: SPARSE_ATTN_MACHINE when set; `cpu` for the CPU reference
 * and software adapters (lavapipe runs on the dev VM's CPU); else the GPU's model number
 * (`nvidia-h100-80gb-hbm3` → `h100`, `…-rtx-4090` → `rtx-4090`), else its vendor.
 */
export function machineTag(d: DeviceInfo, env: NodeJS.ProcessEnv = process.env): string {
  const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
  if (env.SPARSE_ATTN_MACHINE) return slug(env.SPARSE_ATTN_MACHINE) || 'machine';
  if (d.backend === 'cpu' || d.softwareAdapter === true) return 'cpu';
  const text = `${typeof d.model === 'string' ? d.model : ''} ${d.name}`.toLowerCase();
  const model = /(?:^|[^a-z0-9])([a-z]{1,3}-?\d{2,4}[a-z]?)(?=[^a-z0-9]|$)/.exec(text);
  if (model) return model[1];
  const vendor = typeof d.adapter === 'string' ? slug(d.adapter.split(' ')[0]) : '';
  return vendor || 'gpu';
}
