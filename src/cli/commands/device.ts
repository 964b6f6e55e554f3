import { parseArgs } from 'node:util';
import type { Command } from '../command.js';

export const deviceCommand: Command = {
  name: 'device',
  summary: 'report the WebGPU adapter: vendor, f16, subgroups, subgroup matrices, limits',
  usage: `sparse-attn device [--json]

Acquires a WebGPU device the way the webgpu backend does (Dawn for Node via npm "webgpu", with
the unsafe-API and NVIDIA-f16 toggles) and prints what the adapter offers: vendor, architecture,
description, shader-f16, subgroups and their sizes, subgroup-matrix (tensor core) configurations,
timestamp queries and the limits the kernels depend on. Exit status 1 when there is no adapter.
  --json   print the report as JSON ({ "available": false, "reason": ... } without an adapter)`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, strict: true, options: { json: { type: 'boolean', default: false } } });
    // Imported here so that other commands never load WebGPU code.
    const { probeWebGpu, formatAdapterReport, releaseDefaultWebGpuContext } = await import('../../backends/webgpu/index.js');
    const probe = await probeWebGpu();
    try {
      if (!probe.available) {
        if (values.json) console.log(JSON.stringify({ available: false, reason: probe.reason }, null, 2));
        else console.error(`sparse-attn device: ${probe.reason}`);
        return 1;
      }
      const report = probe.context.report;
      console.log(values.json ? JSON.stringify({ available: true, ...report }, null, 2) : formatAdapterReport(report));
      return 0;
    } finally {
      await releaseDefaultWebGpuContext();
    }
  },
};
