/**
 * `sparse-attention/bench`: benchmark cases with their FLOPs and bytes, the validate → time → JSON
 * harness, the named sweeps and the bench targets (one per backend).
 */
export {
  benchCase, caseName, caseInputs, cpuPlanFlops, denseFlops, sparseFlops, keptPairFraction, minBytes, validationTwin, randomCausalBlockMask,
  type BenchCase, type CaseSpec, type InputKind,
} from './cases.js';
export {
  runBench, validateCase, compareOutputs, fillSpeedups, CPU_PLAN_MAX_FLOPS, DEFAULT_TIMING, VALIDATION_TOL,
  type BenchTarget, type BenchRecord, type DeviceInfo, type TimingOptions, type TimingSource, type Validation,
} from './harness.js';
export { SWEEPS, issue8Sweep, smokeSweep, h100Sweep, menuVariants, smokeVariants, type MethodVariant, type SweepOptions } from './sweeps.js';
export { BENCH_TARGETS, benchTarget, cpuTarget } from './targets.js';
