/**
 * Needle-in-a-haystack prompts in the format bytes-llama-dev was trained on (tokens are bytes):
 * a window of Python source with 1–4 lines "\n# key %04d = %s\n" (4-digit key, 6 lowercase
 * letters) inserted at random positions, ending in "\n# query %04d = " that names one of the keys.
 * The answer is that key's 6 letters. Same construction as the training script's needle_seq, so a
 * prompt of `length` bytes is exactly `length` tokens.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, requireInteger } from '../core/errors.js';
import { Rng } from '../core/rng.js';

export interface NeedlePrompt {
  tokens: Uint8Array;
  /** The 6 answer bytes. */
  answer: Uint8Array;
  key: number;
  needles: number;
  /** Byte offsets of the inserted key lines. */
  positions: number[];
}

/** All `.py` files of a folder, concatenated in name order, each followed by a newline. */
export function loadCorpus(dir: string): Uint8Array {
  const files = readdirSync(dir).filter((f) => f.endsWith('.py')).sort();
  if (files.length === 0) throw new InvalidArgumentError('corpus folder', dir, 'a folder holding .py files');
  const parts = files.map((f) => readFileSync(join(dir, f)));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length + 1, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    out[at + p.length] = 10;
    at += p.length + 1;
  }
  return out;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** One prompt of exactly `length` bytes; `needles` fixed or drawn from 1–4 like training. */
export function buildNeedlePrompt(corpus: Uint8Array, length: number, rng: Rng, needles?: number): NeedlePrompt {
  requireInteger('needle prompt length', length, 64, corpus.length - 1);
  const n = needles ?? 1 + rng.int(4);
  requireInteger('needles', n, 1, 16);
  const keys: number[] = [];
  while (keys.length < n) {
    const k = rng.int(10000);
    if (!keys.includes(k)) keys.push(k);
  }
  const values = keys.map(() => Array.from({ length: 6 }, () => LETTERS[rng.int(26)]).join(''));
  const lines = keys.map((k, i) => ascii(`\n# key ${String(k).padStart(4, '0')} = ${values[i]}\n`));
  const qi = rng.int(n);
  const tail = ascii(`\n# query ${String(keys[qi]).padStart(4, '0')} = `);
  const bodyLength = length - tail.length - lines.reduce((a, l) => a + l.length, 0);
  if (bodyLength < 1) throw new InvalidArgumentError('needle prompt length', length, `room for ${n} key lines and the query`);
  const start = rng.int(corpus.length - bodyLength);
  const hay = corpus.subarray(start, start + bodyLength);
  const cuts = keys.map(() => rng.int(bodyLength + 1)).sort((a, b) => a - b);
  const tokens = new Uint8Array(length);
  const positions: number[] = [];
  let at = 0;
  let last = 0;
  cuts.forEach((cut, i) => {
    tokens.set(hay.subarray(last, cut), at);
    at += cut - last;
    positions.push(at);
    tokens.set(lines[i], at);
    at += lines[i].length;
    last = cut;
  });
  tokens.set(hay.subarray(last), at);
  at += bodyLength - last;
  tokens.set(tail, at);
  return { tokens, answer: ascii(values[qi]), key: keys[qi], needles: n, positions };
}
