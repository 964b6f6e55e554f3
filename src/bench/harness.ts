/**
 * The attention benchmark harness: for each case, validate on its small twin against the CPU
 * oracle (dense attention with the block mask expanded to tokens), then plan the full-size mask
 * (estimation time), then time the kernel, then derive TFLOP/s, GB/s and the speedup over our
 * dense kernel on the same shape. A case whose validation fails is never timed.
 *
 * Targets are pluggable: a BenchTarget wraps an AttentionBackend and may offer GPU timing
 * (`timeBlockSparse`, from timestamp queries); without it the harness fences with the wall clock
 * around the awaited call. The CPU target is the reference; a GPU backend becomes a target by
 * adding one row to BENCH_TARGETS (bench-targets.ts).
 */
import type { AttentionOptions } from '../core/attention-shape.js';
import type { BlockMask } from '../core/block-mask.js';
import type { HeadTensor } from '../core/tensor.js';
import type { AttentionBackend } from '../backends/backend.js';
import type { KernelMs } from '../backends/webgpu/runtime/pass-profiler.js';
import { naiveBlockSparseAttention } from '../backends/cpu/naive-attention.js';
import { createSparseMethod, sparseMethods } from '../methods/index.js';
import type { BlockPlan, PlanOptions, SparseAttentionMethod } from '../methods/method.js';
import { type BenchCase, caseInputs, caseName, cpuPlanFlops, denseFlops, keptPairFraction, minBytes, shapeKey, sparseFlops, validationTwin } from './cases.js';

export interface DeviceInfo {
  /** GPU or CPU model. */
  name: string;
  backend: string;
  adapter?: string;
  features?: string[];
  [key: string]: unknown;
}

export interface BenchTarget {
  readonly name: string;
  readonly backend: AttentionBackend;
  describe(): Promise<DeviceInfo>;
  /** A reason when the target cannot run a case (too slow, beyond device limits); undefined when it can. */
  supports?(c: BenchCase): string | undefined;
  /**
   * ms of each of `iterations` calls on inputs already on the device, and how they were taken:
   * 'timestamp-query' (GPU timestamps around the dispatch) or 'gpu-fence' (submit, then await the
   * queue: wall clock of GPU work alone, no upload or readback). Omitted: the harness fences the
   * wall clock around the awaited blockSparseAttention call ('wall-clock', transfers included).
   * The hook does its own warm-up (the harness's would upload and read back the inputs each time).
   */
  timeBlockSparse?(q: HeadTensor, k: HeadTensor, v: HeadTensor, mask: BlockMask, opts: AttentionOptions, iterations: number): Promise<{ ms: number[]; source: TimingSource; kernelMs?: KernelMs }>;
  /**
   * The target's own mask planning (a GPU estimation kernel) and its time in ms (timed by the
   * target, so uploads can be left out; undefined: the harness's wall clock around the call), or
   * undefined when the target has no planner for this method and the method's CPU planBlockMask
   * applies. `plans(name)` says which methods it plans, before any work.
   */
  planBlockMask?(method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, opts: PlanOptions): Promise<{ plan: BlockPlan; ms?: number; kernelMs?: KernelMs } | undefined>;
  plans?(method: string): boolean;
  /**
   * For methods that compute their own output (SLA's linear part), and methods whose plan is made
   * inside the kernel (flash-skip-softmax's in-loop skip): the target's whole-method run, with the
   * mask it kept, or undefined when it has none for this method (an SLA case is then skipped).
   */
  methodAttention?(method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions): Promise<{ output: HeadTensor; plan: BlockPlan } | undefined>;
  /** Methods the target runs whole (methodAttention) although they are block-sparse: no plan step of their own. */
  runsWhole?(method: string): boolean;
  /**
   * ms of `iterations` whole-method runs on inputs already on the device, GPU work alone (the
   * target warms up first); undefined when the target has no such timer for the method (the
   * harness then fences the wall clock around methodAttention, transfers included).
   */
  timeWholeMethod?(method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, v: HeadTensor, opts: PlanOptions, iterations: number): Promise<{ ms: number[]; source: TimingSource; kernelMs?: KernelMs } | undefined>;
  dispose?(): void | Promise<void>;
}

export type TimingSource = 'timestamp-query' | 'gpu-fence' | 'wall-clock';


export interface TimingOptions {
  warmup: number;
  minIters: number;
  maxIters: number;
  /** Keep timing while the timed calls have taken less than this. */
  targetMs: number;
}

/** Above this, planning a mask in JS (~1 GFLOP/s) takes minutes: such a case needs the target's planBlockMask. */
export const CPU_PLAN_MAX_FLOPS = 2e10;

export const DEFAULT_TIMING: TimingOptions = { warmup: 2, minIters: 3, maxIters: 20, targetMs: 300 };

/** |a - e| <= atol + rtol·|e| per element, the rule of test/helpers/compare.ts TOL (src cannot import tests). */
export const VALIDATION_TOL = { f32: { atol: 1e-5, rtol: 1e-4 }, f16: { atol: 2e-3, rtol: 1e-2 } } as const;

export interface Validation {
  shape: { heads: number; kvHeads: number; length: number };
  maxAbsError: number;
  /** Normalised MSE, Σ(a-e)² / Σe² (ggml's figure). */
  nmse: number;
  outside: number;
  tolerance: { atol: number; rtol: number };
  passed: boolean;
  oracle: string;
  /** When the target planned the mask: (b, h, qb, kb) blocks kept by one plan and not the other (CPU). */
  planBlocksDifferingFromCpu?: number;
}

/** (b, h, qb, kb) blocks kept by one mask and not the other; Infinity when the grids differ. */
export function blocksDiffering(a: BlockMask, b: BlockMask): number {
  if (a.numQueryBlocks !== b.numQueryBlocks || a.numKeyBlocks !== b.numKeyBlocks) return Infinity;
  const da = a.toDense();
  const db = b.toDense();
  let n = 0;
  for (let i = 0; i < da.length; i++) if (da[i] !== db[i]) n++;
  return n;
}

export interface BenchRecord {
  name: string;
  case: BenchCase;
  target: string;
  status: 'ok' | 'skipped' | 'invalid';
  reason?: string;
  validation?: Validation;
  /** Kept / causally valid blocks. */
  density?: number;
  keptPairFraction?: number;
  estimationMs?: number;
  ms?: number;
  minMs?: number;
  iters?: number;
  timing?: TimingSource;
  flops?: number;
  denseFlops?: number;
  /** Work done (sparse FLOPs) per second. */
  tflops?: number;
  /** Dense-equivalent rate: what a dense kernel would need to match this time. */
  denseEquivalentTflops?: number;
  bytes?: number;
  gbps?: number;
  speedupOverDense?: number | null;
  /** Per-kernel GPU ms of one extra profiled run of the plan and of the timed call, where the target has timestamps. */
  planKernelMs?: KernelMs;
  kernelMs?: KernelMs;
  /** Wall time the harness spent on the case: inputs, validation, planning, timing (what a budget pays for). */
  caseWallMs?: number;
}

export function compareOutputs(actual: Float32Array, expected: Float32Array, tol: { atol: number; rtol: number }): Omit<Validation, 'shape' | 'oracle'> {
  let maxAbs = 0;
  let num = 0;
  let den = 0;
  let outside = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = actual[i] - expected[i];
    const ad = Math.abs(d);
    if (!(ad <= tol.atol + tol.rtol * Math.abs(expected[i]))) outside++;
    if (!(ad <= maxAbs)) maxAbs = Number.isNaN(ad) ? Infinity : ad;
    num += d * d;
    den += expected[i] * expected[i];
  }
  const nmse = den === 0 ? (num === 0 ? 0 : Infinity) : num / den;
  return { maxAbsError: maxAbs, nmse: Number.isNaN(nmse) ? Infinity : nmse, outside, tolerance: tol, passed: outside === 0 && actual.length === expected.length };
}

/** The small twin through the target, against the CPU oracle on identical (rounded) inputs. */
export async function validateCase(target: BenchTarget, c: BenchCase): Promise<Validation | string> {
  const twin = validationTwin(c);
  const { q, k, v } = caseInputs(twin);
  const method = createSparseMethod(c.method, c.settings);
  const opts = { causal: c.causal };
  let actual: HeadTensor;
  let expected: HeadTensor;
  let oracle: string;
  let planMismatch: number | undefined;
  if (method.attention) {
    const own = await target.methodAttention?.(method, q, k, v, opts);
    if (!own) return `${c.method} computes its own output (not block-sparse softmax alone); target "${target.name}" has no implementation of it`;
    actual = own.output;
    expected = method.attention(q, k, v, opts).output;
    oracle = `${c.method}.attention on the CPU`;
  } else if (target.runsWhole?.(c.method)) {
    // The kernel decides what it keeps as it goes: the oracle expands the tiles it reports kept.
    const own = await target.methodAttention!(method, q, k, v, opts);
    if (!own) return `target "${target.name}" said it runs ${c.method} whole, then did not`;
    actual = own.output;
    expected = naiveBlockSparseAttention(q, k, v, own.plan.mask, opts);
    oracle = 'naive attention with the kernel\'s kept tiles expanded to tokens';
    planMismatch = blocksDiffering(own.plan.mask, method.planBlockMask(q, k, opts).mask);
  } else {
    // The kernel runs the mask the target would plan (its GPU planner, if any); the oracle expands
    // that same mask. How far a target's plan departs from the CPU plan is recorded beside.
    const planned = await planOn(target, method, q, k, opts);
    const mask = planned.plan.mask;
    actual = await target.backend.blockSparseAttention(q, k, v, mask, opts);
    expected = naiveBlockSparseAttention(q, k, v, mask, opts);
    oracle = 'naive attention with the block mask expanded to tokens';
    if (planned.where === 'target') planMismatch = blocksDiffering(mask, method.planBlockMask(q, k, opts).mask);
  }
  const cmp = compareOutputs(actual.toLayout('BHLD').toFloat32Array(), expected.toLayout('BHLD').toFloat32Array(), VALIDATION_TOL[c.dtype]);
  return {
    shape: { heads: twin.heads, kvHeads: twin.kvHeads, length: twin.keyLength }, ...cmp, oracle,
    ...(planMismatch === undefined ? {} : { planBlocksDifferingFromCpu: planMismatch }),
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Wall-clock timing of an awaited call: warm-up, then at least minIters, more while under targetMs. */
export async function wallClock(call: () => Promise<unknown>, t: TimingOptions): Promise<number[]> {
  for (let i = 0; i < t.warmup; i++) await call();
  const times: number[] = [];
  let spent = 0;
  while (times.length < t.minIters || (times.length < t.maxIters && spent < t.targetMs)) {
    const t0 = performance.now();
    await call();
    const dt = performance.now() - t0;
    times.push(dt);
    spent += dt;
  }
  return times;
}

/** One timed call, for work too long to repeat (a CPU reference at long lengths): its result and ms. */
export async function timedOnce<T>(call: () => T | Promise<T>): Promise<{ result: T; ms: number }> {
  const t0 = performance.now();
  const result = await call();
  return { result, ms: performance.now() - t0 };
}

/** The target's plan when it has a planner for the method, else the method's CPU plan; with its time. */
async function planOn(target: BenchTarget, method: SparseAttentionMethod, q: HeadTensor, k: HeadTensor, opts: PlanOptions): Promise<{ plan: BlockPlan; ms: number; where: 'target' | 'cpu'; kernelMs?: KernelMs }> {
  const t0 = performance.now();
  const own = target.plans?.(method.name) ? await target.planBlockMask?.(method, q, k, opts) : undefined;
  if (own) return { plan: own.plan, ms: own.ms ?? performance.now() - t0, where: 'target', kernelMs: own.kernelMs };
  const t1 = performance.now();
  const plan = method.planBlockMask(q, k, opts);
  return { plan, ms: performance.now() - t1, where: 'cpu' };
}

/** Plans the full-size mask and times the kernel; validation has already passed. */
async function timeCase(target: BenchTarget, c: BenchCase, timing: TimingOptions, inputs: Inputs): Promise<Partial<BenchRecord>> {
  const { q, k, v } = inputs.get(c);
  const method = createSparseMethod(c.method, c.settings);
  const opts = { causal: c.causal };
  let plan: BlockPlan;
  let estimationMs: number | undefined;
  let planKernelMs: KernelMs | undefined;
  let kernelMs: KernelMs | undefined;
  let times: number[];
  let source: TimingSource = 'wall-clock';
  if (method.attention || target.runsWhole?.(c.method)) {
    // One method call: its plan (where separate) is inside the timed call, not an estimation step.
    // The plan (density) comes from one full run; the time from the target's device-resident
    // timer when it has one, else from the wall clock around whole calls.
    let last: { output: HeadTensor; plan: BlockPlan } | undefined;
    const onDevice = await target.timeWholeMethod?.(method, q, k, v, opts, Math.max(timing.minIters, 1));
    if (onDevice) {
      last = await target.methodAttention!(method, q, k, v, opts);
      ({ ms: times, source, kernelMs } = onDevice);
    } else {
      times = await wallClock(async () => { last = await target.methodAttention!(method, q, k, v, opts); }, timing);
    }
    if (!last) throw new Error(`target "${target.name}" returned no result for ${c.method}`);
    plan = last.plan;
  } else {
    ({ plan, ms: estimationMs, kernelMs: planKernelMs } = await planOn(target, method, q, k, opts));
    if (target.timeBlockSparse) {
      ({ ms: times, source, kernelMs } = await target.timeBlockSparse(q, k, v, plan.mask, opts, Math.max(timing.minIters, 1)));
    } else {
      times = await wallClock(() => target.backend.blockSparseAttention(q, k, v, plan.mask, opts), timing);
    }
  }
  const ms = median(times);
  const flops = sparseFlops(c, plan.mask);
  const dense = denseFlops(c);
  const bytes = minBytes(c);
  return {
    density: plan.mask.density, keptPairFraction: keptPairFraction(plan.mask), estimationMs, ms, minMs: Math.min(...times), iters: times.length, timing: source,
    ...(planKernelMs ? { planKernelMs } : {}), ...(kernelMs ? { kernelMs } : {}),
    flops, denseFlops: dense, tflops: flops / (ms * 1e9), denseEquivalentTflops: dense / (ms * 1e9), bytes, gbps: bytes / (ms * 1e6),
  };
}

/** Full-size inputs of the last shape: consecutive cases of a sweep differ only in the method. */
class Inputs {
  private key = '';
  private qkv?: ReturnType<typeof caseInputs>;

  get(c: BenchCase): ReturnType<typeof caseInputs> {
    if (!this.qkv || this.key !== shapeKey(c)) {
      this.qkv = undefined; // let the previous shape's tensors go before building the next
      this.qkv = caseInputs(c);
      this.key = shapeKey(c);
    }
    return this.qkv;
  }
}

export interface RunOptions {
  timing?: TimingOptions;
  /** Wall-clock budget for the whole run (device time is scarce): later cases are skipped, with that reason. */
  budgetMs?: number;
  /** Called before each case (progress line). */
  onCase?: (c: BenchCase, index: number, total: number) => void;
}

/** Validate-then-time every case; speedups over the dense case of the same shape are filled in at the end. */
export async function runBench(target: BenchTarget, cases: readonly BenchCase[], o: RunOptions = {}): Promise<BenchRecord[]> {
  const timing = o.timing ?? DEFAULT_TIMING;
  const records: BenchRecord[] = [];
  const inputs = new Inputs();
  const started = performance.now();
  for (const [i, c] of cases.entries()) {
    o.onCase?.(c, i, cases.length);
    const base: BenchRecord = { name: caseName(c), case: c, target: target.name, status: 'skipped' };
    records.push(base);
    const caseStart = performance.now();
    if (o.budgetMs !== undefined && performance.now() - started >= o.budgetMs) {
      base.reason = `time budget of ${(o.budgetMs / 1000).toFixed(0)} s spent`;
      continue;
    }
    if (!sparseMethods.has(c.method)) {
      base.reason = `method "${c.method}" is not registered in this build`;
      continue;
    }
    const unsupported = target.supports?.(c);
    if (unsupported) {
      base.reason = unsupported;
      continue;
    }
    const planFlops = cpuPlanFlops(c);
    if (!target.plans?.(c.method) && !target.runsWhole?.(c.method) && planFlops > CPU_PLAN_MAX_FLOPS) {
      base.reason = `planning the ${c.method} mask on the CPU is ~${(planFlops / 1e9).toFixed(0)} GFLOP; target "${target.name}" does not plan it`;
      continue;
    }
    const validation = await validateCase(target, c);
    if (typeof validation === 'string') {
      base.reason = validation;
      continue;
    }
    base.validation = validation;
    if (!validation.passed) {
      base.status = 'invalid';
      base.reason = `validation failed: ${validation.outside} values outside tolerance, max abs error ${validation.maxAbsError.toExponential(2)}`;
      continue;
    }
    Object.assign(base, await timeCase(target, c, timing, inputs), { status: 'ok', caseWallMs: performance.now() - caseStart });
  }
  fillSpeedups(records);
  return records;
}

/** speedupOverDense = ms of the dense case with the same shape, dtype, causality and input / ms of this one. */
export function fillSpeedups(records: BenchRecord[]): void {
  const dense = new Map<string, number>();
  for (const r of records) if (r.status === 'ok' && r.case.method === 'dense' && r.ms) dense.set(`${r.target}|${shapeKey(r.case)}`, r.ms);
  for (const r of records) {
    if (r.status !== 'ok' || !r.ms) continue;
    const d = dense.get(`${r.target}|${shapeKey(r.case)}`);
    r.speedupOverDense = d === undefined ? null : d / r.ms;
  }
}
