/**
 * Tri-shape's token rule (core/token-rule.ts) as the attention skeletons' visibility hook: inside
 * kept blocks a query sees the sink tokens, its local window, and every causal key when it is one
 * of the last dense rows.
 */
import type { TriShapeTokenRule } from '../../../../core/token-rule.js';
import type { TokenRuleHook } from '../../attention/token-visibility.js';

type TriShapeParam = 'sinkTokens' | 'localWindow' | 'lastDenseQueries';

/**
 * The WGSL rule makes rows i >= Lq - lastDenseQueries dense; tokenRuleVisible clamps the count to
 * Lq - 1 and makes decode and calls with Lk <= localWindow wholly dense: pass what gives the same.
 */
export function trishapeDenseRows(rule: TriShapeTokenRule, Lq: number, Lk: number): number {
  if (Lq === 1 || Lk <= rule.localWindow) return Lq;
  return Math.min(rule.lastDenseQueries, Lq - 1);
}

export const TRISHAPE_VISIBILITY: TokenRuleHook<TriShapeTokenRule, TriShapeParam> = {
  fields: ['sinkTokens', 'localWindow', 'lastDenseQueries'],
  params: (rule, Lq, Lk) => ({ sinkTokens: rule.sinkTokens, localWindow: rule.localWindow, lastDenseQueries: trishapeDenseRows(rule, Lq, Lk) }),
  portableWgsl: `// Hook tokenRule: tri-shape (core/token-rule.ts) inside kept blocks; causality is tested apart.
fn tokenVisible(i: u32, j: u32) -> bool {
  if (i + P.lastDenseQueries >= P.queryLength) { return true; }  // i >= Lq - lastDenseQueries
  if (j < P.sinkTokens) { return true; }
  let p = P.queryOffset + i;
  return j <= p && j + P.localWindow > p;                           // p - window < j <= p
}`,
  tensorCoreWgsl: `  if (i + P.lastDenseQueries >= P.qLen) { return true; }
  if (j < P.sinkTokens) { return true; }
  return j <= p && j + P.localWindow > p;`,
  tensorCoreExprWgsl: '(i + P.lastDenseQueries >= P.qLen) | (j < P.sinkTokens) | ((j <= p) & (j + P.localWindow > p))',
  // Rowwise tile: no sink key, and the tile's last key has left the first row's window (so every
  // row's): a dense row sees all of it, any other row none.
  tensorCoreTileRowwiseWgsl: `  if (j0 < P.sinkTokens) { return false; }
  return j0 + BC - 1u + P.localWindow <= p0;`,
  tensorCoreRowSeesWgsl: 'i + P.lastDenseQueries >= P.qLen',
  // Whole tile: every row a dense row, every key a sink, or the tile's first key still inside the
  // last row's window (the band's interior, most of the kept tiles at long lengths).
  tensorCoreTileWgsl: `  if (rowBase + P.lastDenseQueries >= P.qLen) { return true; }
  if (j0 + BC <= P.sinkTokens) { return true; }
  return j0 + P.localWindow > p1;`,
  // Hidden tile: no row of the workgroup is a dense row, no key is a sink, and the tile's last key
  // has left the first row's window (the edge of the band: up to 3 of a 128-key block's 4 tiles).
  tensorCoreTileHiddenWgsl: `  if (rowBase + BR - 1u + P.lastDenseQueries >= P.qLen) { return false; }
  if (j0 < P.sinkTokens) { return false; }
  return j0 + BC - 1u + P.localWindow <= p0;`,
};
