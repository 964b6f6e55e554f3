/// <reference types="@webgpu/types" />
/**
 * Per-head token rules on the GPU: a kernel takes one rule from its Params, so a call whose heads
 * have different rules (per-head tri-shape windows) is dispatched as consecutive runs of heads with
 * equal rules. Each run is a sub-call over views offset to its first head: Q/O by h0 heads, K/V by
 * its first KV head, its own rows of the CSR block list. This file is that split, in one place, for
 * every kernel the dispatcher picks (portable skeleton, tensor cores).
 *
 * GQA: a run that starts or ends inside a group of `groupSize` query heads cannot keep the group
 * mapping with a K/V offset alone, so runs are cut at group edges; pieces of whole groups merge
 * again, a piece inside one group reads one KV head (its group size is the piece's head count).
 *
 * Block rows of (b, h0..h1) are contiguous only within one batch entry, so the split is per
 * (batch entry, run); a piece not starting at row 0 gets a copy of its rowPtr segment (rowPtr values
 * index the whole colIdx, which is bound as is) and, for paged KV, of its batch entry's block-table row.
 */
import { InvalidArgumentError, UnsupportedError } from '../../../core/errors.js';
import { type HeadTokenRules, sameTokenRule, type TokenRule } from '../../../core/token-rule.js';
import type { GpuTensorView } from '../runtime/buffers.js';
import { BufferUsage } from '../runtime/webgpu-device.js';
import type { AttentionDispatchOptions, AttentionViews } from './attention-views.js';

/** Query heads [h0, h1) with one rule, reading KV heads [kv0, kv0 + kvHeads). */
export interface HeadPiece {
  h0: number;
  h1: number;
  kv0: number;
  kvHeads: number;
  rule?: TokenRule;
}

/** Runs of equal rules, cut at GQA group edges where a run does not cover whole groups. */
export function headRulePieces(rules: HeadTokenRules, heads: number, kvHeads: number): HeadPiece[] {
  if (rules.length !== heads) throw new InvalidArgumentError('headTokenRules.length', rules.length, `${heads} (q.heads)`);
  const g = heads / kvHeads;
  const pieces: HeadPiece[] = [];
  let h0 = 0;
  for (let h = 1; h <= heads; h++) {
    if (h < heads && sameTokenRule(rules[h], rules[h0]) && h % g !== 0) continue;
    const last = pieces[pieces.length - 1];
    const whole = h0 % g === 0 && h % g === 0;
    const lastWhole = last && last.h0 % g === 0 && last.h1 % g === 0;
    // A whole-group piece joins the previous one when that too is whole groups with the same rule.
    if (whole && lastWhole && last.h1 === h0 && sameTokenRule(last.rule, rules[h0])) {
      last.h1 = h;
      last.kvHeads = (h - last.h0) / g;
    } else {
      pieces.push({ h0, h1: h, kv0: Math.floor(h0 / g), kvHeads: whole ? (h - h0) / g : 1, rule: rules[h0] });
    }
    h0 = h;
  }
  return pieces;
}

/** Whether the call needs the split: per-head rules that are not all one rule. */
export function needsHeadSplit(opts: AttentionDispatchOptions): opts is AttentionDispatchOptions & { headTokenRules: HeadTokenRules } {
  const rules = opts.headTokenRules;
  return rules !== undefined && !rules.every((r) => sameTokenRule(r, rules[0]));
}

/**
 * The options of a call with one rule for every head (equal headTokenRules folded into tokenRule).
 * Differing rules throw: one dispatch (one Params) holds one rule, so only encodeAttention, which
 * splits them, may take them.
 */
export function oneRuleOptions(opts: AttentionDispatchOptions): AttentionDispatchOptions {
  if (!opts.headTokenRules) return opts;
  if (opts.tokenRule) throw new InvalidArgumentError('tokenRule', opts.tokenRule, 'absent when headTokenRules is given (one or the other)');
  if (needsHeadSplit(opts)) throw new UnsupportedError('per-head token rules that differ go through encodeAttention, which dispatches runs of heads with one rule each');
  const { headTokenRules, ...rest } = opts;
  return { ...rest, tokenRule: headTokenRules[0] };
}

export interface SubCall {
  views: AttentionViews;
  opts: AttentionDispatchOptions;
}

/**
 * The sub-calls of a split call, in order; `made` receives every buffer made for them (segment
 * copies encoded into `encoder`; destroy them after the work).
 */
export function splitByHeadRules(
  device: GPUDevice, encoder: GPUCommandEncoder, views: AttentionViews, opts: AttentionDispatchOptions & { headTokenRules: HeadTokenRules }, made: (b: GPUBuffer) => void,
): SubCall[] {
  const { q, k, v, o } = views;
  if (opts.tokenRule) throw new InvalidArgumentError('tokenRule', opts.tokenRule, 'absent when headTokenRules is given (one or the other)');
  const pieces = headRulePieces(opts.headTokenRules, q.heads, k.heads);
  const { headTokenRules: _rules, ...base } = opts;
  const calls: SubCall[] = [];
  // Paged K/V: the cache's batch axis is pages; the batch entry is chosen by its block-table row.
  const paged = opts.paged !== undefined;
  for (let b = 0; b < q.batch; b++) {
    const blockTable = opts.paged && segment(device, encoder, opts.paged.blockTable, b * opts.paged.tableStride, opts.paged.tableStride, 'paged.blockTable', made);
    for (const p of pieces) {
      const n = p.h1 - p.h0;
      const at = (t: GpuTensorView, h: number, heads: number, batchOffset = true): GpuTensorView => ({
        ...t, heads, ...(batchOffset ? { batch: 1 } : {}), offset: t.offset + (batchOffset ? b * t.strideB : 0) + h * t.strideH,
      });
      const sub: AttentionDispatchOptions = { ...base, tokenRule: p.rule };
      if (opts.blocks.kind === 'csr') {
        const nQB = Math.ceil(q.length / opts.blocks.blockRows);
        const rowPtr = segment(device, encoder, opts.blocks.rowPtr, (b * q.heads + p.h0) * nQB, n * nQB + 1, 'blocks.rowPtr', made);
        sub.blocks = { ...opts.blocks, rowPtr };
      }
      if (opts.paged && blockTable) sub.paged = { ...opts.paged, blockTable };
      calls.push({
        views: { q: at(q, p.h0, n), o: at(o, p.h0, n), k: at(k, p.kv0, p.kvHeads, !paged), v: at(v, p.kv0, p.kvHeads, !paged) },
        opts: sub,
      });
    }
  }
  return calls;
}

/** Elements [start, start + count) of an i32 buffer: the buffer itself from 0, else a copy. */
function segment(device: GPUDevice, encoder: GPUCommandEncoder, src: GPUBuffer, start: number, count: number, name: string, made: (b: GPUBuffer) => void): GPUBuffer {
  if (start === 0) return src;
  if ((src.usage & BufferUsage.COPY_SRC) === 0) {
    throw new InvalidArgumentError(`${name} usage`, src.usage, 'to include COPY_SRC: per-head token rules dispatch runs of heads, each with a copy of its rows');
  }
  const dst = device.createBuffer({ label: `${src.label}.heads`, size: count * 4, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
  made(dst);
  encoder.copyBufferToBuffer(src, start * 4, dst, 0, count * 4);
  return dst;
}
