/**
 * Reading a user's files with errors a user can act on: one line naming the file and the problem
 * (`/tmp: a directory, expected a file`, `cfg.json: not valid JSON (Unexpected token ...)`), as a
 * FileError (a SparseAttentionError), so every CLI command prints it without a stack trace.
 */
import { readFileSync, statSync } from 'node:fs';
import { SparseAttentionError } from './errors.js';

export class FileError extends SparseAttentionError {
  override readonly name = 'FileError';
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

const PROBLEMS: Record<string, string> = {
  ENOENT: 'no such file',
  EISDIR: 'a directory, expected a file',
  ENOTDIR: 'a path through something that is not a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
};

/** A Node file-system error as the one-line problem of `path`. */
export function fileProblem(err: unknown): string {
  const code = (err as { code?: string }).code;
  return (code && PROBLEMS[code]) ?? `cannot be read (${code ?? (err as Error).message})`;
}

export function readBytes(path: string): Uint8Array {
  try {
    // Node reads a directory as EISDIR on Linux only; ask first so every platform says the same.
    if (statSync(path).isDirectory()) throw new FileError(path, PROBLEMS.EISDIR);
    const b = readFileSync(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  } catch (err) {
    if (err instanceof FileError) throw err;
    throw new FileError(path, fileProblem(err));
  }
}

export function readText(path: string): string {
  return new TextDecoder().decode(readBytes(path));
}

/** JSON text read from `path`; a syntax error names the file. */
export function parseJsonText(path: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new FileError(path, `not valid JSON (${(err as Error).message})`);
  }
}

export function readJson(path: string): unknown {
  return parseJsonText(path, readText(path));
}
