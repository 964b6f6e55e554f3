/**
 * Worker of per-head-pool.ts: measures one head's grid per message. Only built-in methods exist
 * here (the pool measures others on the calling thread).
 */
import { parentPort } from 'node:worker_threads';
import { HeadTensor, type HeadTensorShape, type Layout } from '../core/tensor.js';
import { type HeadGridRequest, measureHeadGrid } from './per-head-grid.js';

export interface WireTensor {
  shape: HeadTensorShape;
  layout: Layout;
  data: Float32Array | Uint16Array;
}

export interface WorkerJob {
  id: number;
  request: HeadGridRequest;
  module: string;
  head: number;
  calls: { q: WireTensor; k: WireTensor; v: WireTensor; rowsAfter?: number; promptRowsAfter?: number }[];
}

const tensor = (t: WireTensor) => new HeadTensor(t.shape, t.data, t.layout);

parentPort?.on('message', (job: WorkerJob) => {
  try {
    const calls = job.calls.map((c) => ({ q: tensor(c.q), k: tensor(c.k), v: tensor(c.v), rowsAfter: c.rowsAfter, promptRowsAfter: c.promptRowsAfter }));
    parentPort!.postMessage({ id: job.id, points: measureHeadGrid(job.request, { module: job.module, head: job.head, calls }) });
  } catch (err) {
    parentPort!.postMessage({ id: job.id, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  }
});
