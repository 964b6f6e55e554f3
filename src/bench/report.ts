/**
 * The benchmark's JSON and its printed tables. Peer results (bench/peers/sdpa.py,
 * bench/peers/ort/ort-attention.mjs, or a file bundling several under `peers`) are merged in by
 * path: kept whole under `peers`, and flattened into rows so each of our records lists the peer
 * figures at the same shape beside its own.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { InvalidArgumentError } from '../core/errors.js';
import { formatTable } from '../core/stats.js';
import { type BenchRecord, type DeviceInfo, fillSpeedups, type TimingOptions } from './harness.js';
import { writeJsonFile } from './results.js';

/** How TFLOP/s are counted everywhere (bench/peers/sdpa.py too), so rates compare across tools. */
export const FLOP_RULE = 'dense 4·B·H·Lq·Lk·D (halved when causal); sparse = dense × kept fraction of visible token pairs';

/** One peer timing at one shape, whatever tool produced it. */
export interface PeerRow {
  peer: string;
  dtype: string;
  heads: number;
  kvHeads: number;
  headDim: number;
  causal: boolean;
  length: number;
  ms: number;
  tflops: number;
  /** Where ms comes from: CUDA events, GPU timestamp queries, or a fenced wall clock. */
  timing: string;
  validated: boolean;
}

export interface BenchReport {
  tool: 'sparse-attention bench';
  date: string;
  device: DeviceInfo;
  flopRule: string;
  timing: TimingOptions;
  records: (BenchRecord & { peers?: PeerRow[] })[];
  peerRows: PeerRow[];
  peers: { source: string; data: unknown }[];
  /** When the report merges earlier ones (`bench --from`): their files, in order. */
  sources?: string[];
  /** The command that made the report (set by `sparse-attn bench`). */
  command?: string;
}

const DTYPE_ALIASES: Record<string, string> = { float16: 'f16', f16: 'f16', bfloat16: 'bf16', bf16: 'bf16', float32: 'f32', f32: 'f32' };

type Json = Record<string, unknown>;

function rowsOfSdpa(doc: Json): PeerRow[] {
  const rows: PeerRow[] = [];
  for (const r of (doc.results as Json[]) ?? []) {
    for (const s of (r.shapes as Json[]) ?? []) {
      rows.push({
        peer: `sdpa-${r.backend}`, dtype: DTYPE_ALIASES[r.dtype as string] ?? String(r.dtype), heads: r.heads as number, kvHeads: r.kvHeads as number,
        headDim: r.headDim as number, causal: r.causal as boolean, length: s.length as number, ms: s.ms as number, tflops: s.tflops as number,
        timing: 'cuda-events', validated: (r.validation as Json | undefined)?.passed === true,
      });
    }
  }
  return rows;
}

function rowsOfOrt(doc: Json): PeerRow[] {
  const rows: PeerRow[] = [];
  for (const r of (doc.results as Json[]) ?? []) {
    for (const s of (r.shapes as Json[]) ?? []) {
      // GPU time of the attention kernels when the profiler gave it; else the fenced wall clock.
      const gpu = (s.attentionKernelMs ?? s.kernelMs) as number | null;
      const ms = gpu ?? (s.wallMs as number);
      rows.push({
        peer: `ort-webgpu-${r.op === 'GroupQueryAttention' ? 'gqa' : 'mha'}`, dtype: DTYPE_ALIASES[r.dtype as string] ?? String(r.dtype),
        heads: r.heads as number, kvHeads: r.kvHeads as number, headDim: r.headDim as number, causal: r.causal as boolean,
        length: s.length as number, ms, tflops: (s.flops as number) / (ms * 1e9), timing: gpu ? 'timestamp-query' : 'wall-clock',
        validated: (r.validation as Json | undefined)?.passed === true,
      });
    }
  }
  return rows;
}

/** Rows of one peer document (recognised by its `peer` field), or of every document under `peers`. */
export function peerRowsOf(doc: unknown): PeerRow[] {
  const d = doc as Json;
  if (Array.isArray(d?.peers)) return (d.peers as unknown[]).flatMap(peerRowsOf);
  if (typeof d?.peer !== 'string') return [];
  if (d.peer === 'pytorch-sdpa') return rowsOfSdpa(d);
  if (d.peer.startsWith('onnxruntime')) return rowsOfOrt(d);
  return [];
}

export function loadPeerFiles(paths: readonly string[]): { source: string; data: unknown }[] {
  return paths.map((source) => {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(source, 'utf8'));
    } catch (err) {
      throw new InvalidArgumentError('--peers', source, `a readable JSON file (${(err as Error).message})`);
    }
    if (peerRowsOf(data).length === 0) throw new InvalidArgumentError('--peers', source, 'a peer result JSON (from bench/peers/) with at least one timed shape');
    return { source, data };
  });
}

function samePeerShape(r: BenchRecord, p: PeerRow): boolean {
  const c = r.case;
  return c.heads === p.heads && c.kvHeads === p.kvHeads && c.headDim === p.headDim && c.causal === p.causal
    && c.queryLength === p.length && c.keyLength === p.length && c.dtype === p.dtype;
}

export function buildReport(device: DeviceInfo, timing: TimingOptions, records: BenchRecord[], peers: { source: string; data: unknown }[], date = new Date()): BenchReport {
  const peerRows = peers.flatMap((p) => peerRowsOf(p.data));
  return {
    tool: 'sparse-attention bench',
    date: date.toISOString(),
    device,
    flopRule: FLOP_RULE,
    timing,
    records: records.map((r) => {
      const beside = peerRows.filter((p) => samePeerShape(r, p));
      return beside.length ? { ...r, peers: beside } : r;
    }),
    peerRows,
    peers,
  };
}

const fmt = (x: number | null | undefined, digits: number) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
/** Rates span 1e-4 (CPU, tiny shapes) to 1e3 (H100): three significant digits either way. */
const rate = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toPrecision(3));

export function formatRecords(records: readonly BenchRecord[]): string {
  return formatTable(
    ['case', 'density', 'est ms', 'ms', 'TFLOP/s', 'dense-eq TFLOP/s', 'GB/s', 'vs dense', 'max err', 'note'],
    records.map((r) => [
      r.name, fmt(r.density, 3), fmt(r.estimationMs, 1), fmt(r.ms, 3), rate(r.tflops), rate(r.denseEquivalentTflops), rate(r.gbps),
      r.speedupOverDense ? `${r.speedupOverDense.toFixed(2)}x` : '-', r.validation ? r.validation.maxAbsError.toExponential(1) : '-',
      r.status === 'ok' ? (r.timing ?? '') : `${r.status}: ${r.reason ?? ''}`,
    ]),
  );
}

export function formatPeerRows(rows: readonly PeerRow[]): string {
  return formatTable(
    ['peer', 'dtype', 'H/Hkv', 'D', 'causal', 'L', 'ms', 'TFLOP/s', 'timing', 'validated'],
    rows.map((p) => [p.peer, p.dtype, `${p.heads}/${p.kvHeads}`, String(p.headDim), p.causal ? 'yes' : 'no', String(p.length), fmt(p.ms, 3), fmt(p.tflops, 1), p.timing, p.validated ? 'yes' : 'NO']),
  );
}

/**
 * Our records of earlier reports as one list (`bench --from a.json,b.json`): a later file's record
 * of the same target and case replaces an earlier one unless it was not timed (skipped, invalid)
 * and the earlier one was; speedups over dense are recomputed over the merged list.
 */
export function mergeReportRecords(sources: { source: string; data: unknown }[]): BenchRecord[] {
  const merged = new Map<string, BenchRecord>();
  for (const { source, data } of sources) {
    const records = (data as Partial<BenchReport> | null)?.records;
    if (!Array.isArray(records)) throw new InvalidArgumentError('--from', source, 'a report written by sparse-attn bench --out (it has "records")');
    for (const r of records) {
      const { peers: _beside, speedupOverDense: _speedup, ...own } = r;
      const key = `${own.target}|${own.name}`;
      const before = merged.get(key);
      if (before && before.status === 'ok' && own.status !== 'ok') continue;
      merged.set(key, own);
    }
  }
  const out = [...merged.values()];
  fillSpeedups(out);
  return out;
}

export function loadReportFiles(paths: readonly string[]): { source: string; data: unknown }[] {
  return paths.map((source) => {
    try {
      return { source, data: JSON.parse(readFileSync(source, 'utf8')) as unknown };
    } catch (err) {
      throw new InvalidArgumentError('--from', source, `a readable JSON file (${(err as Error).message})`);
    }
  });
}

/**
 * The JSON of a bench/ script: what ran (benchmark, command line), when, on which device, then
 * the script's own fields (shapes, validation, rows with ms and TFLOP/s).
 */
export interface ScriptReport {
  tool: 'sparse-attention bench';
  benchmark: string;
  date: string;
  device: DeviceInfo;
  command: string;
  [field: string]: unknown;
}

/** Words as one shell command line, quoted where needed. */
export function shellWords(words: readonly string[]): string {
  return words.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The command line that reproduces this script run, from the directory it ran in. */
export function commandLine(argv: readonly string[] = process.argv): string {
  const script = argv[1] ? relative(process.cwd(), argv[1]) || argv[1] : '';
  return shellWords(['node', script, ...argv.slice(2)].filter(Boolean));
}

export function scriptReport(benchmark: string, device: DeviceInfo, fields: Record<string, unknown>, date = new Date()): ScriptReport {
  return { tool: 'sparse-attention bench', benchmark, date: date.toISOString(), device, command: commandLine(), ...fields };
}

/** Writes the report to `out` when given; prints it when there is no file, or also with `print`. */
export function emitReport(report: ScriptReport, o: { out?: string; print?: boolean } = {}): void {
  if (o.out) {
    writeJsonFile(o.out, report);
    console.error(`wrote ${o.out}`);
  }
  if (!o.out || o.print) console.log(JSON.stringify(report, null, 2));
}
