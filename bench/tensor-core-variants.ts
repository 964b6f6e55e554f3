/**
 * Chooses the tensor-core attention variant by measurement: for every variant of a set, validate on a small GQA shape against the CPU reference (random and ramped logits),
 * then time dense causal and block-sparse attention on device-resident f16 operands
 * (B=1, H=32, Hkv=8, D from --head-dims) with a queue fence. Writes JSON.
 *
 *   node dist/bench/tensor-core-variants.js [--lengths 8192,32768] [--head-dims 128,64] [--set staging|tiles|order|keys|split|rule|clamp|rulediag|grid|orders] [--masks dense,random,trishape,trishape-blocks] [--reps 3] [--out result.json]
 */
import { parseArgs } from 'node:util';
import { flashAttention } from '../src/backends/cpu/flash-attention.js';
import { type AttentionDispatchOptions, createOutputTensor, createWebGpuContext, encodeAttention, uploadArray, uploadTensor } from '../src/backends/webgpu/index.js';
import { runAttentionOnHost } from '../src/backends/webgpu/attention/block-sparse-attention.js';
import { hasTensorCores } from '../src/backends/webgpu/runtime/webgpu-device.js';
import type { TensorCoreOptions } from '../src/backends/webgpu/attention/attention-views.js';
import { attentionFlops, randomCausalBlockMask, tflopsOf } from '../src/bench/cases.js';
import { checkOutput } from '../src/bench/check.js';
import { webgpuDeviceInfo } from '../src/bench/device-info.js';
import { timeOnDevice, timerRuns } from '../src/bench/gpu-timing.js';
import { emitReport, scriptReport } from '../src/bench/report.js';
import { HeadTensor } from '../src/core/tensor.js';
import { TRI_SHAPE_DEFAULTS, triShapeBlockMask, triShapeTokenRule } from '../src/methods/tri-shape/tri-shape.js';

const { values } = parseArgs({ options: { lengths: { type: 'string', default: '8192,32768' }, reps: { type: 'string', default: '3' }, 'head-dims': { type: 'string', default: '128' }, set: { type: 'string', default: 'staging' }, masks: { type: 'string', default: 'dense,random' }, out: { type: 'string' } } });
type Variant = Required<Omit<TensorCoreOptions, 'diag' | 'emulate' | 'voteFirst' | 'prefetchClamp' | 'ruleExpression' | 'ruleRowwise'>> & Pick<TensorCoreOptions, 'diag' | 'prefetchClamp' | 'ruleExpression' | 'ruleRowwise'>;
// --set order: skipping the tiles no row of a workgroup sees and heavy-first workgroup order against
// neither (the block-sparse rows and tri-shape's mask with its token rule show the skip).
// --set keys: 32- against 16-key tiles with both. --set split: whole tiles on a copy of the softmax
// loops without the per-score test, against one loop testing per score, at 16 and 32 keys.
// --set rule: the default without hidden-tile skipping and/or heavy-first order (with --masks
// trishape,trishape-blocks: which part of tri-shape's token rule costs what). --masks trishape-blocks: tri-shape's block mask
// without its token rule (what the rule's per-score test and whole-tile checks cost; output differs).
// --set staging (default): synchronous staging of 64-key tiles (the default until 2026-12-04)
// against prefetched staging, 32-key tiles and 8 subgroups staged, with the stage-dropping
// diagnostics; --set tiles: the default against 16-key tiles and 8 subgroups; --set orders: the bank-conflict orders,
// unstaged and 8 unstaged subgroups of 2026-12-03. Diagnostic rows are timed dense only and not
// validated: their output is wrong by design.
const BASE = { passes: 1, subgroups: 4, stage: true, swizzle: 'scores', interleave: true, keyTile: 64, prefetch: false, skipHidden: false, heavyFirst: false, headsInner: false, splitFull: false } as const;
// The dispatcher's default of 2026-12-04 (before hidden-tile skipping and heavy-first order).
const DEFAULT: Variant = { ...BASE, keyTile: 32, prefetch: true };
// With hidden-tile skipping and heavy-first order (defaults since 2026-12-04's second session; the
// dispatcher's key tile is now 16 with 4 subgroups, the 'keys' set's second row).
const DEFAULT2: Variant = { ...DEFAULT, skipHidden: true, heavyFirst: true };
// With 16-key tiles and whole tiles on a copy of the softmax loops without the per-score test
// (the dispatcher's default early in 2026-12-04's third session; since, hidden-tile skipping is
// off: the 'rule' set's second row).
const DEFAULT3: Variant = { ...DEFAULT2, keyTile: 16, splitFull: true };
// Heads innermost in the grid, so every head's heaviest query tile starts first (the dispatcher's
// default since 2026-12-04's seventh session, with hidden-tile skipping off).
const DEFAULT4: Variant = { ...DEFAULT3, skipHidden: false, headsInner: true };
const diags = (v: Variant): Variant[] => [{ ...v, diag: 'no-softmax' }, { ...v, diag: 'no-mma' }];
const SETS: Record<string, Variant[]> = {
  staging: [
    BASE, { ...BASE, prefetch: true }, { ...BASE, keyTile: 32 }, { ...BASE, keyTile: 32, prefetch: true },
    { ...BASE, subgroups: 8, keyTile: 32 }, { ...BASE, subgroups: 8, keyTile: 32, prefetch: true },
    ...diags(BASE), ...diags({ ...BASE, prefetch: true }), ...diags({ ...BASE, subgroups: 8, keyTile: 32, prefetch: true }),
  ],
  tiles: [
    DEFAULT, { ...DEFAULT, keyTile: 16 }, { ...DEFAULT, subgroups: 8 }, { ...DEFAULT, subgroups: 8, keyTile: 16 },
    ...diags(DEFAULT), ...diags({ ...DEFAULT, keyTile: 16 }),
  ],
  order: [
    DEFAULT2, { ...DEFAULT2, skipHidden: false }, { ...DEFAULT2, heavyFirst: false }, DEFAULT,
    { ...DEFAULT2, keyTile: 16 }, { ...DEFAULT2, subgroups: 8 },
  ],
  keys: [DEFAULT2, { ...DEFAULT2, keyTile: 16 }],
  rule: [DEFAULT3, { ...DEFAULT3, skipHidden: false }, { ...DEFAULT3, heavyFirst: false }, { ...DEFAULT3, skipHidden: false, heavyFirst: false }],
  // The dispatcher's default since the third session (no hidden-tile skipping) against the next K tile's loads clamped.
  clamp: [{ ...DEFAULT3, skipHidden: false }, { ...DEFAULT3, skipHidden: false, prefetchClamp: true }],
  // Tri-shape's rule split (--masks trishape,trishape-blocks): its whole-tile test alone, its per-score test alone.
  // With the rule's per-score test as one expression (ruleExpression), with rowwise tiles testing a per-row
  // constant (ruleRowwise), both (not measured yet).
  rulediag: [
    { ...DEFAULT3, skipHidden: false }, { ...DEFAULT3, skipHidden: false, ruleExpression: true },
    { ...DEFAULT3, skipHidden: false, ruleRowwise: true }, { ...DEFAULT3, skipHidden: false, ruleExpression: true, ruleRowwise: true },
    { ...DEFAULT3, skipHidden: false, diag: 'rule-causal-scores' }, { ...DEFAULT3, skipHidden: false, diag: 'rule-causal-tiles' },
  ],
  // Heads innermost in the grid (every head's heaviest query tile first) against query tiles innermost,
  // alone and with the rule variants (--masks dense,random,trishape,trishape-blocks).
  grid: [
    { ...DEFAULT4, headsInner: false }, DEFAULT4, { ...DEFAULT4, ruleRowwise: true }, { ...DEFAULT4, ruleExpression: true },
  ],
  split: [DEFAULT3, { ...DEFAULT3, splitFull: false }, { ...DEFAULT3, keyTile: 32 }, { ...DEFAULT3, keyTile: 32, splitFull: false }],
  orders: [
    BASE, { ...BASE, interleave: false }, { ...BASE, swizzle: 'none' }, { ...BASE, swizzle: 'both' },
    { ...BASE, stage: false }, { ...BASE, stage: false, interleave: false }, { ...BASE, stage: false, swizzle: 'none' },
    { ...BASE, passes: 2, subgroups: 8, stage: false },
    ...diags(BASE), ...diags({ ...BASE, stage: false }),
  ],
};
const VARIANTS = SETS[values.set!];
if (!VARIANTS) throw new Error(`--set ${values.set}: one of ${Object.keys(SETS).join(', ')}`);

const ctx = await createWebGpuContext();
if (!hasTensorCores(ctx.device)) throw new Error(`adapter "${ctx.report.description}" has no f16→f32 subgroup matrices`);
const { device } = ctx;
const [H, Hkv] = [32, 8];
const HEAD_DIMS = values['head-dims']!.split(',').map(Number);

async function validate(tc: Variant, D: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const ramp of [false, true]) {
    const L = 512; // a multiple of 128 rows (8 subgroups × 16)
    const q = HeadTensor.randn({ batch: 1, heads: 4, length: L, headDim: D }, 1, { dtype: 'f16' });
    const k0 = HeadTensor.randn({ batch: 1, heads: 2, length: L, headDim: D }, 2);
    const kd = k0.data as Float32Array;
    if (ramp) for (let h = 0; h < 2; h++) for (let j = 0; j < L; j++) for (let d = 0; d < D; d++) kd[k0.offset(0, h, j) + d] *= 1 + j / 24;
    const k = k0.toDType('f16');
    const v = HeadTensor.randn({ batch: 1, heads: 2, length: L, headDim: D }, 3, { dtype: 'f16' });
    const got = await runAttentionOnHost(ctx, q, k, v, { causal: true, scale: 1 / Math.sqrt(D), kernel: 'tensor-core', tensorCore: tc, label: 'tc-variants' });
    out[ramp ? 'ramp' : 'random'] = checkOutput(`${JSON.stringify(tc)} ramp=${ramp}`, got, flashAttention(q, k, v, { causal: true }), 3e-3).relativeL2;
  }
  return out;
}

const date = new Date();
const validation: unknown[] = [];
const rows: unknown[] = [];
// A variant that fails to compile or to validate is recorded and left out of the timing.
const failed = new Set<string>();
for (const D of HEAD_DIMS)
  for (const tc of VARIANTS.filter((x) => !x.diag)) {
    let entry: Record<string, unknown>;
    try {
      entry = { headDim: D, ...tc, relativeL2: await validate(tc, D) };
    } catch (err) {
      failed.add(JSON.stringify(tc));
      entry = { headDim: D, ...tc, error: String((err as Error).message ?? err).slice(0, 2000) };
    }
    validation.push(entry);
    console.error(JSON.stringify(entry));
  }
for (const D of HEAD_DIMS)
for (const L of values.lengths!.split(',').map(Number)) {
  const t0 = performance.now();
  const views = {
    q: uploadTensor(device, HeadTensor.randn({ batch: 1, heads: H, length: L, headDim: D }, 1, { dtype: 'f16' }), 'tcv.q'),
    k: uploadTensor(device, HeadTensor.randn({ batch: 1, heads: Hkv, length: L, headDim: D }, 2, { dtype: 'f16' }), 'tcv.k'),
    v: uploadTensor(device, HeadTensor.randn({ batch: 1, heads: Hkv, length: L, headDim: D }, 3, { dtype: 'f16' }), 'tcv.v'),
    o: createOutputTensor(device, { batch: 1, heads: H, length: L, headDim: D }, 'BHLD', 'f16', 'tcv.o'),
  };
  // 128×128 blocks (XAttention's and tri-shape's block size): every variant, 8 subgroups too, takes them.
  const mask = randomCausalBlockMask({ batch: 1, heads: H, queryLength: L, keyLength: L, blockRows: 128, blockCols: 128, causal: true }, 0.1, 7);
  // Tri-shape's mask at its defaults (sink 128, window 3968, last 100 rows dense), with its token rule.
  const tri = triShapeBlockMask({ batch: 1, heads: H, queryLength: L, keyLength: L, blockRows: 128, blockCols: 128 }, TRI_SHAPE_DEFAULTS);
  const lists = {
    random: { mask, rowPtr: uploadArray(device, mask.rowPtr, 'tcv.rowPtr'), colIdx: uploadArray(device, mask.colIdx, 'tcv.colIdx') },
    trishape: { mask: tri, rowPtr: uploadArray(device, tri.rowPtr, 'tcv.triRowPtr'), colIdx: uploadArray(device, tri.colIdx, 'tcv.triColIdx') },
  };
  const MASKS = values.masks!.split(',') as ('dense' | 'random' | 'trishape' | 'trishape-blocks')[];
  console.error(`L=${L}: inputs in ${(performance.now() - t0).toFixed(0)} ms`);
  const flops = attentionFlops({ batch: 1, heads: H, queryLength: L, keyLength: L, headDim: D, causal: true });
  for (const tc of VARIANTS.filter((x) => !failed.has(JSON.stringify({ ...x, diag: undefined })) && !failed.has(JSON.stringify(x))))
    // Stage-dropping diagnostics time dense only; the rule's run on the masks asked for.
    for (const kind of tc.diag && !tc.diag.startsWith('rule-') ? ['dense' as const] : MASKS) {
      const list = kind === 'dense' ? undefined : lists[kind === 'trishape-blocks' ? 'trishape' : kind];
      const opts: AttentionDispatchOptions = {
        causal: true, scale: 1 / Math.sqrt(D), kernel: 'tensor-core', tensorCore: tc,
        blocks: list ? { kind: 'csr', rowPtr: list.rowPtr, colIdx: list.colIdx, blockRows: 128, blockCols: 128 } : { kind: 'all' },
        ...(kind === 'trishape' ? { tokenRule: triShapeTokenRule(TRI_SHAPE_DEFAULTS) } : {}),
      };
      let t: Awaited<ReturnType<typeof timeOnDevice>>;
      try {
        t = await timeOnDevice(device, (encoder) => encodeAttention(device, encoder, views, opts), timerRuns(ctx, Number(values.reps)));
      } catch (err) { // a variant that refuses the shape
        rows.push({ L, headDim: D, ...tc, kernel: kind, error: String((err as Error).message ?? err) });
        continue;
      }
      const density = list ? list.mask.density : 1;
      const row = {
        L, headDim: D, ...tc, kernel: kind === 'random' ? 'block-sparse' : kind, density, ms: t.ms, tflops: tflopsOf(flops * density, t.ms), denseEquivalentTflops: tflopsOf(flops, t.ms),
        minMs: t.minMs, ...(t.kernelMs ? { kernelMs: t.kernelMs } : {}),
      };
      console.error(JSON.stringify(row));
      rows.push(row);
    }
  for (const t of [views.q, views.k, views.v, views.o]) t.buffer.destroy();
  for (const l of Object.values(lists)) { l.rowPtr.destroy(); l.colIdx.destroy(); }
}
const report = scriptReport('tensor-core-variants', webgpuDeviceInfo(ctx.report), {
  flopRule: 'dense causal 4·B·H·L²·D/2; tflops counts the kept fraction of blocks, denseEquivalentTflops the dense FLOPs',
  timing: 'gpu-fence: median of --reps runs on device-resident inputs, after the warm-up (src/bench/gpu-timing.ts)',
  adapter: ctx.report, shape: { batch: 1, heads: H, kvHeads: Hkv, headDims: HEAD_DIMS, causal: true, dtype: 'f16' }, validation, rows,
}, date);
ctx.destroy();
emitReport(report, { out: values.out });
