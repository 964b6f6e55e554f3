/**
 * The browser build: the package's `browser` export, resolved the way a bundler resolves it,
 * reaches no Node built-in and no code of the `webgpu` package (Dawn); it tree-shakes; the page
 * bundles and type-checks against the DOM without Node's types.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Metafile } from 'esbuild';
import { buildBrowser, PAGE_DIR, REPO_ROOT } from '../tools/build-browser.js';

/** Every Node built-in or `webgpu` import in a bundle's graph, and the inputs that put bytes from `webgpu` into it. */
function forbiddenImports(meta: Metafile): string[] {
  const bad: string[] = [];
  for (const [file, input] of Object.entries(meta.inputs)) {
    if (/(^|\/)node_modules\/webgpu\//.test(file) && !file.startsWith('(disabled):')) bad.push(`${file} is bundled`);
    for (const imp of input.imports) {
      // esbuild lists a TypeScript import used only as a type (elided) as an external relative path.
      if (imp.path.startsWith('node:') || (imp.external && !imp.path.startsWith('.'))) bad.push(`${file} imports ${imp.path}${imp.external ? ' (external)' : ''}`);
      if (imp.original === 'webgpu' && !imp.path.startsWith('(disabled):')) bad.push(`${file} imports webgpu as ${imp.path}`);
    }
  }
  for (const out of Object.values(meta.outputs)) {
    // The emptied module leaves a stub of ~90 bytes under its '(disabled):' name and no code of its own.
    for (const [file, { bytesInOutput }] of Object.entries(out.inputs)) if (/node_modules\/webgpu\//.test(file) && !file.startsWith('(disabled):') && bytesInOutput > 0) bad.push(`${bytesInOutput} bytes of ${file}`);
  }
  return bad;
}

/** A project outside the repository that depends on the package (node_modules/sparse-attention → the repo). */
function consumer(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'sparse-attn-consumer-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(REPO_ROOT, join(dir, 'node_modules', 'sparse-attention'), 'dir');
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const outputBytes = (meta: Metafile) => Object.entries(meta.outputs).filter(([f]) => f.endsWith('.js')).reduce((a, [, o]) => a + o.bytes, 0);

describe('browser build', () => {
  it('the package\'s browser export (exports["."].browser) bundles without Node built-ins or Dawn', async () => {
    const dir = consumer({ 'all.js': "import * as sa from 'sparse-attention';\nconsole.log(sa);\n" });
    const { metafile } = await buildBrowser({ entry: join(dir, 'all.js'), outfile: join(dir, 'out', 'all.js'), write: false });
    const inputs = Object.keys(metafile.inputs);
    assert.ok(inputs.some((f) => f.endsWith('dist/src/browser.js')), 'resolved to dist/src/browser.js');
    assert.ok(!inputs.some((f) => f.endsWith('dist/src/index.js')), 'not the Node entry');
    assert.deepEqual(forbiddenImports(metafile), []);
    // The WebGPU backend is in the graph (through navigator.gpu); only Dawn's loader is emptied.
    assert.ok(inputs.some((f) => f.endsWith('dist/src/backends/webgpu/runtime/webgpu-device.js')), 'the WebGPU backend is bundled');
    assert.ok(inputs.some((f) => /^\(disabled\):.*node_modules\/webgpu\//.test(f)), 'webgpu mapped to an empty module');
  });

  it('the Node entry keeps the Node-only names; the browser entry is the rest of it', async () => {
    const node = await import('../src/index.js');
    const browser = await import('../src/browser.js');
    const nodeNames = new Set(Object.keys(node));
    const browserNames = Object.keys(browser);
    assert.deepEqual(browserNames.filter((n) => !nodeNames.has(n)), [], 'every browser name is in the Node entry');
    const nodeOnly = [...nodeNames].filter((n) => !browserNames.includes(n)).sort();
    for (const name of ['LlamaModel', 'loadLlamaCheckpoint', 'SafetensorsFile', 'runAccuracyEval', 'loadCorpus', 'sparsify', 'encodePng']) assert.ok(nodeOnly.includes(name), `${name} is Node-only`);
    for (const name of ['sparseAttention', 'BlockMask', 'createBackend', 'sparseMethods', 'renderMaskImage', 'inputsOfKind', 'calibrate']) assert.ok(browserNames.includes(name), `${name} is in the browser entry`);
  });

  it('tree-shakes: importing BlockMask alone bundles no method, backend or WebGPU code', async () => {
    const dir = consumer({
      'all.js': "import * as sa from 'sparse-attention';\nconsole.log(sa);\n",
      'one.js': "import { BlockMask } from 'sparse-attention';\nconsole.log(BlockMask.full);\n",
    });
    const all = (await buildBrowser({ entry: join(dir, 'all.js'), outfile: join(dir, 'out', 'all.js'), write: false })).metafile;
    const one = (await buildBrowser({ entry: join(dir, 'one.js'), outfile: join(dir, 'out', 'one.js'), write: false })).metafile;
    const used = Object.values(one.outputs).flatMap((o) => Object.entries(o.inputs).filter(([, i]) => i.bytesInOutput > 0).map(([f]) => f));
    assert.ok(used.some((f) => f.endsWith('dist/src/core/block-mask.js')));
    assert.deepEqual(used.filter((f) => /dist\/src\/(backends|methods\/\w+\/|engine|calibration|config)\//.test(f) || /node_modules/.test(f)), []);
    assert.ok(outputBytes(one) * 10 < outputBytes(all), `one class: ${outputBytes(one)} B, everything: ${outputBytes(all)} B`);
  });

  it('the page bundles from source with the same graph rules, and type-checks against the DOM without Node types', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sparse-attn-page-'));
    const { metafile } = await buildBrowser({ outfile: join(dir, 'app.js'), write: false });
    assert.ok(Object.keys(metafile.inputs).some((f) => f.endsWith('examples/browser/main.ts')));
    assert.deepEqual(forbiddenImports(metafile), []);
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await promisify(execFile)(process.execPath, [tsc, '-p', join(PAGE_DIR, 'tsconfig.json')]).then(() => ({ code: 0, out: '' }), (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }));
    assert.equal(r.code, 0, r.out);
  });
});

describe('sparse-attn serve', () => {
  it('serves a folder on localhost, files only inside it, and stops on SIGTERM', async () => {
    const root = mkdtempSync(join(tmpdir(), 'sparse-attn-serve-'));
    writeFileSync(join(root, 'index.html'), '<p>page</p>');
    writeFileSync(join(root, 'app.js'), 'export {};');
    const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--root', root], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      while (!/ at (http:\S+)/.test(out)) await once(child.stdout, 'data');
      const url = new URL(out.match(/ at (http:\S+)/)![1]);
      assert.equal(url.hostname, '127.0.0.1');
      const index = await fetch(url);
      assert.equal(index.status, 200);
      assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
      assert.equal(await index.text(), readFileSync(join(root, 'index.html'), 'utf8'));
      assert.equal((await fetch(new URL('app.js', url))).headers.get('content-type'), 'text/javascript; charset=utf-8');
      assert.equal((await fetch(new URL('missing.js', url))).status, 404);
      assert.equal((await fetch(url, { method: 'POST' })).status, 405);
      // URL parsing removes plain '..' segments; an encoded slash only becomes one after decoding.
      const raw = await new Promise<number>((resolve, reject) => {
        get({ host: url.hostname, port: url.port, path: '/..%2f..%2fetc%2fpasswd' }, (res) => { res.resume(); resolve(res.statusCode ?? 0); }).on('error', reject);
      });
      assert.equal(raw, 403);
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, 'exits cleanly on SIGTERM');
  });

  it('refuses a bad port', async () => {
    const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    const r = await promisify(execFile)(process.execPath, [cli, 'serve', '--port', '99999']).then(() => ({ code: 0, err: '' }), (e: { code: number; stderr: string }) => ({ code: e.code, err: e.stderr }));
    assert.equal(r.code, 2);
    assert.match(r.err, /--port must be an integer in \[0, 65535\], got "?99999"?/);
  });
});
