/**
 * Where benchmark results live: bench/results/<YYYY-MM-DD>-<machine>/<file>, one folder per day
 * and machine (each with a README of what ran there and the command), and how a JSON file is
 * written (the folder made on the way, a trailing newline).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { machineTag } from './device-info.js';
import type { DeviceInfo } from './harness.js';

export const RESULTS_ROOT = 'bench/results';

/** The folder of one day's results on one machine (UTC date). */
export function resultsFolder(machine: string, date = new Date()): string {
  return `${RESULTS_ROOT}/${date.toISOString().slice(0, 10)}-${machine}`;
}

/** The default output path of a benchmark run on `device` today. */
export function defaultResultPath(file: string, device: DeviceInfo, date = new Date()): string {
  return `${resultsFolder(machineTag(device), date)}/${file}`;
}

export function writeJsonFile(path: string, data: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
}
