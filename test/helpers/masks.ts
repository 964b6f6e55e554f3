/** Exact equality of block masks (the GPU plans must reproduce the CPU plans block for block). */
import assert from 'node:assert/strict';
import type { BlockMask } from '../../src/core/block-mask.js';

/** Same dims, CSR lists and token rule of every head; on failure names the first differing (b, h, query block). */
export function assertSameMask(got: BlockMask, want: BlockMask, label: string): void {
  assert.deepEqual(got.dims, want.dims, `${label}: dims`);
  for (let r = 0; r < want.rowPtr.length - 1; r++) {
    const g = Array.from(got.colIdx.subarray(got.rowPtr[r], got.rowPtr[r + 1]));
    const w = Array.from(want.colIdx.subarray(want.rowPtr[r], want.rowPtr[r + 1]));
    const [b, h, qb] = [Math.floor(r / (want.heads * want.numQueryBlocks)), Math.floor(r / want.numQueryBlocks) % want.heads, r % want.numQueryBlocks];
    assert.deepEqual(g, w, `${label}: kept key blocks of (b, h, query block) = (${b}, ${h}, ${qb})`);
  }
  assert.deepEqual(got.rowPtr, want.rowPtr, `${label}: rowPtr`);
  for (let h = 0; h < want.heads; h++) assert.deepEqual(got.tokenRuleFor(h), want.tokenRuleFor(h), `${label}: token rule of head ${h}`);
}
