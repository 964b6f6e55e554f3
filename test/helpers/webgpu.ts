/**
 * WebGPU for tests: the default device, or the reason there is none. Without an adapter the
 * WebGPU suites skip with that reason, unless SPARSE_ATTN_REQUIRE_WEBGPU=1 (CI), where they fail.
 * Call `release()` in an after() hook so the device is destroyed and node --test can exit.
 */
import { probeWebGpu, releaseDefaultWebGpuContext, type WebGpuContext } from '../../src/backends/webgpu/index.js';

export interface TestGpu {
  ctx: WebGpuContext | undefined;
  /** false when a device exists, else the reason (for describe's `skip`). */
  skip: string | false;
  release(): Promise<void>;
}

export async function acquireTestGpu(): Promise<TestGpu> {
  const probe = await probeWebGpu();
  if (!probe.available && process.env.SPARSE_ATTN_REQUIRE_WEBGPU === '1') {
    throw new Error(`SPARSE_ATTN_REQUIRE_WEBGPU=1 but WebGPU is unavailable: ${probe.reason}`);
  }
  return {
    ctx: probe.available ? probe.context : undefined,
    skip: probe.available ? false : `no WebGPU adapter: ${probe.reason}`,
    release: releaseDefaultWebGpuContext,
  };
}
