/**
 * The inputs the demo, the mask pictures and the browser page run on, by kind:
 *   structured  seeded Q, K, V with a sink, a local band and retrieval keys (structured-inputs.ts),
 *               at twice the default strengths: logits spanning ~10 units at 1/sqrt(D), as trained heads show
 *   random      seeded Gaussian Q, K, V: near-uniform attention, where sparsity costs accuracy
 */
import { InvalidArgumentError } from './errors.js';
import { structuredQKV } from './structured-inputs.js';
import { HeadTensor } from './tensor.js';

export const INPUT_KINDS = ['structured', 'random'] as const;
export type InputKind = (typeof INPUT_KINDS)[number];

export interface InputShape {
  length: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  seed: number;
}

export function parseInputKind(parameter: string, value: unknown): InputKind {
  if (!INPUT_KINDS.includes(value as InputKind)) throw new InvalidArgumentError(parameter, value, `one of ${INPUT_KINDS.join(', ')}`);
  return value as InputKind;
}

export function inputsOfKind(kind: InputKind, s: InputShape): { q: HeadTensor; k: HeadTensor; v: HeadTensor } {
  if (kind === 'structured') return structuredQKV({ ...s, band: 6, sink: 9, retrieval: 9 });
  return {
    q: HeadTensor.randn({ batch: 1, heads: s.heads, length: s.length, headDim: s.headDim }, s.seed),
    k: HeadTensor.randn({ batch: 1, heads: s.kvHeads, length: s.length, headDim: s.headDim }, s.seed + 1),
    v: HeadTensor.randn({ batch: 1, heads: s.kvHeads, length: s.length, headDim: s.headDim }, s.seed + 2),
  };
}
