import { parseArgs } from 'node:util';
import { type BackendChoice, type BackendName, parseBackendChoice } from '../../backends/backend.js';
import { naiveAttention } from '../../backends/cpu/naive-attention.js';
import { createBackend } from '../../backends/index.js';
import { type SchedulerConfigInput } from '../../config/openvino.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { formatTable } from '../../core/stats.js';
import { Engine } from '../../engine/engine.js';
import { syntheticModel } from '../../engine/synthetic-model.js';
import type { Command } from '../command.js';
import { intOption } from '../options.js';

export interface PrefillWorkload {
  mode: 'trishape' | 'xattention' | 'dense';
  /** Paged attention (and XAttention estimation) on the CPU reference or on WebGPU; default cpu. */
  backend?: BackendChoice;
  lengths: number[];
  decodeTokens: number;
  chunk: number;
  blockSize: 16 | 32;
  /** 0: enough for every sequence at once. */
  numKvBlocks: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  lastDense: number;
  startTokens: number;
  recentTokens: number;
  threshold: number;
  xattentionBlockSize: number;
  xattentionStride: number;
  seed: number;
  /** Also compare every output with dense attention over the whole sequence. */
  check: boolean;
}

export interface PrefillRow {
  seq: number;
  prompt: number;
  decode: number;
  chunks: number;
  sparseChunks: number;
  skippedBlocks: number;
  sparsity: number;
  heldBack: number;
  preemptions: number;
  /** Max |output - dense| over all positions, heads and layers (with --check). */
  maxAbsErrorVsDense: number | null;
}

export interface PrefillReport {
  mode: PrefillWorkload['mode'];
  /** The backend the engine ran on. */
  backend: BackendName;
  steps: number;
  numKvBlocks: number;
  blockSize: number;
  ms: number;
  rows: PrefillRow[];
}

export async function runPrefillWorkload(w: PrefillWorkload): Promise<PrefillReport> {
  const model = syntheticModel({ numLayers: w.layers, heads: w.heads, kvHeads: w.kvHeads, headDim: w.headDim, seed: w.seed });
  const needed = w.lengths.reduce((a, L) => a + Math.ceil((L + w.decodeTokens) / w.blockSize), 0);
  const config: SchedulerConfigInput = {
    maxNumBatchedTokens: w.chunk,
    numKvBlocks: w.numKvBlocks || needed,
    kvBlockSize: w.blockSize,
    useSparseAttention: w.mode !== 'dense',
    sparseAttentionConfig: {
      mode: w.mode === 'xattention' ? 'XATTENTION' : 'TRISHAPE',
      numLastDenseTokensInPrefill: w.lastDense,
      numRetainedStartTokensInCache: w.startTokens,
      numRetainedRecentTokensInCache: w.recentTokens,
      xattentionThreshold: w.threshold,
      xattentionBlockSize: w.xattentionBlockSize,
      xattentionStride: w.xattentionStride,
    },
  };
  // Loaded on demand so a CPU run never loads Dawn.
  const backend = await createBackend(w.backend ?? 'cpu');
  const engine = new Engine({ model, config, backend });
  w.lengths.forEach((promptLength, id) => engine.addRequest({ id, promptLength, decodeTokens: w.decodeTokens }));
  const t0 = performance.now();
  const steps = await engine.run();
  const ms = performance.now() - t0;
  const rows = w.lengths.map((prompt, seq): PrefillRow => {
    const st = engine.stats(seq);
    const prefill = st.chunks.filter((c) => c.phase === 'prefill');
    return {
      seq, prompt, decode: st.decodeSteps, chunks: st.prefillChunks,
      sparseChunks: prefill.filter((c) => c.kind !== 'dense').length,
      skippedBlocks: st.skippedBlocks, sparsity: st.prefillSparsity, heldBack: st.heldBackSteps, preemptions: st.preemptions,
      maxAbsErrorVsDense: w.check ? maxErrorVsDense(engine, seq, prompt + w.decodeTokens) : null,
    };
  });
  return { mode: w.mode, backend: engine.backend.name, steps: steps.length, numKvBlocks: engine.cache.numBlocks, blockSize: w.blockSize, ms, rows };
}

function maxErrorVsDense(engine: Engine, seq: number, length: number): number {
  let worst = 0;
  for (let layer = 0; layer < engine.model.numLayers; layer++) {
    const { q, k, v } = engine.model.qkv(layer, seq, 0, length);
    const dense = naiveAttention(q, k, v, { causal: true }).toFloat32Array();
    const out = engine.output(seq, layer).toFloat32Array();
    for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i] - dense[i]));
  }
  return worst;
}

export const prefillCommand: Command = {
  name: 'prefill',
  summary: 'run the paged-KV chunked-prefill engine on a synthetic multi-sequence workload',
  usage: `sparse-attn prefill [options]

Runs the engine (OpenVINO GenAI-style scheduler, paged KV cache, CPU backend) on synthetic
sequences whose Q/K/V are seeded functions of position, and prints per sequence: prefill chunks,
chunks that ran sparse, logical KV blocks skipped (TRISHAPE), prefill sparsity (share of causal
query-key pairs not computed), steps held back for lack of KV blocks, and preemptions.
  --mode M            trishape | xattention | dense (default trishape)
  --sequences N       number of sequences (default 3)
  --lengths A,B,...   prompt lengths, repeated to --sequences (default 1200,900,500)
  --decode N          tokens decoded per sequence after its prompt (default 8)
  --chunk N           maxNumBatchedTokens per step over all sequences (default 128)
  --block-size N      KV block size, 16 or 32 (default 32)
  --blocks N          KV blocks in the cache (default: enough for all sequences)
  --last-dense N      numLastDenseTokensInPrefill (default 100)
  --start-tokens N    numRetainedStartTokensInCache (default 128)
  --recent-tokens N   numRetainedRecentTokensInCache (default 256; OpenVINO's 1920 needs long prompts)
  --threshold X       xattentionThreshold (default 0.8)
  --xa-block N        xattentionBlockSize (default 64)
  --xa-stride N       xattentionStride (default 8)
  --layers N --heads N --kv-heads N --head-dim N   model shape (default 2, 4, 2, 16)
  --seed N            (default 1)
  --check             also report max |output - dense attention| per sequence
  --backend B         cpu | webgpu | auto: where paged attention and XAttention estimation run (default cpu)
  --json              print the report as JSON`,
  async run(argv) {
    const { values: v } = parseArgs({
      args: argv,
      strict: true,
      options: {
        mode: { type: 'string', default: 'trishape' }, sequences: { type: 'string', default: '3' },
        lengths: { type: 'string', default: '1200,900,500' }, decode: { type: 'string', default: '8' },
        chunk: { type: 'string', default: '128' }, 'block-size': { type: 'string', default: '32' }, blocks: { type: 'string', default: '0' },
        'last-dense': { type: 'string', default: '100' }, 'start-tokens': { type: 'string', default: '128' }, 'recent-tokens': { type: 'string', default: '256' },
        threshold: { type: 'string', default: '0.8' }, 'xa-block': { type: 'string', default: '64' }, 'xa-stride': { type: 'string', default: '8' },
        layers: { type: 'string', default: '2' }, heads: { type: 'string', default: '4' }, 'kv-heads': { type: 'string', default: '2' },
        'head-dim': { type: 'string', default: '16' }, seed: { type: 'string', default: '1' },
        check: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, backend: { type: 'string', default: 'cpu' },
      },
    });
    const int = (name: string, min = 1) => intOption(name, String(v[name as keyof typeof v]), min);
    if (v.mode !== 'trishape' && v.mode !== 'xattention' && v.mode !== 'dense') throw new InvalidArgumentError('--mode', v.mode, 'one of trishape, xattention, dense');
    const backend = parseBackendChoice('--backend', v.backend);
    const blockSize = int('block-size');
    if (blockSize !== 16 && blockSize !== 32) throw new InvalidArgumentError('--block-size', blockSize, '16 or 32');
    const given = v.lengths!.split(',').map((s) => Number(s.trim()));
    if (given.some((n) => !Number.isInteger(n) || n < 1)) throw new InvalidArgumentError('--lengths', v.lengths, 'comma-separated integers >= 1');
    const n = int('sequences');
    const report = await runPrefillWorkload({
      mode: v.mode, backend, lengths: Array.from({ length: n }, (_, i) => given[i % given.length]), decodeTokens: int('decode', 0),
      chunk: int('chunk'), blockSize, numKvBlocks: int('blocks', 0), layers: int('layers'), heads: int('heads'), kvHeads: int('kv-heads'),
      headDim: int('head-dim', 2), lastDense: int('last-dense', 0), startTokens: int('start-tokens', 0), recentTokens: int('recent-tokens', 0),
      threshold: Number(v.threshold), xattentionBlockSize: int('xa-block'), xattentionStride: int('xa-stride'), seed: int('seed', 0), check: v.check!,
    });
    if (v.json) {
      console.log(JSON.stringify(report, null, 2));
      return 0;
    }
    console.log(`prefill: mode ${report.mode}, ${report.rows.length} sequences, ${report.steps} steps, ${report.numKvBlocks} KV blocks of ${report.blockSize}, ${report.ms.toFixed(0)} ms (${report.backend === 'webgpu' ? 'WebGPU' : 'CPU'})`);
    const header = ['seq', 'prompt', 'decode', 'chunks', 'sparse chunks', 'skipped blocks', 'sparsity', 'held back', 'preempted'];
    if (v.check) header.push('max |err| vs dense');
    console.log(formatTable(header, report.rows.map((r) => [
      String(r.seq), String(r.prompt), String(r.decode), String(r.chunks), String(r.sparseChunks), String(r.skippedBlocks),
      r.sparsity.toFixed(3), String(r.heldBack), String(r.preemptions), ...(v.check ? [r.maxAbsErrorVsDense!.toExponential(2)] : []),
    ])));
    return 0;
  },
};
