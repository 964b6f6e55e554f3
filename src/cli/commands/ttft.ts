import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { webgpuDeviceInfo } from '../../bench/device-info.js';
import { defaultResultPath, writeJsonFile } from '../../bench/results.js';
import { parseLengths, runTtft, type TtftRow } from '../../bench/ttft.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { formatTable } from '../../core/stats.js';
import { LlamaModel } from '../../model/llama.js';
import type { GemmKernel } from '../../backends/webgpu/model/model-kernels.js';
import type { Command } from '../command.js';
import { intOption } from '../options.js';

const USAGE = `sparse-attn ttft --model DIR [options]

Time to first token on WebGPU: prefill of a random-token prompt in chunks through the GPU model
runner, then the first token, for each length, dense and with each method on every layer (default
settings). Each row: wall ms (median of --reps), speed-up over dense, and from one profiled run the
GPU ms of attention (kernels and planning) vs the rest, and the block sparsity. A length whose KV
cache and activations cannot fit says so before it runs. JSON like the attention bench.
  --model DIR          checkpoint directory (bench/make-random-llama.js writes realistic shapes)
  --lengths LIST       prompt lengths (default 4k,8k,16k,32k,64k,128k)
  --methods LIST       dense and method names (default dense,tri_shape,xattention)
  --settings JSON      settings per method, e.g. '{"xattention":{"threshold":0.9}}'
  --chunk N            prefill chunk in tokens (default 4096)
  --reps N             timed runs per row (default 1; a warm-up run compiles first)
  --dtype T            f16 | f32 (default f16 where the adapter has shader-f16)
  --gemm K             auto | portable | tensor-core | tiled: the GEMM kernel (default auto: the
                       tiled subgroup-matrix GEMM for calls over 64 rows where the adapter has
                       subgroup matrices, the direct one for shorter calls, else portable)
  --gpu-memory-gib G   refuse rows whose weights + cache + activations exceed G GiB
  --no-profile         skip the profiled run (attention/rest split, sparsity)
  --seed N             prompt seed (default 1)
  --out F              JSON path (default bench/results/<date>-<machine>/ttft.json)`;

const fmtMs = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));

function rowCells(r: TtftRow): string[] {
  if (r.skipped) return [String(r.length), r.method, '-', '-', '-', '-', '-', `skipped: ${r.skipped}`];
  return [
    String(r.length), r.method, fmtMs(r.medianMs), r.speedupVsDense === undefined ? '-' : `${r.speedupVsDense.toFixed(2)}×`,
    fmtMs(r.attentionMs), fmtMs(r.restMs), r.sparsity === undefined ? '-' : r.sparsity.toFixed(3), '',
  ];
}

export const ttftCommand: Command = {
  name: 'ttft',
  summary: 'bench: time to first token of a Llama checkpoint on WebGPU, dense vs each method',
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: 'string' },
        lengths: { type: 'string', default: '4k,8k,16k,32k,64k,128k' },
        methods: { type: 'string', default: 'dense,tri_shape,xattention' },
        settings: { type: 'string' },
        chunk: { type: 'string', default: '4096' },
        reps: { type: 'string', default: '1' },
        dtype: { type: 'string' },
        gemm: { type: 'string', default: 'auto' },
        'gpu-memory-gib': { type: 'string' },
        'no-profile': { type: 'boolean', default: false },
        seed: { type: 'string', default: '1' },
        out: { type: 'string' },
      },
    });
    if (!values.model) throw new InvalidArgumentError('--model', undefined, 'a checkpoint directory');
    if (values.dtype !== undefined && values.dtype !== 'f16' && values.dtype !== 'f32') throw new InvalidArgumentError('--dtype', values.dtype, 'f16 or f32');
    const lengths = parseLengths(values.lengths);
    const methods = values.methods.split(',').map((s) => s.trim()).filter(Boolean);
    const settings = values.settings ? (JSON.parse(values.settings) as Record<string, Record<string, unknown>>) : undefined;
    const gib = values['gpu-memory-gib'] === undefined ? undefined : Number(values['gpu-memory-gib']);
    if (gib !== undefined && !(gib > 0)) throw new InvalidArgumentError('--gpu-memory-gib', values['gpu-memory-gib'], 'a positive number');

    const rawConfig = JSON.parse(readFileSync(join(values.model, 'config.json'), 'utf8')) as Record<string, unknown>;
    const randomWeights = rawConfig.random_weights === true;
    console.error(`loading ${values.model}${randomWeights ? ' (RANDOM weights: for timing only)' : ''}`);
    const model = LlamaModel.load(values.model);
    const { defaultWebGpuContext, releaseDefaultWebGpuContext } = await import('../../backends/webgpu/index.js');
    const { GpuLlamaModel } = await import('../../model/gpu-llama.js');
    const { GEMM_KERNELS } = await import('../../backends/webgpu/model/model-kernels.js');
    const ctx = await defaultWebGpuContext();
    try {
      if (!(GEMM_KERNELS as readonly string[]).includes(values.gemm)) throw new InvalidArgumentError('--gemm', values.gemm, GEMM_KERNELS.join(', '));
      const gpu = new GpuLlamaModel(model, ctx, { dtype: values.dtype as 'f16' | 'f32' | undefined, gemm: values.gemm as GemmKernel });
      const device = webgpuDeviceInfo(ctx.report);
      const out = values.out ?? defaultResultPath('ttft.json', device);
      const header = ['L', 'method', 'TTFT ms', 'vs dense', 'attn ms', 'rest ms', 'sparsity', ''];
      const done: string[][] = [];
      const w = model.weights;
      const parameters = w.embed.length + (model.config.tieWordEmbeddings ? 0 : w.lmHead.weight.length)
        + w.layers.reduce((a, l) => a + [l.q, l.k, l.v, l.o, l.gate, l.up, l.down].reduce((b, x) => b + x.weight.length, 0), 0);
      const report = {
        bench: 'ttft', date: new Date().toISOString(), device,
        model: { dir: values.model, config: model.config, parameters, randomWeights, readme: existsSync(join(values.model, 'README.md')) ? 'README.md' : undefined },
        dtype: gpu.dtype, gemm: gpu.gemm, chunk: intOption('chunk', values.chunk, 1), reps: intOption('reps', values.reps, 1), seed: intOption('seed', values.seed, 0),
        timing: 'wall clock from the first chunk submitted to the first token\'s logits read back; attention/rest from timestamp queries of one more run',
        command: `sparse-attn ttft ${argv.join(' ')}`,
        rows: [] as TtftRow[],
      };
      await runTtft(gpu, ctx, {
        lengths, methods, settings, chunk: report.chunk, reps: report.reps, seed: report.seed, budgetBytes: gib === undefined ? undefined : gib * 2 ** 30,
        profile: !values['no-profile'],
        onRow(row) {
          report.rows.push(row);
          writeJsonFile(out, report);
          done.push(rowCells(row));
          console.error(formatTable(header, [rowCells(row)]).split('\n').pop());
        },
      });
      gpu.destroy();
      console.log(formatTable(header, done));
      console.log(`${randomWeights ? 'weights are RANDOM (timing only); ' : ''}wrote ${out}`);
      return report.rows.every((r) => !r.skipped || r.skipped.startsWith('does not fit')) ? 0 : 1;
    } finally {
      await releaseDefaultWebGpuContext();
    }
  },
};
