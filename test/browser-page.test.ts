/**
 * The page in a real browser: Debian's Chromium, headless, driven by puppeteer-core, WebGPU on
 * SwiftShader. Every method runs on navigator.gpu and must equal the CPU reference computed here
 * in Node on the same seeded inputs (block masks identical, outputs within tolerance). A run from
 * the form draws the mask (checked against the picture Node renders) and a screenshot is saved.
 *
 * Chromium flags: --enable-unsafe-webgpu (WebGPU on Linux is behind it; headless gets Dawn's
 * SwiftShader fallback adapter: f32 only, subgroups of 4, 256 invocations per workgroup) and
 * --no-sandbox (CI runs as root). Without Chromium the suite skips with the reason, unless
 * SPARSE_ATTN_REQUIRE_WEBGPU=1 (CI), where it fails.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { sparseAttention } from '../src/attention.js';
import { cpuBackend } from '../src/backends/cpu/index.js';
import { inputsOfKind, type InputKind } from '../src/core/input-kinds.js';
import { sparseMethods } from '../src/methods/index.js';
import { figureToRgba } from '../src/viz/render.js';
import { maskFigure, pictureTitle, planPicture } from '../src/viz/mask-figure.js';
import { startStaticServer, type StaticServer } from '../src/cli/static-server.js';
import { buildBrowser, PAGE_DIR } from '../tools/build-browser.js';
import { assertClose, TOL, type Tolerance } from './helpers/compare.js';

const CHROMIUM = process.env.SPARSE_ATTN_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_FLAGS = ['--no-sandbox', '--enable-unsafe-webgpu'];
const missing = existsSync(CHROMIUM) ? '' : `Chromium not found at ${CHROMIUM} (Debian: apt-get install chromium; or set SPARSE_ATTN_CHROMIUM)`;
const required = process.env.SPARSE_ATTN_REQUIRE_WEBGPU === '1';

/** GPU vs CPU per method: f32 kernels; SLA's linear part and SageSLA's int8 path as in their own WebGPU suites. */
const TOLERANCE: Record<string, Tolerance> = { sla: { atol: 2e-5, rtol: 2e-4 }, sage_sla: { atol: 5e-5, rtol: 5e-4 } };

interface Request {
  method: string;
  settings?: Record<string, unknown>;
  input: InputKind;
  length: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  seed: number;
  causal: boolean;
}
interface PageResult {
  backend: 'webgpu' | 'cpu';
  settings: Record<string, unknown>;
  density: number;
  output: number[];
  rowPtr: number[];
  colIdx: number[];
}
type PageApi = { device: { kind: 'webgpu' | 'cpu'; reason?: string; report?: { description: string; architecture: string } }; methods: string[]; run(r: Request): Promise<PageResult> };
/** Evaluates an expression in the page (text, since this project's types have no DOM). */
const ev = <T>(page: Page, expression: string) => page.evaluate(expression) as Promise<T>;
const api = (page: Page) => ev<PageApi['device']>(page, 'sparseAttentionPage.device');
const runOnPage = (page: Page, req: Request) => ev<PageResult>(page, `sparseAttentionPage.run(${JSON.stringify(req)})`);
const state = (page: Page) => ev<string>(page, 'document.body.dataset.state');
const statusText = (page: Page) => ev<string>(page, "document.querySelector('#status').textContent");

async function cpuReference(req: Request, settings: Record<string, unknown>) {
  const { q, k, v } = inputsOfKind(req.input, req);
  const { output, plan } = await sparseAttention(q, k, v, { method: req.method, settings, causal: req.causal, backend: cpuBackend });
  return { output: output.toLayout('BHLD').toFloat32Array(), plan };
}

describe('the browser page in headless Chromium', { skip: missing && !required ? missing : false, timeout: 120_000 }, () => {
  let browser: Browser;
  let server: StaticServer;
  const shots = mkdtempSync(join(tmpdir(), 'sparse-attn-browser-'));

  before(async () => {
    if (missing) throw new Error(`SPARSE_ATTN_REQUIRE_WEBGPU=1 but ${missing}`);
    const site = mkdtempSync(join(tmpdir(), 'sparse-attn-site-'));
    copyFileSync(join(PAGE_DIR, 'index.html'), join(site, 'index.html'));
    await buildBrowser({ outfile: join(site, 'app.js') });
    server = await startStaticServer(site);
    browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  const open = async (noWebGpu = false) => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    if (noWebGpu) await page.evaluateOnNewDocument("Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined })");
    await page.setViewport({ width: 1300, height: 900 });
    await page.goto(server.url);
    await page.waitForFunction("['ready', 'error'].includes(document.body.dataset.state)", { timeout: 30_000 });
    assert.equal(await state(page), 'ready', `page started: ${await statusText(page)} ${errors.join('; ')}`);
    return page;
  };

  // One page (one GPU device, so one pipeline cache) for the WebGPU tests: SwiftShader compiles slowly.
  let gpuPage: Page | undefined;

  it('runs every method on navigator.gpu and equals the CPU reference computed in Node', async (t) => {
    const page = (gpuPage = await open());
    const device = await api(page);
    if (device.kind !== 'webgpu') {
      assert.ok(!required, `SPARSE_ATTN_REQUIRE_WEBGPU=1 but the page found no WebGPU adapter: ${device.reason}`);
      t.skip(`no WebGPU adapter in Chromium: ${device.reason}`);
      return;
    }
    t.diagnostic(`adapter: ${device.report?.description || device.report?.architecture}`);
    const methods = sparseMethods.list().map((m) => m.name);
    assert.deepEqual(await ev<string[]>(page, 'sparseAttentionPage.methods'), methods);
    for (const method of methods) {
      // SageSLA's int8 kernels take head size 64 or 128 only; the rest run at 32 to keep SwiftShader quick.
      const req: Request = { method, input: 'structured', length: 256, heads: 2, kvHeads: 1, headDim: method === 'sage_sla' ? 64 : 32, seed: 3, causal: true };
      const t0 = performance.now();
      const got = await runOnPage(page, req);
      t.diagnostic(`${method}: ${((performance.now() - t0) / 1000).toFixed(1)} s on the page`);
      assert.equal(got.backend, 'webgpu', method);
      const want = await cpuReference(req, got.settings);
      assert.deepEqual(got.rowPtr, Array.from(want.plan.mask.rowPtr), `${method}: block mask rows`);
      assert.deepEqual(got.colIdx, Array.from(want.plan.mask.colIdx), `${method}: kept blocks`);
      assert.equal(got.density, want.plan.mask.density, `${method}: density`);
      assertClose(got.output, want.output, TOLERANCE[method] ?? TOL.f32, `${method} on ${device.report?.architecture}`);
    }
  });

  it('runs from the form, draws the mask Node draws for the same plan, and saves a screenshot', async (t) => {
    const page = gpuPage ?? (gpuPage = await open());
    if ((await api(page)).kind !== 'webgpu' && !required) {
      t.skip('no WebGPU adapter in Chromium');
      return;
    }
    const req: Request = { method: 'xattention', input: 'structured', length: 512, heads: 4, kvHeads: 2, headDim: 32, seed: 1, causal: true };
    await page.select('select[name=method]', req.method);
    for (const name of ['length', 'heads', 'kvHeads', 'headDim', 'seed'] as const) await page.locator(`input[name=${name}]`).fill(String(req[name]));
    await page.click('#run');
    await page.waitForFunction("['done', 'error'].includes(document.body.dataset.state)", { timeout: 60_000 });
    assert.equal(await state(page), 'done', await statusText(page));
    const rows = await ev<string[][]>(page, "[...document.querySelectorAll('#results tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent))");
    assert.deepEqual(rows.map((r) => [r[0], r[1]]), [['dense', 'webgpu'], ['xattention', 'webgpu']]);
    const want = await cpuReference(req, {});
    assert.equal(rows[1][2], want.plan.mask.density.toFixed(3), 'density shown');
    const image = figureToRgba(maskFigure(planPicture(want.plan, pictureTitle('xattention', {})), { panelSize: 256 }));
    const canvas = await ev<{ width: number; height: number; data: number[] }>(page, `(() => {
      const c = document.querySelector('#mask');
      return { width: c.width, height: c.height, data: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data) };
    })()`);
    assert.deepEqual([canvas.width, canvas.height], [image.width, image.height]);
    // The heat colours come from GPU block scores, equal to the CPU ones within f32 rounding.
    let differ = 0;
    for (let i = 0; i < image.data.length; i++) if (Math.abs(canvas.data[i] - image.data[i]) > 2) differ++;
    assert.ok(differ < image.data.length * 0.002, `${differ} of ${image.data.length} canvas bytes differ from Node's picture`);
    const shot = join(shots, 'browser-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);
    console.log(`screenshot: ${shot}`);
  });

  it('without WebGPU says so once and shows the CPU reference result', async () => {
    const page = await open(true);
    const status = await statusText(page);
    assert.match(status, /^No WebGPU: this browser has no navigator\.gpu.*Showing the CPU reference result instead\.$/s);
    const req: Request = { method: 'tri_shape', input: 'random', length: 160, heads: 2, kvHeads: 2, headDim: 16, seed: 5, causal: true };
    const got = await runOnPage(page, req);
    assert.equal(got.backend, 'cpu');
    const want = await cpuReference(req, got.settings);
    assertClose(got.output, want.output, TOL.f32, 'CPU in the page vs CPU in Node');
    assert.equal(await ev<string>(page, "[...document.querySelectorAll('#results tbody td:nth-child(2)')].map((td) => td.textContent).join()"), 'cpu,cpu');
    await page.close();
  });
});
