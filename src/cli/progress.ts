/**
 * A one-line progress bar on stderr: `[#######.......] 12/40  30%  eta 5m10s  L=4096 xattention ~50%`.
 * Redrawn in place on a terminal; on a pipe or file, one line per update at most every 10 s, so
 * logs stay short.
 */
export class ProgressBar {
  private readonly start = Date.now();
  private lastLog = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly width = 24,
  ) {}

  update(done: number, total: number, label: string): void {
    const frac = total === 0 ? 1 : Math.min(1, done / total);
    const filled = Math.round(frac * this.width);
    const elapsed = (Date.now() - this.start) / 1000;
    const eta = done > 0 ? (elapsed / done) * (total - done) : NaN;
    const line = `[${'#'.repeat(filled)}${'.'.repeat(this.width - filled)}] ${done}/${total} ${(frac * 100).toFixed(0).padStart(3)}%  ` +
      `${formatDuration(elapsed)} elapsed, eta ${Number.isFinite(eta) ? formatDuration(eta) : '?'}  ${label}`;
    if (this.stream.isTTY) {
      this.stream.write(`\r${line.slice(0, (this.stream.columns ?? 120) - 1)}\x1b[K`);
    } else if (Date.now() - this.lastLog > 10_000 || done === total) {
      this.stream.write(`${line}\n`);
      this.lastLog = Date.now();
    }
  }

  finish(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
