/**
 * Rotary position embedding, Hugging Face Llama convention ("rotate half"): dimension d < D/2 is
 * paired with d + D/2 (not with d + 1), and the pair at position p turns by the angle
 * p · θ^(-2d/D):
 *   x'[d]       = x[d]·cos − x[d + D/2]·sin
 *   x'[d + D/2] = x[d + D/2]·cos + x[d]·sin
 * Angles are rounded to f32 the way HF computes them (inv_freq and p·inv_freq in float32), so
 * logits match transformers' at long positions too, where an f64 angle would drift by ~1e-4 rad.
 */

export class RopeTable {
  private cos = new Float32Array(0);
  private sin = new Float32Array(0);
  private positions = 0;
  readonly invFreq: Float32Array;

  constructor(
    readonly headDim: number,
    readonly theta: number,
  ) {
    const half = headDim / 2;
    this.invFreq = new Float32Array(half);
    for (let d = 0; d < half; d++) {
      this.invFreq[d] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * d) / headDim))));
    }
  }

  /** Grows the tables to cover positions [0, n). */
  private ensure(n: number): void {
    if (n <= this.positions) return;
    const cap = Math.max(n, this.positions * 2, 256);
    const half = this.headDim / 2;
    const cos = new Float32Array(cap * half);
    const sin = new Float32Array(cap * half);
    for (let p = 0; p < cap; p++)
      for (let d = 0; d < half; d++) {
        const angle = Math.fround(p * this.invFreq[d]);
        cos[p * half + d] = Math.cos(angle);
        sin[p * half + d] = Math.sin(angle);
      }
    this.cos = cos;
    this.sin = sin;
    this.positions = cap;
  }

  /**
   * Rotates, in place, rows of `x` laid out [tokens, heads, D] (what a projection writes), token t
   * at position start + t.
   */
  apply(x: Float32Array, tokens: number, heads: number, start: number): void {
    this.ensure(start + tokens);
    const D = this.headDim;
    const half = D / 2;
    for (let t = 0; t < tokens; t++) {
      const c0 = (start + t) * half;
      for (let h = 0; h < heads; h++) {
        const o = (t * heads + h) * D;
        for (let d = 0; d < half; d++) {
          const c = this.cos[c0 + d];
          const s = this.sin[c0 + d];
          const a = x[o + d];
          const b = x[o + d + half];
          x[o + d] = a * c - b * s;
          x[o + d + half] = b * c + a * s;
        }
      }
    }
  }
}
