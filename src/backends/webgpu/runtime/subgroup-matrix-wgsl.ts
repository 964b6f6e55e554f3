/**
 * WGSL text shared by the subgroup-matrix (tensor-core) kernels: the enables and diagnostics every
 * one of them starts with, and the line generator that unrolls per-matrix code (subgroup matrices
 * cannot live in arrays without spilling, so each gets a named variable).
 */

/** One generated line per index. */
export function seq(n: number, line: (i: number) => string): string {
  return Array.from({ length: n }, (_, i) => line(i)).join('\n');
}

export const SUBGROUP_MATRIX_PRELUDE = `enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
// Offsets derive from subgroup_id, which Tint's analysis cannot prove uniform per subgroup.
diagnostic(off, chromium.subgroup_matrix_uniformity);
diagnostic(off, subgroup_uniformity);`;
