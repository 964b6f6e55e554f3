/**
 * The targets `sparse-attn bench --backend NAME` can time, as one plain table. A GPU backend joins
 * by adding a row whose factory builds a BenchTarget around it (and, to time with timestamp
 * queries rather than a fenced wall clock, provides `timeBlockSparse`).
 */
import { cpuBackend } from '../backends/cpu/index.js';
import { InvalidArgumentError } from '../core/errors.js';
import { type BenchCase, CPU_MAX_FLOPS, denseFlops } from './cases.js';
import { cpuDeviceInfo } from './device-info.js';
import type { BenchTarget } from './harness.js';

export { CPU_MAX_FLOPS };

export const cpuTarget: BenchTarget = {
  name: 'cpu',
  backend: cpuBackend,
  describe: async () => cpuDeviceInfo(),
  supports(c: BenchCase) {
    const f = denseFlops(c);
    if (f > CPU_MAX_FLOPS) return `${(f / 1e9).toFixed(0)} GFLOP dense is beyond the CPU reference's reach (limit ${CPU_MAX_FLOPS / 1e9} GFLOP); time it on a GPU target`;
    return undefined;
  },
};

export const BENCH_TARGETS: Record<string, () => Promise<BenchTarget>> = {
  cpu: async () => cpuTarget,
  // Imported on use, so choosing the CPU never loads Dawn.
  webgpu: async () => (await import('./webgpu-target.js')).webgpuTarget(),
};

export async function benchTarget(name: string): Promise<BenchTarget> {
  const make = BENCH_TARGETS[name];
  if (!make) throw new InvalidArgumentError('--backend', name, `one of ${Object.keys(BENCH_TARGETS).join(', ')}`);
  return make();
}
