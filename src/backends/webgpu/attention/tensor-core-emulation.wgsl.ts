/**
 * Test-only: the tensor-core attention kernel's WGSL rewritten to plain WGSL of the same data flow,
 * so its staging, score-scratch rotation, chains, rescale, passes, block lists and epilogues are
 * checked against the CPU reference on adapters without subgroup matrices (lavapipe).
 *
 * The kernel is generated as usual and each subgroup-matrix builtin is then replaced by a call to
 * an emulating function; the real kernel's text is therefore untouched by construction. Layout:
 * lane ℓ of 32 owns elements 8ℓ..8ℓ+7 of a 16×16 tile in row-major order (row ℓ/2, columns
 * 8·(ℓ%2)..+7). An accumulator is those 8 f32; a left operand is the lane's whole row (16 values);
 * a right operand is not materialised: the multiply reads it from its array (as the GEMM's `Frag`
 * does). Nothing writes that array between the kernel's load and its multiply, so this is equivalent.
 *
 * A right operand loaded once into a `let` (to feed several products) becomes its (offset, stride)
 * pair, and the products naming it read the array as above.
 *
 * There are no subgroups: subgroup = local index / 32, lane = local index % 32, and the two
 * cross-lane operations (an xor-shuffled lane's value, a subgroup-wide any) go through workgroup
 * memory between barriers (lavapipe's subgroup size need not be 32). Their call sites are in
 * uniform control flow (tile loops), as the barriers require.
 *
 * Shared by the attention kernel and the XAttention estimate (tensor-core-xattention-estimate.ts).
 */

import { SUBGROUP_MATRIX_PRELUDE } from '../runtime/subgroup-matrix-wgsl.js';

/** Bytes of workgroup memory the emulation adds: one exchange word per invocation (kernels with cross-lane operations). */
export function emulationWorkgroupBytes(subgroups: number): number {
  return subgroups * 32 * 4;
}

const COL = '(lane % 2u) * 8u + e';

const RESULT_CTOR = /subgroup_matrix_result<f32, 16, 16>\(\)/g;
const MMA = /subgroupMatrixMultiplyAccumulate\((\w+), subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, (col|row)_major>\(&(\w+), ([^,()]+), ([^,()]+)\), (\w+)\)/g;
const LOAD = /subgroupMatrixLoad<subgroup_matrix_(left|result)<f(?:16|32), 16, 16>, row_major>\(&(\w+), ([^,()]+), ([^,()]+)\)/g;
const STORE = /subgroupMatrixStore<row_major>\(&(\w+), ([^,()]+), (\w+), ([^,()]+)\)/g;
const RIGHT_LET = /let (\w+) = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, (col|row)_major>\(&(\w+), ([^,()]+), ([^,()]+)\);/g;
const MMA_LET = /subgroupMatrixMultiplyAccumulate\((\w+), (\w+), (\w+)\)/g;
const SHUFFLE = /subgroupShuffleXor\((\w+), (\w+)\)/g;
const ANY = /subgroupAny\(([^()]+)\)/g;
const ADD = /subgroupAdd\((\w+)\)/g;
const BUILTINS = /@builtin\(subgroup_id\) sg: u32,\s*@builtin\(subgroup_invocation_id\) lane: u32,\s*@builtin\(local_invocation_index\) lid: u32\) \{/;
const LEFTOVER = /subgroupMatrix|subgroup_matrix|subgroupShuffle|subgroupAny|subgroupAdd|subgroup_id|subgroup_invocation_id|enable subgroups/;

/**
 * The plain-WGSL twin of a tensor-core kernel (`out`: O's element type). `opaque` is a uniform
 * expression that is at least 32 at run time: loop bounds taken from it cannot be unrolled
 * (fully unrolled, lavapipe's LLVM spends many minutes on a kernel; even so, one takes about a minute).
 */
export function emulateTensorCoreWgsl(wgsl: string, subgroups: number, out: 'f16' | 'f32', opaque = 'P.kLen'): string {
  const E = `min(${opaque}, 8u)`;
  const K16 = `min(${opaque}, 16u)`;
  const fns = new Map<string, string>();
  const rights = new Map<string, string>(); // let-bound right operand → its emulating product
  const type = (arr: string) => arr === 'O' ? out : 'f32';
  let crossLane = false; // the exchange word and its functions only where the kernel has cross-lane operations
  const mma = (arr: string, major: string) => {
    const name = `emuMma_${arr}_${major}`;
    // Element (k, col) of the right operand: column-major for Kᵀ, row-major for V.
    const at = major === 'col' ? `off + (${COL}) * stride + k` : `off + k * stride + ${COL}`;
    fns.set(name, `fn ${name}(a: array<f16, 16>, off: u32, stride: u32, acc: array<f32, 8>, lane: u32) -> array<f32, 8> {
  var r = acc;
  var av = a;
  for (var e = 0u; e < ${E}; e++) {
    var s = 0.0;
    for (var k = 0u; k < ${K16}; k++) { s += f32(av[k]) * f32(${arr}[${at}]); }
    r[e] += s;
  }
  return r;
}`);
    return name;
  };
  const text = wgsl
    .replace(SUBGROUP_MATRIX_PRELUDE, 'enable f16;')
    .replace(BUILTINS, `@builtin(local_invocation_index) lid: u32) {
  let sg = lid / 32u;
  let lane = lid % 32u;`)
    .replace(RESULT_CTOR, 'array<f32, 8>()')
    .replace(MMA, (_m, a: string, major: string, arr: string, off: string, stride: string, acc: string) =>
      `${mma(arr, major)}(${a}, ${off}, ${stride}, ${acc}, lane)`)
    .replace(RIGHT_LET, (_m, b: string, major: string, arr: string, off: string, stride: string) => {
      // Products are matched to loads by name after every load is rewritten: a name must keep one source.
      const name = mma(arr, major);
      if ((rights.get(b) ?? name) !== name) throw new Error(`tensor-core emulation: right operand ${b} is loaded from two sources`);
      rights.set(b, name);
      return `let ${b} = vec2u(${off}, ${stride});`;
    })
    .replace(MMA_LET, (m, a: string, b: string, acc: string) => {
      const name = rights.get(b);
      if (!name) throw new Error(`tensor-core emulation: "${m}" multiplies by ${b}, which no let-bound right load defines`);
      return `${name}(${a}, ${b}.x, ${b}.y, ${acc}, lane)`;
    })
    .replace(LOAD, (_m, kind: string, arr: string, off: string, stride: string) => {
      const name = `emuLoad_${kind}_${arr}`;
      fns.set(name, kind === 'left'
        ? `fn ${name}(off: u32, stride: u32, lane: u32) -> array<f16, 16> {
  var r: array<f16, 16>;
  for (var k = 0u; k < ${K16}; k++) { r[k] = ${arr}[off + (lane / 2u) * stride + k]; }
  return r;
}`
        : `fn ${name}(off: u32, stride: u32, lane: u32) -> array<f32, 8> {
  var r: array<f32, 8>;
  for (var e = 0u; e < ${E}; e++) { r[e] = f32(${arr}[off + (lane / 2u) * stride + ${COL}]); }
  return r;
}`);
      return `${name}(${off}, ${stride}, lane)`;
    })
    .replace(STORE, (_m, arr: string, off: string, value: string, stride: string) => {
      const name = `emuStore_${arr}`;
      fns.set(name, `fn ${name}(off: u32, m: array<f32, 8>, stride: u32, lane: u32) {
  var mv = m;
  for (var e = 0u; e < ${E}; e++) { ${arr}[off + (lane / 2u) * stride + ${COL}] = ${type(arr)}(mv[e]); }
}`);
      return `${name}(${off}, ${value}, ${stride}, lane)`;
    })
    .replace(SHUFFLE, (_m, x: string, mask: string) => (crossLane = true, `emuShuffleXor(${x}, ${mask}, lid)`))
    .replace(ANY, (_m, x: string) => (crossLane = true, `emuAny(${x}, lid)`))
    .replace(ADD, (_m, x: string) => (crossLane = true, `emuAddU32(${x}, lid)`));
  const left = LEFTOVER.exec(text);
  if (left) throw new Error(`tensor-core emulation left "${left[0]}" in the kernel (the generator changed shape)`);
  const exchange = !crossLane ? '' : `
// One word per invocation for the cross-lane exchanges.
var<workgroup> emuXch: array<f32, ${subgroups * 32}>;

// The xor shuffle: the value of lane (lane ^ mask), mask < 32, of this emulated subgroup.
fn emuShuffleXor(x: f32, mask: u32, lid: u32) -> f32 {
  emuXch[lid] = x;
  workgroupBarrier();
  let y = emuXch[lid ^ mask];
  workgroupBarrier();
  return y;
}

// subgroupAny(x) over the 32 invocations of this lane's emulated subgroup.
fn emuAny(x: bool, lid: u32) -> bool {
  emuXch[lid] = select(0.0, 1.0, x);
  workgroupBarrier();
  var seen = false;
  for (var i = 0u; i < min(${opaque}, 32u); i++) { seen = seen || emuXch[(lid & ~31u) + i] != 0.0; }
  workgroupBarrier();
  return seen;
}

// subgroupAdd(x) of small counts (exact in f32) over this lane's emulated subgroup.
fn emuAddU32(x: u32, lid: u32) -> u32 {
  emuXch[lid] = f32(x);
  workgroupBarrier();
  var sum = 0.0;
  for (var i = 0u; i < min(${opaque}, 32u); i++) { sum += emuXch[(lid & ~31u) + i]; }
  workgroupBarrier();
  return u32(sum);
}`;
  return `${text}
// ---- Emulated subgroup operations (test-only) ----${exchange}
${[...fns.values()].join('\n')}
`;
}
