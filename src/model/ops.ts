/**
 * The dense operations of a Llama layer in plain f32 JavaScript: linear (x·Wᵀ + b), RMSNorm,
 * SwiGLU. Activations are row-major [tokens, features]; weights are HF's [out, in] row-major, so
 * both operands of every dot product are contiguous.
 *
 * linear tiles: 32 weight rows (32·in·4 B, 64 KiB at in = 512) stay in L2 while every group of
 * 4 token rows streams past them; 4 rows × 1 weight row per inner loop gives 4 independent
 * accumulators, which is what lets V8 keep the loop near its scalar peak.
 */

const WEIGHT_TILE = 32;

/** y [M, N] = x [M, K] · Wᵀ (W [N, K]) + bias. `linearReference` is its naive twin. */
export function linear(x: Float32Array, m: number, weight: Float32Array, n: number, k: number, bias?: Float32Array): Float32Array {
  const y = new Float32Array(m * n);
  const m4 = m - (m % 4);
  for (let n0 = 0; n0 < n; n0 += WEIGHT_TILE) {
    const n1 = Math.min(n0 + WEIGHT_TILE, n);
    for (let i = 0; i < m4; i += 4) {
      const x0 = i * k;
      const x1 = x0 + k;
      const x2 = x1 + k;
      const x3 = x2 + k;
      for (let j = n0; j < n1; j++) {
        const w0 = j * k;
        let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (let t = 0; t < k; t++) {
          const w = weight[w0 + t];
          a0 += x[x0 + t] * w;
          a1 += x[x1 + t] * w;
          a2 += x[x2 + t] * w;
          a3 += x[x3 + t] * w;
        }
        const b = bias ? bias[j] : 0;
        y[i * n + j] = a0 + b;
        y[(i + 1) * n + j] = a1 + b;
        y[(i + 2) * n + j] = a2 + b;
        y[(i + 3) * n + j] = a3 + b;
      }
    }
    for (let i = m4; i < m; i++) {
      const x0 = i * k;
      for (let j = n0; j < n1; j++) {
        const w0 = j * k;
        let a = 0;
        for (let t = 0; t < k; t++) a += x[x0 + t] * weight[w0 + t];
        y[i * n + j] = a + (bias ? bias[j] : 0);
      }
    }
  }
  return y;
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
