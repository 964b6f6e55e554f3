/**
 * Sparsity statistics: one record per attention call, and an aggregator keyed by module name
 * (e.g. `model.layers.3.self_attn`) that a model runner fills and the CLI prints.
 */
import type { BlockMask } from './block-mask.js';

export type Phase = 'prefill' | 'decode';

export interface SparsityStats {
  method: string;
  phase: Phase;
  /** Blocks that count (the causal lower triangle when causal), over batch and heads. */
  totalBlocks: number;
  keptBlocks: number;
  /** 1 - kept / total. */
  sparsity: number;
  /** Method-specific figures (correction factor, group-consensus sparsity, estimation time...). */
  extra?: Record<string, number>;
}

/** Decode when a call has one query row, prefill otherwise (the ModelOpt rule). */
export function phaseOf(queryLength: number): Phase {
  return queryLength === 1 ? 'decode' : 'prefill';
}

export function statsFromMask(method: string, mask: BlockMask, extra?: Record<string, number>): SparsityStats {
  const totalBlocks = mask.validBlocks;
  const keptBlocks = mask.keptValidBlocks;
  return {
    method,
    phase: phaseOf(mask.queryLength),
    totalBlocks,
    keptBlocks,
    sparsity: totalBlocks === 0 ? 0 : 1 - keptBlocks / totalBlocks,
    ...(extra ? { extra } : {}),
  };
}

export interface ModuleSummary {
  module: string;
  method: string;
  calls: number;
  prefillCalls: number;
  decodeCalls: number;
  totalBlocks: number;
  keptBlocks: number;
  sparsity: number;
}

export class StatsAggregator {
  private readonly byModule = new Map<string, SparsityStats[]>();

  record(module: string, stats: SparsityStats): void {
    let list = this.byModule.get(module);
    if (!list) this.byModule.set(module, (list = []));
    list.push(stats);
  }

  calls(module: string): readonly SparsityStats[] {
    return this.byModule.get(module) ?? [];
  }

  get modules(): string[] {
    return [...this.byModule.keys()];
  }

  clear(): void {
    this.byModule.clear();
  }

  /** Block-weighted sparsity per module (and phase, when given). */
  summary(phase?: Phase): ModuleSummary[] {
    const out: ModuleSummary[] = [];
    for (const [module, all] of this.byModule) {
      const list = phase ? all.filter((s) => s.phase === phase) : all;
      if (list.length === 0) continue;
      const totalBlocks = list.reduce((a, s) => a + s.totalBlocks, 0);
      const keptBlocks = list.reduce((a, s) => a + s.keptBlocks, 0);
      out.push({
        module,
        method: [...new Set(list.map((s) => s.method))].join(','),
        calls: list.length,
        prefillCalls: list.filter((s) => s.phase === 'prefill').length,
        decodeCalls: list.filter((s) => s.phase === 'decode').length,
        totalBlocks,
        keptBlocks,
        sparsity: totalBlocks === 0 ? 0 : 1 - keptBlocks / totalBlocks,
      });
    }
    return out;
  }

  /** A plain-text table, one row per module plus a total. */
  table(phase?: Phase): string {
    const rows = this.summary(phase);
    const total = rows.reduce((a, r) => ({ t: a.t + r.totalBlocks, k: a.k + r.keptBlocks, c: a.c + r.calls }), { t: 0, k: 0, c: 0 });
    const lines = rows.map((r) => [r.module, r.method, String(r.calls), String(r.keptBlocks), String(r.totalBlocks), r.sparsity.toFixed(4)]);
    lines.push(['total', '', String(total.c), String(total.k), String(total.t), (total.t === 0 ? 0 : 1 - total.k / total.t).toFixed(4)]);
    return formatTable(['module', 'method', 'calls', 'kept', 'total', 'sparsity'], lines);
  }
}

/** Left-aligned text table with a header rule; shared by the CLI and the benchmarks. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const fmt = (r: string[]) => r.map((v, c) => (v ?? '').padEnd(widths[c])).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}
