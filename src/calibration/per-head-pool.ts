/**
 * A GridMeasurer over worker threads (Node): heads are measured in parallel, `workers` at a time,
 * with the same HeadProblem the serial measurer uses, so the points are identical. Methods that are
 * not built in (registered at run time, unknown to a fresh worker) are measured on this thread.
 */
import { Worker } from 'node:worker_threads';
import { SparseAttentionError } from '../core/errors.js';
import type { HeadTensor } from '../core/tensor.js';
import { BUILTIN_METHODS } from '../methods/index.js';
import { type GridMeasurer, type HeadGridPoint, serialGridMeasurer } from './per-head-grid.js';
import type { WireTensor, WorkerJob } from './per-head-worker.js';

const wire = (t: HeadTensor): WireTensor => ({ shape: t.shape, layout: t.layout, data: t.data });

export function workerGridMeasurer(workers: number): GridMeasurer {
  return async (request, jobs, progress) => {
    const builtin = BUILTIN_METHODS.some((d) => d.name === request.method);
    if (workers <= 1 || jobs.length <= 1 || !builtin) return serialGridMeasurer(request, jobs, progress);
    const out: HeadGridPoint[][] = new Array(jobs.length);
    let next = 0;
    let done = 0;
    const pool = Array.from({ length: Math.min(workers, jobs.length) }, () => new Worker(new URL('./per-head-worker.js', import.meta.url)));
    try {
      await Promise.all(pool.map((worker) => new Promise<void>((resolve, reject) => {
        const send = () => {
          if (next >= jobs.length) return resolve();
          const id = next++;
          const job = jobs[id];
          const msg: WorkerJob = { id, request, module: job.module, head: job.head, calls: job.calls.map((c) => ({ q: wire(c.q), k: wire(c.k), v: wire(c.v), rowsAfter: c.rowsAfter, promptRowsAfter: c.promptRowsAfter })) };
          worker.postMessage(msg);
        };
        worker.on('message', (m: { id: number; points?: HeadGridPoint[]; error?: string }) => {
          if (m.error !== undefined) return reject(new SparseAttentionError(`per-head grid of ${jobs[m.id].module} head ${jobs[m.id].head}: ${m.error}`));
          out[m.id] = m.points!;
          progress?.(++done, jobs.length);
          send();
        });
        worker.on('error', reject);
        send();
      })));
    } finally {
      await Promise.all(pool.map((w) => w.terminate()));
    }
    return out;
  };
}
