/**
 * Last-position logits of our CPU runner for a fixed prompt: what an end-to-end peer
 * (bench/peers/llama_ttft.py --check) compares its own forward pass with before it is timed.
 *
 *   node dist/bench/peer-logits.js --model test/fixtures/bytes-llama-dev --out bench/peers/fixture-logits.json
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LlamaModel, prefill } from '../src/model/llama.js';
import { intOption } from '../src/cli/options.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'test/fixtures/bytes-llama-dev' },
    length: { type: 'string', default: '300' },
    chunk: { type: 'string', default: '128' },
    seed: { type: 'string', default: '7' },
    out: { type: 'string' },
  },
});
const model = LlamaModel.load(values.model!);
const length = intOption('length', values.length!, 1);
const chunk = intOption('chunk', values.chunk!, 1);
let s = intOption('seed', values.seed!, 0) >>> 0;
const prompt = Array.from({ length }, () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % model.config.vocabSize);
const logits = await prefill(model, prompt, model.newCache(length), chunk);
const text = `${JSON.stringify({ model: values.model, runner: 'sparse-attention CPU LlamaModel (f32)', chunk, prompt, logits: Array.from(logits, (x) => Number(x.toPrecision(7))) })}\n`;
if (values.out) writeFileSync(values.out, text);
else process.stdout.write(text);
