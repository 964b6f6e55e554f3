/**
 * A mask figure (mask-figure.ts) as RGBA pixels, for PNG files and canvases (ImageData takes the
 * same layout), or as SVG text. Both draw rects, then panels, then labels with the bitmap font,
 * so the two outputs agree pixel for pixel at scale 1.
 */
import { MASK_COLORS, maskFigure, type MaskFigure, type MaskFigureInput, type MaskFigureOptions, type Rgb } from './mask-figure.js';
import { rasterizeText } from './bitmap-font.js';

export interface RgbaImage {
  width: number;
  height: number;
  /** RGBA, row-major, width·height·4 (ImageData's layout). */
  data: Uint8ClampedArray<ArrayBuffer>;
}

export function figureToRgba(fig: MaskFigure): RgbaImage {
  const { width, height } = fig;
  const data = new Uint8ClampedArray(width * height * 4);
  const fillRect = (x: number, y: number, w: number, h: number, c: Rgb) => {
    for (let yy = Math.max(0, y); yy < Math.min(height, y + h); yy++) {
      for (let xx = Math.max(0, x); xx < Math.min(width, x + w); xx++) {
        const o = (yy * width + xx) * 4;
        data[o] = c[0];
        data[o + 1] = c[1];
        data[o + 2] = c[2];
        data[o + 3] = 255;
      }
    }
  };
  fillRect(0, 0, width, height, MASK_COLORS.background);
  for (const r of fig.rects) fillRect(r.x, r.y, r.width, r.height, r.color);
  for (const p of fig.panels) {
    for (let yy = 0; yy < p.height; yy++) {
      for (let xx = 0; xx < p.width; xx++) {
        const src = (yy * p.width + xx) * 3;
        const o = ((p.y + yy) * width + p.x + xx) * 4;
        data[o] = p.pixels[src];
        data[o + 1] = p.pixels[src + 1];
        data[o + 2] = p.pixels[src + 2];
        data[o + 3] = 255;
      }
    }
  }
  for (const t of fig.texts) rasterizeText(t.text, t.x, t.y, t.scale, (x, y, size) => fillRect(x, y, size, size, MASK_COLORS.text));
  return { width, height, data };
}

const hex = (c: Rgb) => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;

/**
 * SVG text. Panel pixels become runs of equal colour merged with identical runs of the rows below,
 * so a block pattern costs about one rect per block, not one per pixel.
 */
export function figureToSvg(fig: MaskFigure): string {
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${fig.width}" height="${fig.height}" viewBox="0 0 ${fig.width} ${fig.height}" shape-rendering="crispEdges">`,
    `<rect width="${fig.width}" height="${fig.height}" fill="${hex(MASK_COLORS.background)}"/>`,
  ];
  const rect = (x: number, y: number, w: number, h: number, fill: string) => out.push(`<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="${fill}"/>`);
  for (const r of fig.rects) rect(r.x, r.y, r.width, r.height, hex(r.color));
  for (const p of fig.panels) {
    const runs = (yy: number) => {
      const row: { x0: number; x1: number; color: string }[] = [];
      for (let xx = 0; xx < p.width; xx++) {
        const o = (yy * p.width + xx) * 3;
        const color = hex([p.pixels[o], p.pixels[o + 1], p.pixels[o + 2]]);
        const last = row[row.length - 1];
        if (last && last.color === color) last.x1 = xx + 1;
        else row.push({ x0: xx, x1: xx + 1, color });
      }
      return row;
    };
    const key = (row: ReturnType<typeof runs>) => row.map((r) => `${r.x0}:${r.color}`).join(',');
    let yy = 0;
    while (yy < p.height) {
      const row = runs(yy);
      const k = key(row);
      let h = 1;
      while (yy + h < p.height && key(runs(yy + h)) === k) h++;
      for (const r of row) rect(p.x + r.x0, p.y + yy, r.x1 - r.x0, h, r.color);
      yy += h;
    }
  }
  out.push(`<g fill="${hex(MASK_COLORS.text)}">`);
  for (const t of fig.texts) rasterizeText(t.text, t.x, t.y, t.scale, (x, y, size) => out.push(`<rect x="${x}" y="${y}" width="${size}" height="${size}"/>`));
  out.push('</g>', '</svg>');
  return `${out.join('\n')}\n`;
}

/** The picture of a plan's mask as RGBA pixels. */
export function renderMaskImage(input: MaskFigureInput, opts?: MaskFigureOptions): RgbaImage {
  return figureToRgba(maskFigure(input, opts));
}

/** The picture of a plan's mask as SVG text. */
export function renderMaskSvg(input: MaskFigureInput, opts?: MaskFigureOptions): string {
  return figureToSvg(maskFigure(input, opts));
}
