/**
 * Measuring every head of a capture on a grid of knob values: the cost of per-head calibration in
 * target mode (sparse against dense attention per head, on the CPU). Each head is independent, so a
 * `GridMeasurer` may spread heads over threads (per-head-pool.ts, Node); `serialGridMeasurer` runs
 * them here. Both measure with `HeadProblem`, so they give identical points.
 */
import { headSlice, kvHead } from '../methods/per-head.js';
import { sparseMethods } from '../methods/index.js';
import { type CapturedHeads, HeadProblem } from './per-head.js';

/** One (module, query head): its captured calls cut to that head (q) and its KV head (k, v). */
export interface HeadGridJob {
  module: string;
  head: number;
  calls: Omit<CapturedHeads, 'module'>[];
}

export interface HeadGridRequest {
  method: string;
  version?: string;
  /** Settings every head shares; the knob is set per grid value. */
  base: Record<string, unknown>;
  run: { causal: boolean; scale?: number };
  grid: readonly number[];
}

export interface HeadGridPoint {
  value: number;
  sparsity: number;
  error: number;
  validBlocks: number;
  /** L2 norm of the head's dense output over its calls. */
  denseNorm?: number;
}

/** Points of every job, in job order, each in grid order. */
export type GridMeasurer = (request: HeadGridRequest, jobs: readonly HeadGridJob[], progress?: (done: number, total: number) => void) => Promise<HeadGridPoint[][]>;

/** One job per (module, query head) of the captured calls, in module order then head order. */
export function headGridJobs(captured: readonly CapturedHeads[]): HeadGridJob[] {
  const byModule = new Map<string, CapturedHeads[]>();
  for (const c of captured) byModule.set(c.module, [...(byModule.get(c.module) ?? []), c]);
  const jobs: HeadGridJob[] = [];
  for (const [module, calls] of byModule) {
    for (let h = 0; h < calls[0].q.heads; h++) {
      jobs.push({
        module, head: h,
        calls: calls.map(({ q, k, v, rowsAfter, promptRowsAfter }) => {
          const kh = kvHead(h, q.heads, k.heads);
          return { q: headSlice(q, h), k: headSlice(k, kh), v: headSlice(v, kh), rowsAfter, promptRowsAfter };
        }),
      });
    }
  }
  return jobs;
}

/** One job's points (a one-head problem: head 0 of one-head tensors). */
export function measureHeadGrid(request: HeadGridRequest, job: HeadGridJob): HeadGridPoint[] {
  const descriptor = sparseMethods.descriptor(request.method, request.version);
  const problem = new HeadProblem(job.module, 0, job.calls.map((c) => ({ module: job.module, ...c })), descriptor, request.base, request.run);
  return request.grid.map((value) => ({ value, ...problem.at(value) }));
}

export const serialGridMeasurer: GridMeasurer = async (request, jobs, progress) => {
  const out: HeadGridPoint[][] = [];
  for (const job of jobs) {
    out.push(measureHeadGrid(request, job));
    progress?.(out.length, jobs.length);
  }
  return out;
};
