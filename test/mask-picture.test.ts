/** Mask pictures: pixel checks of known masks, PNG and SVG agree, and the `mask` command. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { BlockMask, type BlockMaskDims } from '../src/core/block-mask.js';
import { inputsOfKind } from '../src/core/input-kinds.js';
import { createSparseMethod } from '../src/methods/index.js';
import { heatColor, heatLevel, MASK_COLORS, maskFigure, type MaskFigure, pictureTitle, planPicture, type Rgb } from '../src/viz/mask-figure.js';
import { decodePng, encodePng } from '../src/viz/png.js';
import { figureToRgba, figureToSvg, type RgbaImage } from '../src/viz/render.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const run = (args: string[]) =>
  promisify(execFile)(process.execPath, [cli, ...args], { timeout: 60_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );

function pixel(img: RgbaImage, x: number, y: number): Rgb {
  const o = (y * img.width + x) * 4;
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

/** The figure pixel of token (i, j) of a head's panel when the panel has one pixel per token. */
function tokenPixel(img: RgbaImage, fig: MaskFigure, head: number, i: number, j: number): Rgb {
  const p = fig.panels[head];
  return pixel(img, p.x + j, p.y + i);
}

const dims = (causal: boolean, heads = 2): BlockMaskDims => ({ batch: 1, heads, queryLength: 64, keyLength: 64, blockRows: 16, blockCols: 16, causal });

describe('mask pictures', () => {
  it('draws kept and dropped blocks where the mask has them, one panel per head', () => {
    // Head 0 keeps the diagonal, head 1 the first key block and block (2, 3).
    const mask = BlockMask.fromPredicate(dims(false), (_b, h, qb, kb) => (h === 0 ? qb === kb : kb === 0 || (qb === 2 && kb === 3)));
    const fig = maskFigure({ mask }, { panelSize: 64, textScale: 1 });
    const img = figureToRgba(fig);
    assert.equal(fig.panels.length, 2);
    assert.deepEqual(fig.panels.map((p) => [p.width, p.height]), [[64, 64], [64, 64]]);
    for (let h = 0; h < 2; h++) {
      for (let qb = 0; qb < 4; qb++) {
        for (let kb = 0; kb < 4; kb++) {
          const want = mask.isKept(0, h, qb, kb) ? MASK_COLORS.kept : MASK_COLORS.dropped;
          for (const [di, dj] of [[0, 0], [8, 8], [15, 15]]) {
            assert.deepEqual(tokenPixel(img, fig, h, qb * 16 + di, kb * 16 + dj), want, `head ${h} block (${qb}, ${kb}) token offset (${di}, ${dj})`);
          }
        }
      }
    }
    assert.deepEqual(fig.panels.map((p) => p.density), [0.25, 5 / 16]);
    const texts = fig.texts.map((t) => t.text);
    assert.ok(texts.includes('head 0  density 0.25') && texts.includes('head 1  density 0.31'), texts.join(' | '));
    assert.ok(texts.some((t) => t.startsWith('rows: query blocks of 16 tokens')), 'axis legend for rows');
    assert.ok(texts.some((t) => t.startsWith('columns: key blocks of 16 tokens')), 'axis legend for columns');
    // Tick labels name the last block of each axis.
    assert.equal(texts.filter((t) => t === '3').length, 4);
    // The labels are drawn: text-coloured pixels where the first panel title sits.
    const title = fig.texts.find((t) => t.text.startsWith('head 0'))!;
    let lit = 0;
    for (let y = title.y; y < title.y + 7; y++) for (let x = title.x; x < title.x + 60; x++) if (pixel(img, x, y).join() === MASK_COLORS.text.join()) lit++;
    assert.ok(lit > 40, `title pixels drawn (${lit})`);
  });

  it('leaves the part above the causal diagonal apart, and shows the token rule inside kept blocks', () => {
    const rule = { kind: 'trishape' as const, sinkTokens: 4, localWindow: 8, lastDenseQueries: 4 };
    const mask = BlockMask.fromPredicate(dims(true, 1), (_b, _h, qb, kb) => kb <= qb, rule);
    const fig = maskFigure({ mask }, { panelSize: 64, textScale: 1 });
    const img = figureToRgba(fig);
    for (let i = 0; i < 64; i += 3) {
      for (let j = 0; j < 64; j += 5) {
        const want = j > i ? MASK_COLORS.aboveDiagonal : mask.visible(0, 0, i, j) ? MASK_COLORS.kept : MASK_COLORS.tokenMasked;
        assert.deepEqual(tokenPixel(img, fig, 0, i, j), want, `token (${i}, ${j})`);
      }
    }
    // A sink key and a window key are visible, a key between them is hidden by the rule.
    assert.deepEqual(tokenPixel(img, fig, 0, 40, 2), MASK_COLORS.kept);
    assert.deepEqual(tokenPixel(img, fig, 0, 40, 38), MASK_COLORS.kept);
    assert.deepEqual(tokenPixel(img, fig, 0, 40, 20), MASK_COLORS.tokenMasked);
    assert.ok(fig.texts.some((t) => t.text === 'kept block, token rule hides'), 'the legend names the token rule');
  });

  it('draws block scores as a heat map on a log scale, dropped blocks faded', () => {
    const mask = BlockMask.fromPredicate(dims(false, 1), (_b, _h, _qb, kb) => kb < 2);
    const scores = new Float32Array(16);
    for (let qb = 0; qb < 4; qb++) for (let kb = 0; kb < 4; kb++) scores[qb * 4 + kb] = [0.5, 0.05, 0.005, 0.0005][kb];
    const fig = maskFigure({ mask, blockScores: scores }, { panelSize: 64, textScale: 1 });
    const img = figureToRgba(fig);
    assert.deepEqual(tokenPixel(img, fig, 0, 8, 8), heatColor(1));
    assert.deepEqual(tokenPixel(img, fig, 0, 8, 24), heatColor(heatLevel(0.1)));
    assert.ok(Math.abs(heatLevel(0.1) - 2 / 3) < 1e-12 && heatLevel(1e-3) === 0 && heatLevel(1e-5) === 0);
    // Dropped: lighter than the same score kept would be.
    const dropped = tokenPixel(img, fig, 0, 8, 40);
    const keptShade = heatColor(heatLevel(0.01));
    assert.ok(dropped.every((c, i) => c >= keptShade[i]) && dropped.some((c, i) => c > keptShade[i] + 40), `faded ${dropped} vs ${keptShade}`);
    assert.throws(() => maskFigure({ mask, blockScores: new Float32Array(3) }), /blockScores.length must be 16/);
  });

  it('writes PNG that decodes to the same pixels, and SVG whose rects paint the same picture', () => {
    const { q, k } = inputsOfKind('structured', { length: 256, heads: 2, kvHeads: 1, headDim: 32, seed: 2 });
    const plan = createSparseMethod('xattention', { blockSize: 32 }).planBlockMask(q, k, { causal: true });
    const fig = maskFigure(planPicture(plan, pictureTitle('xattention', { blockSize: 32 })), { panelSize: 96 });
    const img = figureToRgba(fig);
    const back = decodePng(encodePng(img));
    assert.deepEqual([back.width, back.height], [img.width, img.height]);
    assert.ok(Buffer.from(back.data).equals(Buffer.from(img.data)), 'PNG round trip');
    // Paint the SVG's rects in order onto a blank image: it must equal the raster.
    const svg = figureToSvg(fig);
    const painted = new Uint8ClampedArray(img.data.length);
    let fill = '#000000';
    for (const m of svg.matchAll(/<(g|rect)([^>]*)>/g)) {
      const attr = (name: string) => m[2].match(new RegExp(`\\b${name}="([^"]*)"`))?.[1];
      if (m[1] === 'g') {
        fill = attr('fill') ?? fill;
        continue;
      }
      const [x, y, w, h] = ['x', 'y', 'width', 'height'].map((a) => Number(attr(a) ?? 0));
      const c = (attr('fill') ?? fill).slice(1).match(/../g)!.map((v) => parseInt(v, 16));
      for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) painted.set([...c, 255], (yy * img.width + xx) * 4);
    }
    assert.ok(Buffer.from(painted).equals(Buffer.from(img.data)), 'SVG paints the raster');
    assert.ok(svg.length < 400_000, `SVG merges runs (${svg.length} chars)`);
  });
});

describe('sparse-attn mask', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sparse-attn-mask-'));

  it('draws a method\'s planned mask to PNG, the same picture the library renders', async () => {
    const out = join(dir, 'tri.png');
    const { code, stdout } = await run(['mask', '--method', 'tri_shape', '--length', '512', '--heads', '2', '--kv-heads', '1', '--settings', '{"localWindow":128,"sinkTokens":32,"lastDenseQueries":16}', '--panel', '128', '--out', out]);
    assert.equal(code, 0);
    assert.match(stdout, /tri\.png: tri_shape, L=512, 2 heads, density /);
    const png = decodePng(readFileSync(out));
    const method = createSparseMethod('tri_shape', { localWindow: 128, sinkTokens: 32, lastDenseQueries: 16 });
    const { q, k } = inputsOfKind('structured', { length: 512, heads: 2, kvHeads: 1, headDim: 64, seed: 1 });
    const plan = method.planBlockMask(q, k, { causal: true });
    const want = figureToRgba(maskFigure(planPicture(plan, pictureTitle('tri_shape', (method as unknown as { settings: Record<string, unknown> }).settings)), { panelSize: 128 }));
    assert.deepEqual([png.width, png.height], [want.width, want.height]);
    assert.ok(Buffer.from(png.data).equals(Buffer.from(want.data)), 'CLI picture equals the library picture');
  });

  it('writes SVG for .svg and refuses other extensions and unknown methods', async () => {
    const svg = join(dir, 'x.svg');
    assert.equal((await run(['mask', '--method', 'xattention', '--length', '256', '--heads', '1', '--out', svg])).code, 0);
    assert.match(readFileSync(svg, 'utf8'), /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="\d+" height="\d+"/);
    const bad = await run(['mask', '--method', 'xattention', '--out', join(dir, 'x.jpg')]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--out must be a file name ending in \.png or \.svg/);
    const unknown = await run(['mask', '--method', 'nope', '--out', join(dir, 'n.png')]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /nope/);
  });
});
