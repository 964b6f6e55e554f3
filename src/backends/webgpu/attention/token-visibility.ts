/**
 * The visibility variant hook of the attention skeletons. A token rule (core/token-rule.ts) hides
 * keys inside kept blocks, finer than a block mask can; the skeletons evaluate it per score in WGSL
 * through this hook, so they never name a method. A method with a token rule supplies its hook from
 * its GPU folder; methods/gpu-token-rules.ts maps each TokenRule kind to its hook.
 *
 *   spec key part   the spec's `tokenRule` field: the rule's kind, or 'none'
 *   Params fields   u32 fields the rule's WGSL reads; every skeleton's Params carries the fields of
 *                   every registered rule (zero when a call has another rule or none), so one layout
 *                   serves all of a skeleton's variants
 *   WGSL            one text per skeleton (their Params name the lengths differently)
 */
export interface TokenRuleHook<R, F extends string> {
  /** The u32 Params fields the WGSL reads, in order. */
  readonly fields: readonly F[];
  /** Their values for a call of Lq queries, right-aligned to Lk keys. */
  params(rule: R, queryLength: number, keyLength: number): Readonly<Record<F, number>>;
  /**
   * Portable skeleton (attention-program.ts): WGSL defining `fn tokenVisible(i: u32, j: u32) -> bool`
   * for query row i (key position P.queryOffset + i, of P.queryLength rows) and key j of a kept
   * block; causality is tested apart.
   */
  readonly portableWgsl: string;
  /**
   * Tensor-core kernel (tensor-core-attention.wgsl.ts): the statements that end its
   * `visible(i, j)` after the causal test, with `p` the query's key position and P.qLen the query
   * length; absent when the rule runs on the portable kernel only.
   */
  readonly tensorCoreWgsl?: string;
  /**
   * Tensor-core kernel, `ruleExpression` variant: the same test as one WGSL bool expression of i, j
   * and p with no early return (non-short-circuit `|` and `&`), causality again apart.
   */
  readonly tensorCoreExprWgsl?: string;
  /**
   * Tensor-core kernel, `ruleRowwise` variant: statements ending its `tileRowwise(j0, rowBase)` once the
   * tile is known to be causally visible to every row (p0, p1 as for tileFull): true only when, for
   * every row, the rule shows the whole tile or none of it, as `tensorCoreRowSeesWgsl` says.
   */
  readonly tensorCoreTileRowwiseWgsl?: string;
  /** Tensor-core kernel, `ruleRowwise`: whether row i sees the whole of a rowwise tile (a bool expression of i). */
  readonly tensorCoreRowSeesWgsl?: string;
  /**
   * Tensor-core kernel: statements ending its `tileFull(j0, rowBase)` once the tile is known to be
   * causally visible to every row: true only when the rule shows every key of [j0, j0 + BC) to
   * every row of [rowBase, rowBase + BR) (key positions p0..p1), so the per-score test is skipped.
   * Absent: every tile of a call with this rule is tested per score.
   */
  readonly tensorCoreTileWgsl?: string;
  /**
   * Tensor-core kernel: statements ending its `tileHidden(j0, rowBase)` once the tile is known to
   * be causally visible to some row: true only when the rule hides every key of [j0, j0 + BC) from
   * every row of [rowBase, rowBase + BR) (key positions p0..p1), so the tile is not visited.
   * Absent: only causally hidden tiles are skipped.
   */
  readonly tensorCoreTileHiddenWgsl?: string;
}

/** The variant of calls without a token rule: every key of a kept block. */
export const NO_TOKEN_RULE: TokenRuleHook<undefined, never> = {
  fields: [],
  params: () => ({}),
  portableWgsl: `// Hook tokenRule: every key of a kept block (causality is tested apart).
fn tokenVisible(i: u32, j: u32) -> bool { return true; }`,
  tensorCoreWgsl: '  return true;',
};
