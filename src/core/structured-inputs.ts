/**
 * Seeded Q, K, V whose attention has the structure real models show (so sparsity is real, not an
 * artefact of random noise): an attention sink at the first tokens, a local band (rotary-style
 * position features, so q_i·k_j is large when i ≈ j), and a few "retrieval" keys that a random
 * subset of later queries matches strongly. Random inputs (HeadTensor.randn) give near-uniform
 * attention, where no method can be sparse without error.
 */
import { requireInteger } from './errors.js';
import { Rng } from './rng.js';
import { HeadTensor, type Layout } from './tensor.js';

/** The shape and seed every generator here takes. */
export interface InputShapeOptions {
  heads: number;
  kvHeads?: number;
  length: number;
  /** Defaults to `length`; queries are the last `queryLength` positions. */
  queryLength?: number;
  headDim: number;
  seed: number;
  layout?: Layout;
}

export interface StructuredInputOptions extends InputShapeOptions {
  batch?: number;
  /** Strength of the band, sink and retrieval components relative to unit noise. */
  band?: number;
  sink?: number;
  retrieval?: number;
}

export function structuredQKV(opts: StructuredInputOptions): { q: HeadTensor; k: HeadTensor; v: HeadTensor } {
  const B = opts.batch ?? 1;
  const H = requireInteger('heads', opts.heads, 1);
  const Hkv = opts.kvHeads ?? H;
  const L = requireInteger('length', opts.length, 1);
  const Lq = opts.queryLength ?? L;
  const D = requireInteger('headDim', opts.headDim, 8);
  const rng = new Rng(opts.seed);
  const band = opts.band ?? 3;
  const sink = opts.sink ?? 6;
  const retrieval = opts.retrieval ?? 6;
  // Channel plan: [0] sink, [1..nf*2] rotary pairs, [last quarter] retrieval code, rest noise.
  const nf = Math.max(1, Math.floor(D / 8));
  const codeStart = D - Math.max(2, Math.floor(D / 4));
  const freqs = Array.from({ length: nf }, (_, f) => 1 / Math.pow(64, f / nf) / 4);
  const noise = 0.3;
  const codes = Array.from({ length: 4 }, () => Array.from({ length: D - codeStart }, () => rng.normal()));
  const needles = Array.from({ length: 4 }, () => rng.int(Math.max(1, L - 1)));
  const headShift = Array.from({ length: H }, () => rng.next());

  const k = HeadTensor.fromFunction({ batch: B, heads: Hkv, length: L, headDim: D }, (_b, _h, j, d) => {
    if (d === 0) return j < 4 ? sink : 0;
    if (d <= 2 * nf) {
      const f = (d - 1) >> 1;
      const a = freqs[f] * j;
      return band * ((d - 1) & 1 ? Math.sin(a) : Math.cos(a)) / Math.sqrt(nf);
    }
    if (d >= codeStart) {
      const n = needles.indexOf(j);
      return n >= 0 ? retrieval * codes[n][d - codeStart] / Math.sqrt(D - codeStart) : noise * rng.normal();
    }
    return noise * rng.normal();
  }, opts.layout ?? 'BHLD');

  const q = HeadTensor.fromFunction({ batch: B, heads: H, length: Lq, headDim: D }, (_b, h, i, d) => {
    const pos = L - Lq + i;
    if (d === 0) return 1 + headShift[h];
    if (d <= 2 * nf) {
      const f = (d - 1) >> 1;
      const a = freqs[f] * pos;
      return band * ((d - 1) & 1 ? Math.sin(a) : Math.cos(a)) / Math.sqrt(nf);
    }
    if (d >= codeStart) {
      // Queries past a needle look it up with probability 1/8 (a stable choice per query and head).
      const n = (pos * 7 + h * 13) % 32;
      return n < needles.length && needles[n] < pos ? retrieval * codes[n][d - codeStart] / Math.sqrt(D - codeStart) : noise * rng.normal();
    }
    return noise * rng.normal();
  }, opts.layout ?? 'BHLD');

  const v = HeadTensor.randn({ batch: B, heads: Hkv, length: L, headDim: D }, opts.seed + 1, { layout: opts.layout ?? 'BHLD' });
  return { q, k, v };
}

export interface PeakedInputOptions extends InputShapeOptions {
  /** Keys per block: the unit the bumps are placed in. */
  blockSize: number;
  /** Share of key blocks (after the first) holding one key just below the sinks. */
  bumps: number;
}

/**
 * Inputs for flash-skip-softmax, whose rule skips a key block when every score in it is far below
 * the running max: every query looks along channel 0, where the first 8 keys score highest (logit 40
 * before the scale), a `bumps` share of the later key blocks holds one key at 0.9 of that at a
 * random position in the block (so the block is decided on its first tile or a later one), and the
 * rest score near 0 (other channels: noise of std 0.1, so their dot products stay small).
 */
export function peakedQKV(opts: PeakedInputOptions): { q: HeadTensor; k: HeadTensor; v: HeadTensor } {
  const H = requireInteger('heads', opts.heads, 1);
  const Hkv = opts.kvHeads ?? H;
  const L = requireInteger('length', opts.length, 1);
  const Lq = opts.queryLength ?? L;
  const D = requireInteger('headDim', opts.headDim, 2);
  const block = requireInteger('blockSize', opts.blockSize, 1);
  const layout = opts.layout ?? 'BHLD';
  const rng = new Rng(opts.seed);
  const bumpAt = Array.from({ length: Hkv }, () => Array.from({ length: Math.ceil(L / block) }, (_, kb) =>
    kb > 0 && rng.next() < opts.bumps ? kb * block + Math.floor(rng.next() * block) : -1));
  const q = HeadTensor.fromFunction({ batch: 1, heads: H, length: Lq, headDim: D }, (_b, _h, _i, d) => d === 0 ? 40 : 0.1 * rng.normal(), layout);
  const k = HeadTensor.fromFunction({ batch: 1, heads: Hkv, length: L, headDim: D }, (_b, h, j, d) => {
    if (d !== 0) return 0.1 * rng.normal();
    if (j < 8) return 1;
    return bumpAt[h][Math.floor(j / block)] === j ? 0.9 : 0.1 * rng.next();
  }, layout);
  const v = HeadTensor.randn({ batch: 1, heads: Hkv, length: L, headDim: D }, opts.seed + 1, { layout });
  return { q, k, v };
}
