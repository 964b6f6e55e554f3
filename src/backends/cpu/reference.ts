/** `sparse-attention/cpu`: the CPU reference kernels, the oracle every fast kernel is tested against. */
export { cpuBackend, flashAttention, naiveAttention, naiveBlockSparseAttention, cpuPagedAttention, naivePagedAttention, type FlashAttentionOptions, type NaiveAttentionOptions } from './index.js';
export { gatherPagedKv } from './paged-kv.js';
export { flashSkipAttention, type FlashSkipAttentionOptions, type FlashSkipAttentionResult } from '../../methods/flash-skip-softmax/flash-skip-cpu.js';
