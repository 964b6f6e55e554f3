/**
 * Block-sparse attention patterns: the one representation every method produces and every kernel
 * reads.
 *
 * Query blocks tile the call's queries [0, Lq) in blocks of `blockRows` (br); key blocks tile the
 * keys [0, Lk) in blocks of `blockCols` (bc); the last block of either may be partial. For each
 * (batch, head, query block) the kept key blocks are listed in ascending order, CSR-style:
 *   rowPtr: Int32Array [B·H·nQB + 1], colIdx: Int32Array [kept]
 * A token (i, j) is visible iff its block is kept, the optional token rule allows it, and (when
 * causal) j <= queryOffset + i. The token rule is one for every head, or one per head (per-head
 * tri-shape windows): `tokenRuleFor(h)` is the rule of head h either way. Statistics count blocks over the causally valid set: a block is
 * valid when at least one of its tokens passes the causal test.
 */
import { InvalidArgumentError, requireInteger, UnsupportedError } from './errors.js';
import { type HeadTokenRules, sameTokenRule, type TokenRule, tokenRuleVisible } from './token-rule.js';

export interface BlockMaskDims {
  batch: number;
  heads: number;
  queryLength: number;
  keyLength: number;
  blockRows: number;
  blockCols: number;
  causal: boolean;
}

export class BlockMask {
  readonly batch: number;
  readonly heads: number;
  readonly queryLength: number;
  readonly keyLength: number;
  readonly blockRows: number;
  readonly blockCols: number;
  readonly causal: boolean;
  readonly numQueryBlocks: number;
  readonly numKeyBlocks: number;
  /** Lk - Lq: query i sits at key position queryOffset + i. */
  readonly queryOffset: number;
  /** One rule per head, present only when the heads' rules differ (equal ones collapse to one rule). */
  readonly headTokenRules?: HeadTokenRules;
  private readonly sharedRule?: TokenRule;

  /** @param tokenRule one rule for every head, or an array of one rule (or undefined) per head */
  constructor(
    dims: BlockMaskDims,
    readonly rowPtr: Int32Array,
    readonly colIdx: Int32Array,
    tokenRule?: TokenRule | HeadTokenRules,
  ) {
    this.batch = requireInteger('batch', dims.batch, 1);
    this.heads = requireInteger('heads', dims.heads, 1);
    this.queryLength = requireInteger('queryLength', dims.queryLength, 1);
    this.keyLength = requireInteger('keyLength', dims.keyLength, 1);
    this.blockRows = requireInteger('blockRows (br)', dims.blockRows, 1);
    this.blockCols = requireInteger('blockCols (bc)', dims.blockCols, 1);
    this.causal = dims.causal;
    this.numQueryBlocks = Math.ceil(this.queryLength / this.blockRows);
    this.numKeyBlocks = Math.ceil(this.keyLength / this.blockCols);
    this.queryOffset = this.keyLength - this.queryLength;
    const rows = this.batch * this.heads * this.numQueryBlocks;
    if (rowPtr.length !== rows + 1) throw new InvalidArgumentError('rowPtr.length', rowPtr.length, `${rows + 1} (B·H·nQB + 1)`);
    if (rowPtr[0] !== 0 || rowPtr[rows] !== colIdx.length) {
      throw new InvalidArgumentError('rowPtr', [rowPtr[0], rowPtr[rows]], `to start at 0 and end at colIdx.length (${colIdx.length})`);
    }
    for (let r = 0; r < rows; r++) {
      // A decreasing rowPtr would let rows overlap and count one block twice.
      if (rowPtr[r + 1] < rowPtr[r]) throw new InvalidArgumentError(`rowPtr[${r + 1}]`, rowPtr[r + 1], `>= rowPtr[${r}] (${rowPtr[r]}): row offsets must not decrease`);
      for (let i = rowPtr[r]; i < rowPtr[r + 1]; i++) {
        const c = colIdx[i];
        if (c < 0 || c >= this.numKeyBlocks || (i > rowPtr[r] && c <= colIdx[i - 1])) {
          throw new InvalidArgumentError(`colIdx[${i}]`, c, `strictly ascending key-block indices in [0, ${this.numKeyBlocks}) within each row`);
        }
      }
    }
    if (isHeadRules(tokenRule)) {
      const rules = checkHeadRules(tokenRule, this.heads);
      if (rules.every((r) => sameTokenRule(r, rules[0]))) this.sharedRule = rules[0];
      else this.headTokenRules = Object.freeze([...rules]);
    } else this.sharedRule = tokenRule;
  }

  /**
   * The one token rule of every head. A mask whose heads have different rules throws here, so a
   * consumer that has not learnt `tokenRuleFor(h)` refuses instead of applying one head's rule to all.
   */
  get tokenRule(): TokenRule | undefined {
    if (this.headTokenRules) {
      throw new UnsupportedError(`this block mask has one token rule per head (${this.heads} heads, rules differ); read tokenRuleFor(head)`);
    }
    return this.sharedRule;
  }

  /** The token rule of head h (each head's own when they differ). */
  tokenRuleFor(h: number): TokenRule | undefined {
    return this.headTokenRules ? this.headTokenRules[h] : this.sharedRule;
  }

  /** Whether any head has a token rule. */
  get hasTokenRule(): boolean {
    return this.headTokenRules ? this.headTokenRules.some((r) => r !== undefined) : this.sharedRule !== undefined;
  }

  /** The rule argument that rebuilds this mask's rules: the shared rule, or the per-head array. */
  get tokenRules(): TokenRule | HeadTokenRules | undefined {
    return this.headTokenRules ?? this.sharedRule;
  }

  get dims(): BlockMaskDims {
    const { batch, heads, queryLength, keyLength, blockRows, blockCols, causal } = this;
    return { batch, heads, queryLength, keyLength, blockRows, blockCols, causal };
  }

  /** Index of the (b, h, qb) row in rowPtr. */
  rowIndex(b: number, h: number, qb: number): number {
    return (b * this.heads + h) * this.numQueryBlocks + qb;
  }

  /** Kept key blocks of one query block, ascending (a view). */
  keptBlocks(b: number, h: number, qb: number): Int32Array {
    const r = this.rowIndex(b, h, qb);
    return this.colIdx.subarray(this.rowPtr[r], this.rowPtr[r + 1]);
  }

  isKept(b: number, h: number, qb: number, kb: number): boolean {
    return this.keptBlocks(b, h, qb).includes(kb);
  }

  /** Whether block (qb, kb) holds at least one causally visible token. */
  isCausallyValid(qb: number, kb: number): boolean {
    return blockCausallyValid(this, qb, kb);
  }

  /** Token visibility inside the call (query index i, key index j). */
  visible(b: number, h: number, i: number, j: number): boolean {
    if (this.causal && j > this.queryOffset + i) return false;
    const rule = this.tokenRuleFor(h);
    if (rule && !tokenRuleVisible(rule, i, j, this.queryLength, this.queryOffset)) return false;
    return this.isKept(b, h, Math.floor(i / this.blockRows), Math.floor(j / this.blockCols));
  }

  /** Dense boolean view [B, H, nQB, nKB] (1 = kept). */
  toDense(): Uint8Array {
    const nKB = this.numKeyBlocks;
    const out = new Uint8Array(this.batch * this.heads * this.numQueryBlocks * nKB);
    for (let r = 0; r < this.rowPtr.length - 1; r++) {
      for (let i = this.rowPtr[r]; i < this.rowPtr[r + 1]; i++) out[r * nKB + this.colIdx[i]] = 1;
    }
    return out;
  }

  /** Token mask [Lq, Lk] of one (batch, head), 1 = visible. */
  expand(b: number, h: number): Uint8Array {
    const Lq = this.queryLength;
    const Lk = this.keyLength;
    const out = new Uint8Array(Lq * Lk);
    const rule = this.tokenRuleFor(h);
    for (let qb = 0; qb < this.numQueryBlocks; qb++) {
      const i1 = Math.min((qb + 1) * this.blockRows, Lq);
      for (const kb of this.keptBlocks(b, h, qb)) {
        const j1 = Math.min((kb + 1) * this.blockCols, Lk);
        for (let i = qb * this.blockRows; i < i1; i++) {
          for (let j = kb * this.blockCols; j < j1; j++) {
            if (this.causal && j > this.queryOffset + i) continue;
            if (rule && !tokenRuleVisible(rule, i, j, Lq, this.queryOffset)) continue;
            out[i * Lk + j] = 1;
          }
        }
      }
    }
    return out;
  }

  /** Blocks that count: all of them, or the causally valid ones (the lower triangle) when causal. */
  get validBlocks(): number {
    let perHead = 0;
    for (let qb = 0; qb < this.numQueryBlocks; qb++)
      for (let kb = 0; kb < this.numKeyBlocks; kb++) if (this.isCausallyValid(qb, kb)) perHead++;
    return perHead * this.batch * this.heads;
  }

  /** Kept blocks that are causally valid (a kept block above the diagonal computes nothing). */
  get keptValidBlocks(): number {
    let n = 0;
    for (let r = 0; r < this.rowPtr.length - 1; r++) {
      const qb = r % this.numQueryBlocks;
      for (let i = this.rowPtr[r]; i < this.rowPtr[r + 1]; i++) if (this.isCausallyValid(qb, this.colIdx[i])) n++;
    }
    return n;
  }

  /** Fraction of valid blocks kept. */
  get density(): number {
    const valid = this.validBlocks;
    return valid === 0 ? 0 : this.keptValidBlocks / valid;
  }

  get sparsity(): number {
    return 1 - this.density;
  }

  /** From a dense [B, H, nQB, nKB] boolean view. */
  static fromDense(dims: BlockMaskDims, dense: ArrayLike<number | boolean>, tokenRule?: TokenRule | HeadTokenRules): BlockMask {
    checkDims(dims);
    const nQB = Math.ceil(dims.queryLength / dims.blockRows);
    const nKB = Math.ceil(dims.keyLength / dims.blockCols);
    const rows = dims.batch * dims.heads * nQB;
    if (dense.length !== rows * nKB) throw new InvalidArgumentError('dense.length', dense.length, `${rows * nKB} (B·H·nQB·nKB)`);
    const rowPtr = new Int32Array(rows + 1);
    const cols: number[] = [];
    for (let r = 0; r < rows; r++) {
      for (let kb = 0; kb < nKB; kb++) if (dense[r * nKB + kb]) cols.push(kb);
      rowPtr[r + 1] = cols.length;
    }
    return new BlockMask(dims, rowPtr, Int32Array.from(cols), tokenRule);
  }

  /** From a function deciding each (b, h, qb, kb). */
  static fromPredicate(dims: BlockMaskDims, keep: (b: number, h: number, qb: number, kb: number) => boolean, tokenRule?: TokenRule | HeadTokenRules): BlockMask {
    checkDims(dims);
    const nQB = Math.ceil(dims.queryLength / dims.blockRows);
    const nKB = Math.ceil(dims.keyLength / dims.blockCols);
    const rowPtr = new Int32Array(dims.batch * dims.heads * nQB + 1);
    const cols: number[] = [];
    let r = 0;
    for (let b = 0; b < dims.batch; b++)
      for (let h = 0; h < dims.heads; h++)
        for (let qb = 0; qb < nQB; qb++) {
          for (let kb = 0; kb < nKB; kb++) if (keep(b, h, qb, kb)) cols.push(kb);
          rowPtr[++r] = cols.length;
        }
    return new BlockMask(dims, rowPtr, Int32Array.from(cols), tokenRule);
  }

  /** Every causally valid block kept: block-sparse attention with this mask is dense attention. */
  static full(dims: BlockMaskDims): BlockMask {
    return BlockMask.fromPredicate(dims, (_b, _h, qb, kb) => blockCausallyValid(dims, qb, kb));
  }
}

/** Whether block (qb, kb) holds at least one token with j <= (Lk - Lq) + i; always true when not causal. */
export function blockCausallyValid(dims: BlockMaskDims, qb: number, kb: number): boolean {
  if (!dims.causal) return true;
  const lastQuery = Math.min((qb + 1) * dims.blockRows, dims.queryLength) - 1;
  return kb * dims.blockCols <= dims.keyLength - dims.queryLength + lastQuery;
}

function isHeadRules(rule: TokenRule | HeadTokenRules | undefined): rule is HeadTokenRules {
  return Array.isArray(rule);
}

/** One entry per head, and one kind of rule across heads (a method's rule; kernels key on the kind). */
function checkHeadRules(rules: HeadTokenRules, heads: number): HeadTokenRules {
  if (rules.length !== heads) throw new InvalidArgumentError('tokenRule (per head).length', rules.length, `${heads} (one rule or undefined per head)`);
  const kind = rules.find((r) => r !== undefined)?.kind;
  rules.forEach((r, h) => {
    if (r !== undefined && r.kind !== kind) throw new InvalidArgumentError(`tokenRule[${h}].kind`, r.kind, `"${kind}", the kind of the other heads' rules`);
  });
  return rules;
}

/** The constructor's checks, run before a factory sizes arrays from the dims (else a bad br is a RangeError). */
function checkDims(dims: BlockMaskDims): void {
  requireInteger('batch', dims.batch, 1);
  requireInteger('heads', dims.heads, 1);
  requireInteger('queryLength', dims.queryLength, 1);
  requireInteger('keyLength', dims.keyLength, 1);
  requireInteger('blockRows (br)', dims.blockRows, 1);
  requireInteger('blockCols (bc)', dims.blockCols, 1);
}
