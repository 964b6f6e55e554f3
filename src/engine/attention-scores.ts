/**
 * The per-token attention scores cache eviction ranks tokens by (OpenVINO's PagedAttention "scores"
 * output): for one sequence's chunk in one layer,
 *
 *   score[j] = Σ_heads Σ_{i in the chunk's last `numQueries` queries} softmax_j(q_i · k_j · scale)
 *
 * over the gathered keys j (the chunk's visible cache slots, in slot order), with the same visibility
 * as the attention itself: causal with right-aligned queries, and the chunk's block mask if it has one.
 * Computed on the CPU beside the backend's attention call (OpenVINO's kernel emits it fused).
 */
import { InvalidArgumentError } from '../core/errors.js';
import type { PagedAttentionInput } from '../backends/backend.js';

export function pagedAttentionScores(input: PagedAttentionInput, numQueries: number): Float64Array {
  const { cache, layer, blockTable, q, contextLength, visibleBlocks, mask } = input;
  if (!Number.isInteger(numQueries) || numQueries < 1 || numQueries > q.length) {
    throw new InvalidArgumentError('scored queries', numQueries, `an integer in [1, ${q.length}] (the chunk's queries)`);
  }
  const { k } = cache.gatherBlocks(layer, blockTable, visibleBlocks, contextLength);
  const n = k.length;
  const D = q.headDim;
  const group = q.heads / k.heads;
  const scale = input.scale ?? 1 / Math.sqrt(D);
  const kf = k.toFloat32Array();
  const out = new Float64Array(n);
  const logits = new Float64Array(n);
  for (let h = 0; h < q.heads; h++) {
    const kh = Math.floor(h / group);
    for (let i = q.length - numQueries; i < q.length; i++) {
      const qi = q.row(0, h, i);
      // Query i sits at gathered index n − q.length + i; it sees keys up to itself.
      const last = n - q.length + i;
      let max = -Infinity;
      for (let j = 0; j <= last; j++) {
        if (mask && !mask.visible(0, h, i, j)) {
          logits[j] = -Infinity;
          continue;
        }
        const o = k.offset(0, kh, j);
        let s = 0;
        for (let d = 0; d < D; d++) s += qi[d] * kf[o + d];
        logits[j] = s * scale;
        if (logits[j] > max) max = logits[j];
      }
      if (max === -Infinity) continue;
      let sum = 0;
      for (let j = 0; j <= last; j++) sum += logits[j] === -Infinity ? 0 : Math.exp(logits[j] - max);
      for (let j = 0; j <= last; j++) if (logits[j] !== -Infinity) out[j] += Math.exp(logits[j] - max) / sum;
    }
  }
  return out;
}
