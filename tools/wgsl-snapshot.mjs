// Snapshot of every WGSL program variant the WebGPU backend can generate.
//   node wgsl-snapshot.mjs <repo>/dist/src/backends/webgpu <out.json>
// Finds every exported KernelProgram under the folder (any layout: files are crawled, programs
// are keyed by program.name), enumerates the spec grid of each, and writes
//   { "<variantKey>": "<WGSL source>" }            to out.json
//   { "<variantKey>": { bindings, constants, workgroupSize, paramsBytes } } to out.meta.json
// Fails when a program is found that has no grid here, or a grid's program is missing.
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [root, out] = process.argv.slice(2);
if (!root || !out) throw new Error('usage: node wgsl-snapshot.mjs <dist/src/backends/webgpu> <out.json>');

function files(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.js') ? [p] : [];
  });
}

const programs = new Map();
let programSource;
let variantKey;
for (const f of files(resolve(root)).sort()) {
  const mod = await import(pathToFileURL(f).href);
  if (mod.programSource && mod.variantKey) ({ programSource, variantKey } = mod);
  for (const v of Object.values(mod)) {
    if (v && typeof v === 'object' && typeof v.name === 'string' && typeof v.wgsl === 'function' && typeof v.bindings === 'function' && v.params) {
      const prev = programs.get(v.name);
      if (prev && prev !== v) throw new Error(`two programs named ${v.name}`);
      programs.set(v.name, v);
    }
  }
}

const product = (axes) => Object.entries(axes).reduce((acc, [k, vals]) => acc.flatMap((s) => vals.map((x) => ({ ...s, [k]: x }))), [{}]);
const dims = [[4, 4], [16, 16], [32, 96], [64, 64], [80, 80], [96, 64], [128, 128], [256, 256]];
const attentionAxes = {
  blocks: ['all', 'csr'], tokenRule: ['none', 'trishape'], kv: ['strided', 'paged'], dtype: ['f32', 'f16'],
  headDimLoop: ['unrolled', 'rolled'], dims,
};
const attentionSpecs = (extra = {}) => product({ ...attentionAxes, ...extra }).map(({ dims: [headDim, valueDim], ...s }) => ({ ...s, headDim, valueDim }));

const estimateSpecs = [];
for (const dtype of ['f32', 'f16'])
  for (const rowCapacity of [1, 2, 4, 8, 16, 32, 64, 96, 128])
    for (const rowLoop of ['unrolled', 'rolled'])
      for (const columnsPerThread of [1, 2, 4]) estimateSpecs.push({ dtype, rowCapacity, rowLoop, columnsPerThread });

const GRIDS = {
  attention: attentionSpecs(),
  'flash-skip-attention': attentionSpecs({ rows: [64, 128, 256] }),
  'sage-attention': attentionSpecs(),
  'tc-attention': product({
    headDim: [64, 128], causal: [true, false], blocks: ['all', 'csr'], out: ['f16', 'f32'],
    subgroups: [4, 8], stage: [true, false], passes: [1, 2], tokenRule: ['none', 'trishape'],
  }),
  'xattention-estimate': estimateSpecs,
  'tc-xattention-estimate': product({ headDim: [64, 128], rowsPerBlock: [4, 8, 16], causal: [true, false] }),
  'xattention-select': [{ tile: 256 }, { tile: 64 }],
  'trishape-blocks': [{ version: 1 }],
  'block-list-scan': [{ version: 1 }],
  'block-list-compact': [{ version: 1 }],
  'sla-sequence-mean': [{}],
  'sla-mean-pool': [{ smooth: true }, { smooth: false }],
  'sla-pooled-scores': [{}],
  'sla-topk-select': [{}],
  'sla-lut': [{}],
  'sla-feature-map': [{ map: 'softmax' }, { map: 'elu' }, { map: 'relu' }],
  'sla-block-sums': [{}],
  'sla-prefix-sums': [{}],
  'sla-query-block-sums': [{ unselected: true }, { unselected: false }],
  'sla-linear-rows': [{ unselected: true }, { unselected: false }],
  'sla-projection': [{ kind: 'identity', bias: false }, { kind: 'weights', bias: false }, { kind: 'weights', bias: true }],
  'sage-quantize': [{ smooth: true }, { smooth: false }],
  'sage-round-v': [{}],
};

const unknown = [...programs.keys()].filter((n) => !(n in GRIDS));
const missing = Object.keys(GRIDS).filter((n) => !programs.has(n));
if (unknown.length || missing.length) throw new Error(`programs without a grid: [${unknown}]; grids without a program: [${missing}]`);

const wgsl = {};
const meta = {};
const counts = {};
for (const [name, specs] of Object.entries(GRIDS)) {
  const p = programs.get(name);
  for (const spec of specs) {
    const key = variantKey(name, spec);
    if (key in wgsl) throw new Error(`duplicate key ${key}`);
    wgsl[key] = programSource(p, spec);
    meta[key] = { bindings: p.bindings(spec), constants: p.constants(spec), workgroupSize: p.workgroupSize(spec), paramsBytes: p.params.byteSize, params: p.params.fields };
  }
  counts[name] = specs.length;
}
writeFileSync(out, JSON.stringify(wgsl, null, 1));
writeFileSync(out.replace(/\.json$/, '.meta.json'), JSON.stringify(meta, null, 1));
console.log(JSON.stringify({ programs: programs.size, variants: Object.keys(wgsl).length, counts }));
