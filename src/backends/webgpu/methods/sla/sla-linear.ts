/// <reference types="@webgpu/types" />
/**
 * SLA's linear part and projection on the GPU, the twins of methods/sla-linear-part.ts and
 * sla-projection.ts (same key sets, same ε, same "empty set → 0" rule). All buffers dense BHLD f32;
 * W = Dv + 1: column Dv of every [D, W] matrix holds Z (φ(k) sums) beside H (φ(k)ᵀv).
 *
 *   sla-feature-map        x [rows, D] → φ(x) [rows, D]                  one thread per row
 *   sla-block-sums         φK, V → sums [B·Hkv, nKB, D, W]                one thread per (block, d, w)
 *   sla-prefix-sums        sums → prefix [B·Hkv, nKB + 1, D, W]           one thread per (kv row, d, w)
 *   sla-query-block-sums   prefix[F] − Σ selected blocks < F → hq [B, H, nQB, D, W]
 *                          F = key blocks wholly visible to the block's first query (nKB if not causal)
 *   sla-linear-rows        (sla-linear-rows.ts) Ol per query row from hq and the causal tail
 *   sla-projection         os += Ol (identity) or Ol·Wᵀ + bias, in place   one thread per (row, e)
 * Sums are f32 here (f64 on the CPU): total-minus-selected loses a few more bits; tests allow it.
 */
import type { FeatureMap } from '../../../../methods/sla/sla-linear-part.js';
import { LINEAR_EPS } from '../../../../methods/sla/sla-linear-part.js';
import { type BindingSpec, type KernelProgram, ParamsLayout } from '../../runtime/program.js';
import { GRID_FIELDS, GRID_WGSL } from './sla-grid.js';

const MAIN = `${GRID_WGSL}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = threadIndex(wg, lid);
  if (t >= P.total) { return; }`;

/** `@group(0) @binding(n)` declarations in binding order (binding 0 is Params). */
function declare(bindings: readonly BindingSpec[], types: Record<string, string>, notes: Record<string, string> = {}): string {
  return bindings.map((b, n) => `@group(0) @binding(${n + 1}) var<storage, ${b.kind === 'storage' ? 'read_write' : 'read'}> ${b.name}: ${types[b.name] ?? 'array<f32>'};${notes[b.name] ? `  // ${notes[b.name]}` : ''}`).join('\n');
}

/** A one-thread-per-element kernel: bindings, the body of main after `t` is known, helper WGSL. */
function program<S extends Record<string, string | number | boolean>, F extends string>(
  name: string, params: ParamsLayout<F>, bindings: (spec: S) => BindingSpec[], body: (spec: S) => string,
  types: Record<string, string> = {}, notes: Record<string, string> = {}, helpers = '',
): KernelProgram<S, F> {
  return {
    name, params, bindings, constants: () => ({}), workgroupSize: () => 64, supports: () => null,
    wgsl: (spec, header) => `${header}\nconst EPS: f32 = ${LINEAR_EPS};\n@group(0) @binding(0) var<uniform> P: Params;\n${declare(bindings(spec), types, notes)}\n${helpers}\n${MAIN}\n${body(spec)}\n}\n`,
  };
}

const ro = (name: string): BindingSpec => ({ name, kind: 'read-only-storage' });
const rw = (name: string): BindingSpec => ({ name, kind: 'storage' });

export type FeatureMapSpec = { readonly map: FeatureMap };
const featureParams = new ParamsLayout([...GRID_FIELDS, ['headDim', 'u32']] as const);
export const slaFeatureMapProgram = program<FeatureMapSpec, (typeof featureParams.fields)[number][0]>(
  'sla-feature-map', featureParams, () => [ro('x'), rw('phi')], (spec) => `  let o = t * P.headDim;
${spec.map === 'softmax' ? `  var mx = x[o];
  for (var d = 1u; d < P.headDim; d++) { mx = max(mx, x[o + d]); }
  var s = 0.0;
  for (var d = 0u; d < P.headDim; d++) { s += exp(x[o + d] - mx); }
  for (var d = 0u; d < P.headDim; d++) { phi[o + d] = exp(x[o + d] - mx) / s; }`
    : spec.map === 'elu' ? '  for (var d = 0u; d < P.headDim; d++) { let y = x[o + d]; phi[o + d] = select(exp(y), y + 1.0, y > 0.0); }'
      : '  for (var d = 0u; d < P.headDim; d++) { phi[o + d] = max(x[o + d], 0.0); }'}`,
  {}, { x: '[rows, D]', phi: '[rows, D]' },
);

const sumParams = new ParamsLayout([...GRID_FIELDS, ['keyLength', 'u32'], ['headDim', 'u32'], ['valueDim', 'u32'], ['blockK', 'u32'], ['numKeyBlocks', 'u32']] as const);
export const slaBlockSumsProgram = program<Record<string, never>, (typeof sumParams.fields)[number][0]>(
  'sla-block-sums', sumParams, () => [ro('phiK'), ro('v'), rw('sums')], () => `  let W = P.valueDim + 1u;
  let w = t % W;
  let d = (t / W) % P.headDim;
  let kb = (t / (W * P.headDim)) % P.numKeyBlocks;
  let row = t / (W * P.headDim * P.numKeyBlocks);
  let j1 = min((kb + 1u) * P.blockK, P.keyLength);
  var s = 0.0;
  for (var j = kb * P.blockK; j < j1; j++) {
    let f = phiK[(row * P.keyLength + j) * P.headDim + d];
    s += select(f, f * v[(row * P.keyLength + j) * P.valueDim + min(w, P.valueDim - 1u)], w < P.valueDim);
  }
  sums[t] = s;`,
  {}, { phiK: '[B·Hkv, Lk, D]', v: '[B·Hkv, Lk, Dv]', sums: '[B·Hkv, nKB, D, Dv + 1]' },
);

const prefixParams = new ParamsLayout([...GRID_FIELDS, ['width', 'u32'], ['numKeyBlocks', 'u32']] as const);
export const slaPrefixSumsProgram = program<Record<string, never>, (typeof prefixParams.fields)[number][0]>(
  'sla-prefix-sums', prefixParams, () => [ro('sums'), rw('prefix')], () => `  let x = t % P.width;       // width = D·(Dv + 1)
  let row = t / P.width;
  var s = 0.0;
  prefix[row * (P.numKeyBlocks + 1u) * P.width + x] = 0.0;
  for (var kb = 0u; kb < P.numKeyBlocks; kb++) {
    s += sums[(row * P.numKeyBlocks + kb) * P.width + x];
    prefix[(row * (P.numKeyBlocks + 1u) + kb + 1u) * P.width + x] = s;
  }`,
  {}, { sums: '[B·Hkv, nKB, D·(Dv + 1)]', prefix: '[B·Hkv, nKB + 1, D·(Dv + 1)]' },
);

/** unselected: subtract the query block's selected blocks (the paper); else the linear part covers all keys. */
export type LinearSpec = { readonly unselected: boolean };

const SHAPE_FIELDS = [
  ['heads', 'u32'], ['groupSize', 'u32'], ['queryLength', 'u32'], ['keyLength', 'u32'], ['queryOffset', 'u32'], ['causal', 'u32'],
  ['numQueryBlocks', 'u32'], ['numKeyBlocks', 'u32'], ['topk', 'u32'], ['blockQ', 'u32'], ['blockK', 'u32'], ['headDim', 'u32'], ['valueDim', 'u32'],
] as const;
export const slaLinearParams = new ParamsLayout([...GRID_FIELDS, ...SHAPE_FIELDS] as const);
export type SlaLinearParam = Exclude<(typeof slaLinearParams.fields)[number][0], 'total' | 'gridX'>;

/** WGSL shared by the per-query-block kernels (here and sla-linear-rows.ts): F and the selected-block test. */
export const SLA_BLOCK_WGSL = `
fn fullBlocks(qb: u32) -> u32 {
  if (P.causal == 0u) { return P.numKeyBlocks; }
  return min(P.numKeyBlocks, (P.queryOffset + qb * P.blockQ + 1u) / P.blockK);
}
fn isSelected(row: u32, kb: u32) -> bool {
  for (var n = 0u; n < P.topk; n++) { if (lut[row * P.topk + n] == i32(kb)) { return true; } }
  return false;
}`;

export const slaQueryBlockSumsProgram = program<LinearSpec, (typeof slaLinearParams.fields)[number][0]>(
  'sla-query-block-sums', slaLinearParams, () => [ro('prefix'), ro('sums'), ro('lut'), rw('hq')], (spec) => `  let width = P.headDim * (P.valueDim + 1u);
  let x = t % width;
  let row = t / width;                        // (b, h, qb)
  let qb = row % P.numQueryBlocks;
  let bh = row / P.numQueryBlocks;
  let kvRow = (bh / P.heads) * (P.heads / P.groupSize) + (bh % P.heads) / P.groupSize;
  let F = fullBlocks(qb);
  var s = prefix[(kvRow * (P.numKeyBlocks + 1u) + F) * width + x];
${spec.unselected ? `  for (var n = 0u; n < P.topk; n++) {
    let kb = lut[row * P.topk + n];
    if (kb >= 0 && u32(kb) < F) { s -= sums[(kvRow * P.numKeyBlocks + u32(kb)) * width + x]; }
  }` : ''}
  hq[t] = s;`,
  { lut: 'array<i32>' }, { prefix: '[B·Hkv, nKB + 1, D, Dv + 1]', sums: '[B·Hkv, nKB, D, Dv + 1]', lut: '[B, H, nQB, topk]', hq: '[B, H, nQB, D, Dv + 1]' },
  SLA_BLOCK_WGSL,
);

export type ProjectionSpec = { readonly kind: 'identity' | 'weights'; readonly bias: boolean };
// projHeads 1: one W for all rows; H: per-head weights, row r of [B, H, Lq] uses slice (r / Lq) % H.
const projParams = new ParamsLayout([...GRID_FIELDS, ['valueDim', 'u32'], ['queryLength', 'u32'], ['projHeads', 'u32']] as const);
export const slaProjectionProgram = program<ProjectionSpec, (typeof projParams.fields)[number][0]>(
  'sla-projection', projParams,
  (spec) => [ro('ol'), rw('out'), ...(spec.kind === 'weights' ? [ro('weight')] : []), ...(spec.bias ? [ro('bias')] : [])],
  (spec) => spec.kind === 'identity' ? '  out[t] += ol[t];' : `  let e = t % P.valueDim;
  let o = t - e;
  let h = (t / P.valueDim / P.queryLength) % P.projHeads;
  let w0 = h * P.valueDim * P.valueDim;
  var s = ${spec.bias ? 'bias[h * P.valueDim + e]' : '0.0'};
  for (var c = 0u; c < P.valueDim; c++) { s += weight[w0 + e * P.valueDim + c] * ol[o + c]; }
  out[t] += s;`,
  {}, { ol: '[rows, Dv]', out: '[rows, Dv] (Os in, O out)', weight: '[projHeads, Dv_out, Dv_in]', bias: '[projHeads, Dv]' },
);
