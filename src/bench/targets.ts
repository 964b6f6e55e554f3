/**
 * The targets `sparse-attn bench --backend NAME` can time, as one plain table. A GPU backend joins
 * by adding a row whose factory builds a BenchTarget around it (and, to time with timestamp
 * queries rather than a fenced wall clock, provides `timeBlockSparse`).
 */
import { cpus } from 'node:os';
import { BACKEND_ALIASES, BACKEND_NAMES, type BackendName } from '../backends/backend.js';
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

/** One row per backend name (backends/backend.ts), so a new backend without a bench target does not compile. */
export const BENCH_TARGETS: Readonly<Record<BackendName, () => Promise<BenchTarget>>> = {
  cpu: async () => cpuTarget,
  // Imported on use, so choosing the CPU never loads Dawn.
  webgpu: async () => (await import('./webgpu-target.js')).webgpuTarget(),
};

/** The bench target of a backend name or alias ('auto' is not one: a benchmark names what it times). */
export async function benchTarget(name: string): Promise<BenchTarget> {
  const choice = name in BACKEND_ALIASES ? BACKEND_ALIASES[name] : name;
  if (!(BACKEND_NAMES as readonly string[]).includes(choice)) throw new InvalidArgumentError('--backend', name, `one of ${BACKEND_NAMES.join(', ')}`);
  return BENCH_TARGETS[choice as BackendName]();
}
