import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadSparseAttentionConfig } from '../../config/json.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { argmax, LlamaModel } from '../../model/llama.js';
import { sparsify } from '../../model/sparsify.js';
import { parseBackendChoice } from '../../backends/backend.js';
import { createBackend } from '../../backends/index.js';
import type { Command } from '../command.js';
import { intOption } from '../options.js';
import { ProgressBar } from '../progress.js';

const USAGE = `sparse-attn generate --model DIR (--prompt TEXT | --prompt-file F) [options]

Greedy continuation of a prompt by a Hugging Face Llama checkpoint. The prompt's bytes are its
token ids (bytes-llama-dev's tokenizer); generated tokens are printed as they come (as bytes when
the vocabulary is at most 256, else as [id]). A progress bar over prefill chunks and the timings
(time to first token, decode tokens/s) go to stderr.
  --model DIR          checkpoint directory (config.json + safetensors)
  --prompt TEXT        the prompt
  --prompt-file F      the prompt, read from a file
  --backend B          cpu | webgpu | auto (default cpu); webgpu runs the whole forward pass on the GPU
  --config F           sparse-attention config JSON (ModelOpt's sparse_cfg); default: dense
  --max-new N          tokens to generate (default 64)
  --chunk N            prefill chunk in tokens (default 2048)
  --dtype T            webgpu: f16 | f32 (default f16 where the adapter has shader-f16)
  --stats              print each module's block sparsity afterwards`;



export const generateCommand: Command = {
  name: 'generate',
  summary: 'greedy generation from a Llama checkpoint on the CPU or the GPU, with sparse prefill',
  usage: USAGE,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: 'string' },
        prompt: { type: 'string' },
        'prompt-file': { type: 'string' },
        backend: { type: 'string', default: 'cpu' },
        config: { type: 'string' },
        'max-new': { type: 'string', default: '64' },
        chunk: { type: 'string', default: '2048' },
        dtype: { type: 'string' },
        stats: { type: 'boolean', default: false },
      },
    });
    if (!values.model) throw new InvalidArgumentError('--model', undefined, 'a checkpoint directory');
    if ((values.prompt === undefined) === (values['prompt-file'] === undefined)) throw new InvalidArgumentError('--prompt / --prompt-file', 'both or neither', 'exactly one of them');
    const choice = parseBackendChoice('--backend', values.backend);
    if (values.dtype !== undefined && values.dtype !== 'f16' && values.dtype !== 'f32') throw new InvalidArgumentError('--dtype', values.dtype, 'f16 or f32');
    const maxNew = intOption('max-new', values['max-new']);
    const chunk = intOption('chunk', values.chunk);
    const text = values.prompt ?? readFileSync(values['prompt-file']!, 'utf8');
    const prompt = [...Buffer.from(text, 'utf8')];
    if (prompt.length === 0) throw new InvalidArgumentError('prompt', '""', 'at least one byte');

    const model = LlamaModel.load(values.model);
    const V = model.config.vocabSize;
    const cfg = values.config ? loadSparseAttentionConfig(readFileSync(values.config, 'utf8')) : undefined;
    const bar = new ProgressBar();
    const print = (token: number) => process.stdout.write(V <= 256 ? Buffer.from([token]) : `[${token}]`);
    let prefillMs = 0;
    let decodeMs = 0;
    const t0 = performance.now();
    // 'auto' is decided here, once: WebGPU when an adapter exists, else the CPU.
    const backend = choice === 'auto' ? (await createBackend('auto')).name : choice;
    const onPrefill = (done: number, total: number) => bar.update(done, total, `prefill ${backend}`);

    if (backend === 'webgpu') {
      const { createWebGpuBackend, defaultWebGpuContext, releaseDefaultWebGpuContext } = await import('../../backends/webgpu/index.js');
      const { GpuLlamaModel } = await import('../../model/gpu-llama.js');
      const { prefillGpu } = await import('../../model/gpu-generate.js');
      // The GPU runner ignores a module's backend (it runs on its own device); sparsify needs one per name.
      if (cfg) sparsify(model, cfg, { backends: { webgpu: createWebGpuBackend() } });
      const ctx = await defaultWebGpuContext();
      const gpu = new GpuLlamaModel(model, ctx, { dtype: values.dtype as 'f16' | 'f32' | undefined });
      const cache = gpu.newCache(prompt.length + maxNew);
      try {
        let logits = await prefillGpu(gpu, prompt, cache, chunk, 'last', onPrefill);
        prefillMs = performance.now() - t0;
        bar.finish();
        const t1 = performance.now();
        for (let i = 0; i < maxNew; i++) {
          const next = argmax(logits, V);
          print(next);
          if (i + 1 < maxNew) logits = (await gpu.forward([next], cache)).logits;
        }
        decodeMs = performance.now() - t1;
      } finally {
        cache.destroy();
        gpu.destroy();
        await releaseDefaultWebGpuContext();
      }
    } else {
      if (cfg) sparsify(model, cfg);
      const cache = model.newCache(prompt.length + maxNew);
      let logits: Float32Array | undefined;
      for (let s = 0; s < prompt.length; s += chunk) {
        logits = (await model.forward(prompt.slice(s, s + chunk), cache, { tokensAfter: Math.max(0, prompt.length - s - chunk) })).logits;
        onPrefill(Math.min(s + chunk, prompt.length), prompt.length);
      }
      prefillMs = performance.now() - t0;
      bar.finish();
      const t1 = performance.now();
      for (let i = 0; i < maxNew; i++) {
        const next = argmax(logits!, V);
        print(next);
        if (i + 1 < maxNew) logits = (await model.forward([next], cache)).logits;
      }
      decodeMs = performance.now() - t1;
    }
    process.stdout.write('\n');
    const perToken = maxNew > 1 ? decodeMs / (maxNew - 1) : 0;
    console.error(`prompt ${prompt.length} tokens: time to first token ${(prefillMs / 1000).toFixed(2)} s; decode ${maxNew > 1 ? (1000 / perToken).toFixed(1) : '-'} tokens/s (${backend})`);
    if (values.stats && model.stats) console.error(model.stats.table('prefill'));
    return 0;
  },
};
