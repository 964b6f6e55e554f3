/**
 * SLA's learned output projection `proj_l` (torch `nn.Linear(D, D)`): O = Os + Ol · Wᵀ + bias.
 * Zero-initialised in the reference, so an untrained SLA equals its sparse part.
 *
 * Weights: W [Dv_out, Dv_in] row-major (the layout of `nn.Linear.weight`), bias [Dv]. Given as
 *   'zero' | 'identity' | { weight, bias?, heads? } (Float32Array, number[] or number[][]) | a flat
 *   number array of Dv·Dv (weight) or Dv·Dv + Dv (weight, then bias) numbers,
 * or loaded from a JSON file holding any of the array / object forms.
 * Per-head weights (ours, from the closed-form fit; the reference shares one Linear over heads):
 * `{ weight, bias?, heads: H }` with W [H, Dv, Dv] and bias [H, Dv]; query head h uses slice h.
 * Sizes are checked at call time, when Dv and H are known.
 */
import { InvalidArgumentError, SparseAttentionError, UnsupportedError } from '../../core/errors.js';

export type SlaProjection =
  | { kind: 'zero' }
  | { kind: 'identity' }
  | { kind: 'weights'; weight: Float32Array; bias: Float32Array | null; source: string; /** 1: one W for every head. */ heads: number };

export function parseProjection(value: unknown, parameter: string): SlaProjection {
  if (value === undefined || value === 'zero') return { kind: 'zero' };
  if (value === 'identity') return { kind: 'identity' };
  const expected = '"zero", "identity", { weight, bias? } or an array of Dv·Dv (+ Dv bias) numbers';
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    if (Array.isArray(value) && value.length > 0 && Array.isArray(value[0])) {
      return { kind: 'weights', weight: numbers(value.flat(), `${parameter}`), bias: null, source: parameter, heads: 1 };
    }
    const all = numbers(value, parameter);
    const n = all.length;
    const side = Math.round(Math.sqrt(n));
    if (side * side === n) return { kind: 'weights', weight: all, bias: null, source: parameter, heads: 1 };
    const d = Math.round((Math.sqrt(4 * n + 1) - 1) / 2);
    if (d * d + d === n) return { kind: 'weights', weight: all.slice(0, d * d), bias: all.slice(d * d), source: parameter, heads: 1 };
    throw new InvalidArgumentError(`${parameter}.length`, n, 'Dv·Dv (weight) or Dv·Dv + Dv (weight then bias) for some Dv');
  }
  if (typeof value === 'object' && value !== null && 'weight' in value) {
    const { weight, bias, heads } = value as { weight: unknown; bias?: unknown; heads?: unknown };
    const w = Array.isArray(weight) && weight.length > 0 && Array.isArray(weight[0]) ? weight.flat(2) : weight;
    const b = Array.isArray(bias) && bias.length > 0 && Array.isArray(bias[0]) ? bias.flat() : bias;
    if (heads !== undefined && (typeof heads !== 'number' || !Number.isInteger(heads) || heads < 1)) {
      throw new InvalidArgumentError(`${parameter}.heads`, heads, 'an integer >= 1 (the query heads of per-head weights)');
    }
    return {
      kind: 'weights',
      weight: numbers(w, `${parameter}.weight`),
      bias: b === undefined || b === null ? null : numbers(b, `${parameter}.bias`),
      source: parameter,
      heads: heads ?? 1,
    };
  }
  throw new InvalidArgumentError(parameter, value, expected);
}

function numbers(value: unknown, parameter: string): Float32Array {
  if (!Array.isArray(value) && !ArrayBuffer.isView(value)) throw new InvalidArgumentError(parameter, value, 'an array of numbers');
  const arr = value as ArrayLike<unknown>;
  const out = new Float32Array(arr.length);
  for (let i = 0; i < arr.length; i++) {
    const x = arr[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new InvalidArgumentError(`${parameter}[${i}]`, x, 'a finite number');
    out[i] = x;
  }
  return out;
}

/**
 * Reads a JSON projection file. Uses Node's fs through process.getBuiltinModule so that importing
 * this module stays free of Node imports (the methods also run in browsers).
 */
export function loadProjectionFile(path: string, parameter = 'projFile'): SlaProjection {
  if (typeof path !== 'string' || path.length === 0) throw new InvalidArgumentError(parameter, path, 'a path to a JSON file');
  const fs = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('fs') as
    | { readFileSync(p: string, enc: 'utf8'): string }
    | undefined;
  if (!fs) throw new UnsupportedError(`${parameter}: reading files needs Node's fs; pass the weights as proj instead`);
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new SparseAttentionError(`${parameter}: cannot read ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SparseAttentionError(`${parameter}: ${JSON.stringify(path)} is not valid JSON: ${(err as Error).message}`);
  }
  const proj = parseProjection(json, `${parameter} ${JSON.stringify(path)}`);
  if (proj.kind !== 'weights') throw new InvalidArgumentError(parameter, path, 'a JSON file of weights (an array or { weight, bias? })');
  return proj;
}

export function projectionIsZero(proj: SlaProjection): boolean {
  if (proj.kind === 'zero') return true;
  if (proj.kind === 'identity') return false;
  return proj.weight.every((x) => x === 0) && (!proj.bias || proj.bias.every((x) => x === 0));
}

/**
 * Weights must be Dv·Dv (and bias Dv), or H·Dv·Dv (and H·Dv) when per-head, checked even when they
 * are all zero. `heads`: the call's query heads, which per-head weights must match.
 */
export function checkProjectionSize(proj: SlaProjection, Dv: number, heads?: number): void {
  if (proj.kind !== 'weights') return;
  const H = proj.heads;
  const per = H > 1 ? `${H}·Dv·Dv for ${H} heads of` : 'Dv·Dv for';
  if (proj.weight.length !== H * Dv * Dv) throw new InvalidArgumentError(`${proj.source} weight length`, proj.weight.length, `${H * Dv * Dv} (${per} value head dim ${Dv})`);
  if (proj.bias && proj.bias.length !== H * Dv) throw new InvalidArgumentError(`${proj.source} bias length`, proj.bias.length, `${H * Dv} (${H > 1 ? `${H}·` : ''}the value head dim)`);
  if (H > 1 && heads !== undefined && heads !== H) throw new InvalidArgumentError(`${proj.source} heads`, H, `${heads} (the query heads of this call: per-head weights are fitted for one head count)`);
}

/**
 * out[r] += W_h · ol[r] + bias_h for each of the rows of [B, H, Lq, Dv] (BHLD-ordered flat arrays);
 * h is the row's head (per-head weights) or W is shared. `shape` is needed for per-head weights.
 */
export function addProjection(proj: SlaProjection, ol: Float32Array, out: Float32Array, Dv: number, shape?: { heads: number; queryLength: number }): void {
  if (proj.kind === 'zero') return;
  if (proj.kind === 'identity') {
    for (let x = 0; x < out.length; x++) out[x] += ol[x];
    return;
  }
  if (proj.heads > 1 && !shape) throw new InvalidArgumentError('addProjection shape', shape, `{ heads, queryLength } for per-head weights (${proj.source})`);
  checkProjectionSize(proj, Dv, shape?.heads);
  const { weight, bias } = proj;
  const rowsPerHead = shape ? shape.queryLength : Infinity;
  for (let o = 0, row = 0; o < out.length; o += Dv, row++) {
    const h = proj.heads > 1 ? Math.floor(row / rowsPerHead) % proj.heads : 0;
    const w0 = h * Dv * Dv;
    const b0 = h * Dv;
    for (let r = 0; r < Dv; r++) {
      let s = bias ? bias[b0 + r] : 0;
      for (let c = 0; c < Dv; c++) s += weight[w0 + r * Dv + c] * ol[o + c];
      out[o + r] += s;
    }
  }
}
