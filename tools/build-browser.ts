/**
 * `npm run build:browser`: bundles the browser page (examples/browser/main.ts and the library
 * through src/browser.ts) with esbuild into examples/browser/app.js. The package.json `browser`
 * map empties the `webgpu` package (Dawn for Node), so the bundle reaches WebGPU through
 * navigator.gpu only. esbuild does not type-check: examples/browser/tsconfig.json does that.
 */
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const PAGE_DIR = `${REPO_ROOT}examples/browser/`;

export interface BrowserBuildOptions {
  /** Entry module (default the page, examples/browser/main.ts). */
  entry?: string;
  /** Output file (default examples/browser/app.js). */
  outfile?: string;
  /** Write the file (default true); false returns the code in outputFiles. */
  write?: boolean;
  minify?: boolean;
}

/** The page bundle and its metafile (the import graph the browser test inspects). */
export async function buildBrowser(opts: BrowserBuildOptions = {}): Promise<esbuild.BuildResult<{ metafile: true }>> {
  return esbuild.build({
    entryPoints: [opts.entry ?? `${PAGE_DIR}main.ts`],
    outfile: opts.outfile ?? `${PAGE_DIR}app.js`,
    absWorkingDir: REPO_ROOT,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    sourcemap: true,
    minify: opts.minify ?? false,
    metafile: true,
    write: opts.write ?? true,
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await buildBrowser({ minify: process.argv.includes('--minify') });
  for (const [file, out] of Object.entries(result.metafile.outputs)) {
    if (file.endsWith('.js')) console.log(`${file}: ${(out.bytes / 1024).toFixed(0)} KiB from ${Object.keys(out.inputs).length} modules`);
  }
}
