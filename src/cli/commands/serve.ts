import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../../core/errors.js';
import type { Command } from '../command.js';
import { startStaticServer } from '../static-server.js';

// The page sits beside dist/ in a clone of the repository and in the installed package.
export const PAGE_ROOT = fileURLToPath(new URL('../../../../examples/browser/', import.meta.url));

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve the browser page (examples/browser) on localhost',
  usage: `sparse-attn serve [--port N] [--host H] [--root DIR]

Serves the page that runs a method and dense attention on navigator.gpu and draws its block mask.
Build the page first with \`npm run build:browser\`. Open the printed URL in a browser with WebGPU
(localhost is a secure context, which WebGPU needs). Stops on Ctrl-C.
  --port N     (default 8080; 0 picks a free port)
  --host H     (default 127.0.0.1)
  --root DIR   folder to serve (default the package's examples/browser)`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: { port: { type: 'string', default: '8080' }, host: { type: 'string', default: '127.0.0.1' }, root: { type: 'string', default: PAGE_ROOT } },
    });
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('--port', values.port, 'an integer in [0, 65535]');
    if (!existsSync(values.root)) throw new InvalidArgumentError('--root', values.root, 'an existing folder');
    if (!existsSync(join(values.root, 'app.js'))) console.error(`serve: ${join(values.root, 'app.js')} is missing; run \`npm run build:browser\` first`);
    const { url, close } = await startStaticServer(values.root, port, values.host);
    console.log(`serving ${values.root} at ${url}`);
    await new Promise<void>((resolve) => {
      const stop = () => void close().then(resolve);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
};
