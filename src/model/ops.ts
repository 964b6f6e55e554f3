/**
 * The dense operations of a Llama layer in plain f32 JavaScript: linear (x·Wᵀ + b), RMSNorm,
 * SwiGLU. Activations are row-major [tokens, features]; weights are HF's [out, in] row-major, so
 * both operands of every dot product are contiguous.
 *
 * linear tiles: 32 weight rows (32·in·4 B, 64 KiB at in = 512) stay in L2 while every group of
 * 4 token rows streams past them; the inner loop computes a 4 × 4 block of outputs from 4 x loads
 * and 4 W loads per step (16 independent accumulators), ~1.6× the 4 × 1 version in V8.
 */

const WEIGHT_TILE = 32;

/** y [M, N] = x [M, K] · Wᵀ (W [N, K]) + bias. `linearReference` is its naive twin. */
export function linear(x: Float32Array, m: number, weight: Float32Array, n: number, k: number, bias?: Float32Array): Float32Array {
  const y = new Float32Array(m * n);
  const m4 = m - (m % 4);
  for (let n0 = 0; n0 < n; n0 += WEIGHT_TILE) {
    const n1 = Math.min(n0 + WEIGHT_TILE, n);
    const n4 = n0 + ((n1 - n0) - ((n1 - n0) % 4));
    for (let i = 0; i < m4; i += 4) for (let j = n0; j < n4; j += 4) block4x4(x, weight, y, i, j, n, k);
    // Edges: the rows after the last group of 4, and the columns after the last group of 4.
    for (let i = 0; i < m; i++) {
      for (let j = i < m4 ? n4 : n0; j < n1; j++) {
        let a = 0;
        for (let t = 0, xo = i * k, wo = j * k; t < k; t++) a += x[xo + t] * weight[wo + t];
        y[i * n + j] = a;
      }
    }
  }
  if (bias) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) y[i * n + j] += bias[j];
  return y;
}

/** y[i..i+4, j..j+4] = x[i..i+4] · W[j..j+4]ᵀ. */
function block4x4(x: Float32Array, w: Float32Array, y: Float32Array, i: number, j: number, n: number, k: number): void {
  const x0 = i * k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
  const w0 = j * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
  let a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
  let a20 = 0, a21 = 0, a22 = 0, a23 = 0, a30 = 0, a31 = 0, a32 = 0, a33 = 0;
  for (let t = 0; t < k; t++) {
    const p0 = x[x0 + t], p1 = x[x1 + t], p2 = x[x2 + t], p3 = x[x3 + t];
    const q0 = w[w0 + t], q1 = w[w1 + t], q2 = w[w2 + t], q3 = w[w3 + t];
    a00 += p0 * q0; a01 += p0 * q1; a02 += p0 * q2; a03 += p0 * q3;
    a10 += p1 * q0; a11 += p1 * q1; a12 += p1 * q2; a13 += p1 * q3;
    a20 += p2 * q0; a21 += p2 * q1; a22 += p2 * q2; a23 += p2 * q3;
    a30 += p3 * q0; a31 += p3 * q1; a32 += p3 * q2; a33 += p3 * q3;
  }
  let o = i * n + j;
  y[o] = a00; y[o + 1] = a01; y[o + 2] = a02; y[o + 3] = a03; o += n;
  y[o] = a10; y[o + 1] = a11; y[o + 2] = a12; y[o + 3] = a13; o += n;
  y[o] = a20; y[o + 1] = a21; y[o + 2] = a22; y[o + 3] = a23; o += n;
  y[o] = a30; y[o + 1] = a31; y[o + 2] = a32; y[o + 3] = a33;
}

/** The readable definition `linear` is tested against. */
export function linearReference(x: Float32Array, m: number, weight: Float32Array, n: number, k: number, bias?: Float32Array): Float32Array {
  const y = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let a = 0;
      for (let t = 0; t < k; t++) a += x[i * k + t] * weight[j * k + t];
      y[i * n + j] = a + (bias ? bias[j] : 0);
    }
  return y;
}

/** RMSNorm per row of [M, H]: x / sqrt(mean(x²) + eps) · weight (HF LlamaRMSNorm, f32). */
export function rmsNorm(x: Float32Array, m: number, h: number, weight: Float32Array, eps: number): Float32Array {
  const y = new Float32Array(m * h);
  for (let i = 0; i < m; i++) {
    const o = i * h;
    let ss = 0;
    for (let t = 0; t < h; t++) ss += x[o + t] * x[o + t];
    const inv = 1 / Math.sqrt(ss / h + eps);
    for (let t = 0; t < h; t++) y[o + t] = x[o + t] * inv * weight[t];
  }
  return y;
}

/** SwiGLU in place into `gate`: silu(gate) · up. */
export function siluMul(gate: Float32Array, up: Float32Array): Float32Array {
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i];
    gate[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
  return gate;
}

/** a += b elementwise (the residual stream). */
export function addInPlace(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
}

/** Row blocks one after another in one array (chunked logits, fused weight matrices). */
export function concatRows(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
