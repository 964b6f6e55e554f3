/**
 * Token-level rules applied inside kept blocks. A block mask alone can only keep or drop whole
 * br×bc tiles; methods whose pattern is finer than a tile (tri-shape's sink + window) add a rule
 * that every kernel evaluates per (query, key) pair. Rules are plain data so GPU kernels can
 * implement them from their parameters; `tokenRuleVisible` is the reference evaluation.
 */
export interface TriShapeTokenRule {
  kind: 'trishape';
  /** Keys j < sinkTokens are visible to every query. */
  sinkTokens: number;
  /** Keys with p - localWindow < j <= p are visible to the query at key position p. */
  localWindow: number;
  /**
   * The last min(lastDenseQueries, Lq - 1) query rows see every (causal) key. The clamp keeps the
   * first row sparse (MInference / SCBench); decode (Lq = 1) and calls with Lk <= localWindow are
   * dense as a whole (tri-shape spec A).
   */
  lastDenseQueries: number;
}

export type TokenRule = TriShapeTokenRule;

/** One token rule per query head (undefined: that head has none), as a per-head method plans them. */
export type HeadTokenRules = readonly (TokenRule | undefined)[];

/** Whether two rules hide the same tokens: equal kind and fields (rules are flat plain data). */
export function sameTokenRule(a: TokenRule | undefined, b: TokenRule | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  const ka = Object.keys(a) as (keyof TokenRule)[];
  return ka.length === Object.keys(b).length && ka.every((key) => a[key] === b[key]);
}

/**
 * @param qi query index within the call (0..Lq-1)
 * @param kj key index (0..Lk-1)
 * @param queryLength Lq, @param queryOffset Lk - Lq (query i sits at key position queryOffset + i)
 */
export function tokenRuleVisible(rule: TokenRule, qi: number, kj: number, queryLength: number, queryOffset: number): boolean {
  switch (rule.kind) {
    case 'trishape': {
      if (queryLength === 1 || queryOffset + queryLength <= rule.localWindow) return true;
      if (qi >= queryLength - Math.min(rule.lastDenseQueries, queryLength - 1)) return true;
      if (kj < rule.sinkTokens) return true;
      const p = queryOffset + qi;
      return kj > p - rule.localWindow && kj <= p;
    }
  }
}
