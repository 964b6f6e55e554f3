#!/usr/bin/env node
/** `sparse-attn`: the command-line face of the library. */
import { SparseAttentionError } from '../core/errors.js';
import { fileProblem } from '../core/files.js';
import type { Command } from './command.js';
import { benchCommand } from './commands/bench.js';
import { calibrateCommand } from './commands/calibrate.js';
import { configCommand } from './commands/config.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { maskCommand } from './commands/mask.js';
import { serveCommand } from './commands/serve.js';
import { deviceCommand } from './commands/device.js';
import { methodsCommand } from './commands/methods.js';
import { prefillCommand } from './commands/prefill.js';
import { generateCommand } from './commands/generate.js';
import { ttftCommand } from './commands/ttft.js';

// One command per line, so branches that add commands merge without conflicts.
const COMMANDS: readonly Command[] = [
  methodsCommand,
  demoCommand,
  deviceCommand,
  configCommand,
  calibrateCommand,
  prefillCommand,
  benchCommand,
  evalCommand,
  maskCommand,
  serveCommand,
  generateCommand,
  ttftCommand,
];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: sparse-attn <command> [options]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'sparse-attn <command> --help   shows a command\'s options',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 1;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`sparse-attn: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    // Bad input is the user's to fix: print the message alone. Anything else is our bug: keep the stack.
    if (err instanceof SparseAttentionError || (err instanceof Error && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'))) {
      console.error(`sparse-attn ${name}: ${err.message}`);
      return 2;
    }
    // A file the user named that Node could not open (read outside core/files.ts): one line, the path and the problem.
    const sys = err as { code?: string; path?: string; syscall?: string };
    if (err instanceof Error && typeof sys.code === 'string' && typeof sys.path === 'string' && sys.syscall) {
      console.error(`sparse-attn ${name}: ${sys.path}: ${fileProblem(err)}`);
      return 2;
    }
    throw err;
  }
}

process.exitCode = await main(process.argv.slice(2));
