/**
 * Pictures of block masks: one panel per head (rows = query positions, columns = key positions),
 * laid out with titles, tick labels, an axis legend and a colour legend. This module computes the
 * figure (where every panel, label and swatch goes, and each panel's pixels); render.ts turns it
 * into RGBA pixels (PNG, canvas) or SVG text, so the CLI and the browser page draw the same thing.
 *
 * A panel pixel covers a range of query × key tokens. It is drawn from up to 8×8 sampled tokens,
 * so a pattern thinner than a pixel (a few sink keys, a narrow window) still shows:
 *   kept          some sampled token is visible (its block is kept, the token rule and causality allow it)
 *   token-masked  the block is kept but the token rule hides every sampled token (tri-shape inside blocks)
 *   dropped       the block is not kept
 *   above-diagonal no sampled token is causally visible
 * With block scores (XAttention's antidiagonal estimates, SLA's pooled scores) kept pixels take a
 * heat colour of the score over its query-block row's maximum (log scale over HEAT_DECADES), and masked or dropped ones the same
 * colour faded toward white, so both the scores and the selection read from one panel.
 */
import type { BlockMask } from '../core/block-mask.js';
import { InvalidArgumentError, requireInteger } from '../core/errors.js';
import { tokenRuleVisible } from '../core/token-rule.js';
import type { BlockPlan } from '../methods/method.js';
import { GLYPH_HEIGHT, textWidth } from './bitmap-font.js';

export type Rgb = readonly [number, number, number];

export const MASK_COLORS = {
  background: [255, 255, 255],
  text: [34, 34, 34],
  frame: [150, 150, 150],
  aboveDiagonal: [246, 246, 246],
  dropped: [220, 224, 230],
  kept: [31, 78, 156],
  tokenMasked: [160, 190, 232],
} as const satisfies Record<string, Rgb>;

/** Plasma-like stops of the heat map, low → high. */
const HEAT_STOPS: readonly Rgb[] = [[13, 8, 135], [126, 3, 168], [204, 71, 120], [248, 149, 64], [240, 249, 33]];

export interface MaskFigureInput {
  mask: BlockMask;
  /** Per-block scores [B, H, nQB, nKB] drawn as a heat map (BlockPlan.blockScores). */
  blockScores?: Float32Array;
  /** First line of the figure, e.g. the method and its settings. */
  title?: string;
  /** Which batch entry to draw (default 0). */
  batch?: number;
}

export interface MaskFigureOptions {
  /** Panel width in pixels (default 256); the height follows Lq / Lk. */
  panelSize?: number;
  /** Panels per row (default min(heads, 4)). */
  columns?: number;
  /** Size of a font pixel (default 2; 1 below panels of 128). */
  textScale?: number;
}

export interface FigurePanel {
  head: number;
  x: number;
  y: number;
  width: number;
  height: number;
  /** RGB, row-major, width·height·3. */
  pixels: Uint8ClampedArray;
  /** Kept / causally valid blocks of this head. */
  density: number;
}

export interface FigureText {
  x: number;
  y: number;
  text: string;
  scale: number;
}

export interface FigureRect {
  x: number;
  y: number;
  width: number;
  height: number;
  color: Rgb;
}

export interface MaskFigure {
  width: number;
  height: number;
  /** Drawn first, in order (frames, swatches, the heat bar). */
  rects: FigureRect[];
  panels: FigurePanel[];
  texts: FigureText[];
}

/** Decades of score below the row maximum the heat map spans: block scores are probabilities, most of them small. */
export const HEAT_DECADES = 3;

/** Position on the heat scale of a score relative to its row's maximum: log, 10^-HEAT_DECADES → 0, 1 → 1. */
export function heatLevel(relative: number): number {
  return relative > 0 ? Math.max(0, 1 + Math.log10(Math.min(1, relative)) / HEAT_DECADES) : 0;
}

/** Heat colour of v in [0, 1]. */
export function heatColor(v: number): Rgb {
  const t = Math.min(1, Math.max(0, v)) * (HEAT_STOPS.length - 1);
  const i = Math.min(HEAT_STOPS.length - 2, Math.floor(t));
  const f = t - i;
  const a = HEAT_STOPS[i];
  const b = HEAT_STOPS[i + 1];
  return [Math.round(a[0] + (b[0] - a[0]) * f), Math.round(a[1] + (b[1] - a[1]) * f), Math.round(a[2] + (b[2] - a[2]) * f)];
}

function fade(c: Rgb, toWhite: number): Rgb {
  return [c[0] + (255 - c[0]) * toWhite, c[1] + (255 - c[1]) * toWhite, c[2] + (255 - c[2]) * toWhite].map(Math.round) as unknown as Rgb;
}

/** Up to 8 token indices spread over [start, end), first and last included. */
function samples(start: number, end: number): number[] {
  const n = end - start;
  if (n <= 8) return Array.from({ length: n }, (_, t) => start + t);
  return Array.from({ length: 8 }, (_, t) => start + Math.round((t * (n - 1)) / 7));
}

/** The pixels of one head's panel (see the file comment for what each colour means). */
export function panelPixels(mask: BlockMask, batch: number, head: number, width: number, height: number, blockScores?: Float32Array): Uint8ClampedArray {
  const { queryLength: Lq, keyLength: Lk, blockRows: br, blockCols: bc, numQueryBlocks: nQB, numKeyBlocks: nKB, queryOffset, causal } = mask;
  const tokenRule = mask.tokenRuleFor(head);
  const kept = new Uint8Array(nQB * nKB);
  for (let qb = 0; qb < nQB; qb++) for (const kb of mask.keptBlocks(batch, head, qb)) kept[qb * nKB + kb] = 1;
  let heat: Float32Array | undefined;
  if (blockScores) {
    const base = (batch * mask.heads + head) * nQB * nKB;
    heat = new Float32Array(nQB * nKB);
    for (let qb = 0; qb < nQB; qb++) {
      // Normalised per query-block row: methods select per row, so the row's ranking is what matters.
      let max = 0;
      for (let kb = 0; kb < nKB; kb++) if (mask.isCausallyValid(qb, kb)) max = Math.max(max, blockScores[base + qb * nKB + kb]);
      for (let kb = 0; kb < nKB; kb++) heat[qb * nKB + kb] = max > 0 ? heatLevel(blockScores[base + qb * nKB + kb] / max) : 0;
    }
  }
  const rowSamples = Array.from({ length: height }, (_, py) => samples(Math.floor((py * Lq) / height), Math.max(Math.floor((py * Lq) / height) + 1, Math.floor(((py + 1) * Lq) / height))));
  const colSamples = Array.from({ length: width }, (_, px) => samples(Math.floor((px * Lk) / width), Math.max(Math.floor((px * Lk) / width) + 1, Math.floor(((px + 1) * Lk) / width))));
  const out = new Uint8ClampedArray(width * height * 3);
  for (let py = 0; py < height; py++) {
    for (let px = 0; px < width; px++) {
      let valid = false;
      let anyKept = false;
      let visible = false;
      let h = 0;
      for (const i of rowSamples[py]) {
        for (const j of colSamples[px]) {
          if (causal && j > queryOffset + i) continue;
          valid = true;
          const block = Math.floor(i / br) * nKB + Math.floor(j / bc);
          if (heat) h = Math.max(h, heat[block]);
          if (!kept[block]) continue;
          anyKept = true;
          if (!tokenRule || tokenRuleVisible(tokenRule, i, j, Lq, queryOffset)) visible = true;
        }
      }
      let c: Rgb;
      if (!valid) c = MASK_COLORS.aboveDiagonal;
      else if (heat) c = visible ? heatColor(h) : fade(heatColor(h), anyKept ? 0.55 : 0.8);
      else c = visible ? MASK_COLORS.kept : anyKept ? MASK_COLORS.tokenMasked : MASK_COLORS.dropped;
      out.set(c, (py * width + px) * 3);
    }
  }
  return out;
}

/** Kept / causally valid blocks of one (batch, head). */
function headDensity(mask: BlockMask, batch: number, head: number): number {
  let valid = 0;
  let kept = 0;
  for (let qb = 0; qb < mask.numQueryBlocks; qb++) {
    for (let kb = 0; kb < mask.numKeyBlocks; kb++) if (mask.isCausallyValid(qb, kb)) valid++;
    for (const kb of mask.keptBlocks(batch, head, qb)) if (mask.isCausallyValid(qb, kb)) kept++;
  }
  return valid === 0 ? 0 : kept / valid;
}

/** Where everything of the picture goes, and each panel's pixels. */
export function maskFigure(input: MaskFigureInput, opts: MaskFigureOptions = {}): MaskFigure {
  const { mask } = input;
  const batch = requireInteger('batch', input.batch ?? 0, 0, mask.batch - 1);
  const P = requireInteger('panelSize', opts.panelSize ?? 256, 16, 4096);
  const columns = requireInteger('columns', opts.columns ?? Math.min(mask.heads, 4), 1);
  const s = requireInteger('textScale', opts.textScale ?? (P < 128 ? 1 : 2), 1, 8);
  if (input.blockScores && input.blockScores.length !== mask.batch * mask.heads * mask.numQueryBlocks * mask.numKeyBlocks) {
    throw new InvalidArgumentError('blockScores.length', input.blockScores.length, `${mask.batch * mask.heads * mask.numQueryBlocks * mask.numKeyBlocks} (B·H·nQB·nKB)`);
  }
  const line = (GLYPH_HEIGHT + 3) * s;
  const pad = 4 * s;
  const panelH = Math.max(16, Math.round((P * mask.queryLength) / mask.keyLength));
  const lastQ = String(mask.numQueryBlocks - 1);
  const gutter = textWidth(lastQ, s) + 2 * s;
  const cellW = gutter + P + 3 * pad;
  const cellH = line + panelH + line + pad;
  const texts: FigureText[] = [];
  const rects: FigureRect[] = [];
  const panels: FigurePanel[] = [];
  let y = pad;
  if (input.title) {
    texts.push({ x: pad, y, text: input.title, scale: s });
    y += line + s;
  }
  const rows = Math.ceil(mask.heads / columns);
  for (let h = 0; h < mask.heads; h++) {
    const cx = pad + (h % columns) * cellW;
    const cy = y + Math.floor(h / columns) * cellH;
    const px = cx + gutter;
    const py = cy + line;
    const density = headDensity(mask, batch, h);
    texts.push({ x: px, y: cy, text: `head ${h}  density ${density.toFixed(2)}`, scale: s });
    rects.push({ x: px - 1, y: py - 1, width: P + 2, height: panelH + 2, color: MASK_COLORS.frame });
    panels.push({ head: h, x: px, y: py, width: P, height: panelH, density, pixels: panelPixels(mask, batch, h, P, panelH, input.blockScores) });
    // Tick labels: first and last query block on the left, first and last key block below.
    texts.push({ x: px - gutter, y: py, text: '0', scale: s });
    texts.push({ x: px - s - textWidth(lastQ, s) - s, y: py + panelH - GLYPH_HEIGHT * s, text: lastQ, scale: s });
    const lastK = String(mask.numKeyBlocks - 1);
    texts.push({ x: px, y: py + panelH + 2 * s, text: '0', scale: s });
    texts.push({ x: px + P - textWidth(lastK, s), y: py + panelH + 2 * s, text: lastK, scale: s });
  }
  y += rows * cellH;
  // Axis legend, then the colour legend.
  const axis = [
    `rows: query blocks of ${mask.blockRows} tokens (Lq ${mask.queryLength})`,
    `columns: key blocks of ${mask.blockCols} tokens (Lk ${mask.keyLength})${mask.causal ? ', causal' : ''}`,
  ];
  for (const text of axis) {
    texts.push({ x: pad, y, text, scale: s });
    y += line;
  }
  let x = pad;
  const swatch = (color: Rgb, label: string) => {
    rects.push({ x, y, width: GLYPH_HEIGHT * s, height: GLYPH_HEIGHT * s, color: MASK_COLORS.frame });
    rects.push({ x: x + 1, y: y + 1, width: GLYPH_HEIGHT * s - 2, height: GLYPH_HEIGHT * s - 2, color });
    texts.push({ x: x + (GLYPH_HEIGHT + 2) * s, y, text: label, scale: s });
    x += (GLYPH_HEIGHT + 2) * s + textWidth(label, s) + 4 * s;
  };
  if (input.blockScores) {
    const steps = 32;
    const low = `block score / row max: 1e-${HEAT_DECADES}`;
    texts.push({ x, y, text: low, scale: s });
    x += textWidth(low, s) + 2 * s;
    for (let t = 0; t < steps; t++) rects.push({ x: x + t * 2 * s, y, width: 2 * s, height: GLYPH_HEIGHT * s, color: heatColor(t / (steps - 1)) });
    x += steps * 2 * s + 2 * s;
    texts.push({ x, y, text: '1 (log; dropped: faded)', scale: s });
    x += textWidth('1 (log; dropped: faded)', s) + 4 * s;
  } else {
    swatch(MASK_COLORS.kept, 'kept');
    if (mask.hasTokenRule) swatch(MASK_COLORS.tokenMasked, 'kept block, token rule hides');
    swatch(MASK_COLORS.dropped, 'dropped');
  }
  if (mask.causal) swatch(MASK_COLORS.aboveDiagonal, 'above diagonal');
  y += line + pad;
  const width = Math.max(pad + columns * cellW, x + pad, ...texts.map((t) => t.x + textWidth(t.text, t.scale) + pad));
  return { width, height: y, rects, panels, texts };
}

/** What a picture of a plan draws: its mask and, when the method estimated them, block scores. */
export function planPicture(plan: BlockPlan, title?: string): MaskFigureInput {
  const m = plan.mask;
  // SLA's pooled scores may cover another grid than the mask's; only per-block scores are drawn.
  const perBlock = plan.blockScores?.length === m.batch * m.heads * m.numQueryBlocks * m.numKeyBlocks;
  return { mask: m, blockScores: perBlock ? plan.blockScores : undefined, title };
}

/** `xattention threshold=0.8 stride=8`: numbers, booleans and strings only (the bitmap font has no braces or quotes). */
export function pictureTitle(method: string, settings: Record<string, unknown>): string {
  const parts = Object.entries(settings)
    .filter(([, v]) => ['number', 'boolean', 'string'].includes(typeof v))
    .map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toPrecision(3)) : String(v)}`);
  return [method, ...parts].join(' ');
}
