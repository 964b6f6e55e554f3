import type { AttentionBackend } from '../backend.js';
import { flashAttention } from './flash-attention.js';
import { cpuPagedAttention } from './paged.js';

/** The CPU reference backend: the flash loop over kept blocks, in f32/f64; no method hooks (every method plans on the CPU). */
export const cpuBackend: AttentionBackend = {
  name: 'cpu',
  async blockSparseAttention(q, k, v, mask, opts) {
    return flashAttention(q, k, v, { ...opts, mask });
  },
  pagedAttention: cpuPagedAttention,
};

export { flashAttention, type FlashAttentionOptions } from './flash-attention.js';
export { naiveAttention, naiveBlockSparseAttention, type NaiveAttentionOptions } from './naive-attention.js';
export { cpuPagedAttention, naivePagedAttention } from './paged.js';
