/**
 * What `sparse-attn eval` prints and draws from a report: the row table (with 95% intervals), the
 * sparsity/Δloss Pareto front per (length, method) as a table, and as an SVG plot (one panel per
 * length, x = measured block sparsity, y = Δloss in % of the dense loss; every row a point, filled
 * for uniform settings and hollow for per-head or other configs, each method's front a line).
 */
import { formatTable } from '../core/stats.js';
import type { AccuracyReport, AccuracyRow } from './accuracy.js';
import { type Interval, paretoFront } from './eval-stats.js';

const signed = (x: number, d = 3) => (x >= 0 ? ' ' : '') + x.toFixed(d);
const interval = (i: Interval, d: number) => (Number.isFinite(i.lo) && Number.isFinite(i.hi) ? `[${i.lo.toFixed(d)}, ${i.hi.toFixed(d)}]` : '-');

/** The printed table: one row per (length, variant). */
export function formatAccuracyTable(report: AccuracyReport): string {
  const rows = report.rows.map((r) => [
    String(r.length), r.method, r.label, settingsText(r), r.sparsity.toFixed(3), signed(r.lossDelta, 4),
    r.agreement.toFixed(2), signed(r.logProbDelta, 3), r.needleAccuracy.toFixed(2), signed(r.lossDeltaPct, 2),
    interval(r.ci.lossDelta, 4), interval(r.ci.agreement, 2), String(r.prompts), r.seconds.toFixed(0),
  ]);
  return formatTable(['L', 'method', 'setting', 'settings', 'sparsity', 'Δloss', 'agree', 'ΔlogP(ans)', 'needle', 'Δloss %', 'Δloss 95% CI', 'agree 95% CI', 'n', 's'], rows);
}

function settingsText(r: AccuracyRow): string {
  if (r.family === 'per-head' || r.family === 'per-head-out') return '(per head, see config)';
  const text = JSON.stringify(r.settings, (_k, v) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(3)) : v));
  return text === '{}' ? '(defaults)' : text.replace(/"/g, '');
}

/** The non-dominated rows per (length, method), in report order of lengths and methods, by sparsity. */
export function paretoRows(report: AccuracyReport): AccuracyRow[] {
  const groups = new Map<string, AccuracyRow[]>();
  for (const r of report.rows) {
    if (r.method === 'dense') continue;
    const key = `${r.length}\u0000${r.method}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].flatMap((g) => paretoFront(g));
}

export function formatParetoTable(report: AccuracyReport): string {
  const rows = paretoRows(report).map((r) => [
    String(r.length), r.method, r.label, r.sparsity.toFixed(3), signed(r.lossDelta, 4), signed(r.lossDeltaPct, 2), interval(r.ci.lossDelta, 4), r.agreement.toFixed(2),
  ]);
  return formatTable(['L', 'method', 'setting', 'sparsity', 'Δloss', 'Δloss %', 'Δloss 95% CI', 'agree'], rows);
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The Pareto plot as an SVG document. */
export function paretoSvg(report: AccuracyReport): string {
  const lengths = [...new Set(report.rows.map((r) => r.length))];
  const methods = [...new Set(report.rows.filter((r) => r.method !== 'dense').map((r) => r.method))];
  const color = (m: string) => COLORS[methods.indexOf(m) % COLORS.length];
  const W = 640, PH = 360, M = { l: 70, r: 170, t: 40, b: 50 };
  const pw = W - M.l - M.r, ph = PH - M.t - M.b;
  const front = new Set(paretoRows(report));
  const parts: string[] = [];
  lengths.forEach((L, li) => {
    const rows = report.rows.filter((r) => r.length === L && r.method !== 'dense' && Number.isFinite(r.lossDeltaPct));
    const ys = rows.map((r) => r.lossDeltaPct);
    let lo = Math.min(0, ...ys), hi = Math.max(0, ...ys);
    if (hi - lo < 1e-9) hi = lo + 1;
    const pad = 0.05 * (hi - lo);
    lo -= pad; hi += pad;
    const x = (s: number) => M.l + s * pw;
    const y = (v: number) => M.t + li * PH + (1 - (v - lo) / (hi - lo)) * ph;
    const top = M.t + li * PH;
    parts.push(`<text x="${M.l}" y="${top - 12}" font-size="14">L = ${L}: Δloss (% of dense loss) vs measured block sparsity</text>`);
    parts.push(`<rect x="${M.l}" y="${top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
    for (let t = 0; t <= 10; t += 2) {
      const s = t / 10;
      parts.push(`<line x1="${x(s)}" y1="${top + ph}" x2="${x(s)}" y2="${top + ph + 5}" stroke="#333"/><text x="${x(s)}" y="${top + ph + 18}" font-size="11" text-anchor="middle">${s.toFixed(1)}</text>`);
    }
    for (let t = 0; t <= 4; t++) {
      const v = lo + ((hi - lo) * t) / 4;
      parts.push(`<line x1="${M.l - 5}" y1="${y(v)}" x2="${M.l}" y2="${y(v)}" stroke="#333"/><text x="${M.l - 8}" y="${y(v) + 4}" font-size="11" text-anchor="end">${v.toFixed(2)}%</text>`);
    }
    parts.push(`<line x1="${M.l}" y1="${y(0)}" x2="${M.l + pw}" y2="${y(0)}" stroke="#999" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${M.l + pw / 2}" y="${top + ph + 36}" font-size="12" text-anchor="middle">measured block sparsity</text>`);
    for (const m of methods) {
      const mine = rows.filter((r) => r.method === m);
      const line = mine.filter((r) => front.has(r)).sort((a, b) => a.sparsity - b.sparsity);
      if (line.length > 1) parts.push(`<polyline fill="none" stroke="${color(m)}" stroke-width="1.5" points="${line.map((r) => `${x(r.sparsity).toFixed(1)},${y(r.lossDeltaPct).toFixed(1)}`).join(' ')}"/>`);
      for (const r of mine) {
        const filled = r.family === 'uniform';
        parts.push(`<circle cx="${x(r.sparsity).toFixed(1)}" cy="${y(r.lossDeltaPct).toFixed(1)}" r="4" stroke="${color(m)}" stroke-width="1.5" fill="${filled ? color(m) : 'white'}"><title>${esc(`${m} ${r.label}: sparsity ${r.sparsity.toFixed(3)}, Δloss ${r.lossDeltaPct.toFixed(2)}%`)}</title></circle>`);
      }
    }
    methods.forEach((m, i) => {
      const ly = top + 10 + i * 18;
      parts.push(`<rect x="${M.l + pw + 12}" y="${ly - 4}" width="8" height="8" fill="${color(m)}"/><text x="${M.l + pw + 26}" y="${ly + 4}" font-size="12">${esc(m)}</text>`);
    });
    const ly = top + 14 + methods.length * 18;
    parts.push(`<text x="${M.l + pw + 10}" y="${ly + 4}" font-size="11">filled: uniform; hollow: per-head/config</text>`);
  });
  const H = lengths.length * PH + 30;
  const footer = `${report.device.name} (${report.device.backend}), ${report.date.slice(0, 10)}, ${report.rows[0]?.prompts ?? 0} prompts per length`;
  parts.push(`<text x="${M.l}" y="${H - 10}" font-size="11" fill="#555">${esc(footer)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
