import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createBackend } from '../src/backends/index.js';
import { attentionParams, attentionProgram, type AttentionSpec, tileKeys } from '../src/backends/webgpu/attention/attention-program.js';
import { tensorCoreParams } from '../src/backends/webgpu/attention/tensor-core-attention.js';
import { GPU_METHODS, GPU_TOKEN_RULES, type TokenRuleKey } from '../src/backends/webgpu/methods/index.js';
import { sparseMethods } from '../src/methods/index.js';
import { formatAdapterReport } from '../src/backends/webgpu/runtime/webgpu-device.js';
import { compileProgram, ParamsLayout, programSource, variantKey, wgslConstants } from '../src/backends/webgpu/runtime/program.js';
import { acquireTestGpu } from './helpers/webgpu.js';

/** Every value of every spec field the kernels are built with (head dims: the tested grid). */
function allAttentionSpecs(): AttentionSpec[] {
  const specs: AttentionSpec[] = [];
  for (const blocks of ['all', 'csr'] as const)
    for (const tokenRule of ['none', ...Object.keys(GPU_TOKEN_RULES)] as TokenRuleKey[])
      for (const kv of ['strided', 'paged'] as const)
        for (const dtype of ['f32', 'f16'] as const)
          for (const headDimLoop of ['unrolled', 'rolled'] as const)
            for (const [headDim, valueDim] of [[64, 64], [128, 128], [32, 96]])
              specs.push({ blocks, tokenRule, kv, dtype, headDim, valueDim, headDimLoop });
  return specs;
}

const base: AttentionSpec = { blocks: 'csr', tokenRule: 'none', kv: 'strided', dtype: 'f32', headDim: 64, valueDim: 64, headDimLoop: 'unrolled' };

describe('kernel program abstraction (no device needed)', () => {
  it('ParamsLayout: WGSL struct and packing come from one field list, padded to 16 bytes', () => {
    const layout = new ParamsLayout([['n', 'u32'], ['scale', 'f32'], ['shift', 'i32'], ['m', 'u32'], ['extra', 'u32']] as const);
    assert.equal(layout.byteSize, 32);
    assert.match(layout.wgsl, /struct Params \{\n {2}n: u32,\n {2}scale: f32,\n {2}shift: i32,\n {2}m: u32,\n {2}extra: u32,\n {2}_pad0: u32,/);
    const view = new DataView(layout.pack({ n: 7, scale: 0.5, shift: -3, m: 2 ** 32 - 1, extra: 0 }));
    assert.deepEqual([view.getUint32(0, true), view.getFloat32(4, true), view.getInt32(8, true), view.getUint32(12, true)], [7, 0.5, -3, 2 ** 32 - 1]);
    assert.throws(() => layout.pack({ n: -1, scale: 0, shift: 0, m: 0, extra: 0 }), /Params.n must be a u32, got -1/);
  });

  it('variant keys are derived from the whole spec, order-independent, and differ per field', () => {
    const shuffled = Object.fromEntries(Object.entries(base).reverse()) as AttentionSpec;
    assert.equal(variantKey('attention', shuffled), variantKey('attention', base));
    const keys = new Set(allAttentionSpecs().map((s) => variantKey('attention', s)));
    assert.equal(keys.size, allAttentionSpecs().length);
  });

  it('WGSL constants are named from spec fields', () => {
    assert.equal(wgslConstants({ headDim: 64, fastPath: true }), 'const HEAD_DIM: u32 = 64u;\nconst FAST_PATH: bool = true;');
    const src = programSource(attentionProgram, base);
    assert.ok(src.includes(`const TILE_KEYS: u32 = ${tileKeys(base)}u;`) && src.includes('const HEAD_DIM: u32 = 64u;'));
    assert.ok(src.startsWith('// attention{blocks=csr,'), 'the source opens with its variant label');
  });

  it('the GPU method table names registered methods; token-rule hooks read only Params fields they declare', () => {
    for (const name of Object.keys(GPU_METHODS)) assert.ok(sparseMethods.has(name), `GPU_METHODS row "${name}" is not a registered method`);
    for (const [kind, hook] of Object.entries(GPU_TOKEN_RULES)) {
      assert.match(hook.portableWgsl, /fn tokenVisible\(i: u32, j: u32\) -> bool/, `${kind}: portable hook defines tokenVisible`);
      for (const [wgsl, layout] of [[hook.portableWgsl, attentionParams], [hook.tensorCoreWgsl ?? '', tensorCoreParams]] as const) {
        const names = new Set<string>(layout.fields.map(([f]) => f));
        for (const [, field] of wgsl.matchAll(/\bP\.(\w+)/g)) assert.ok(names.has(field), `${kind} reads P.${field}, which its skeleton's Params lacks`);
      }
      for (const f of hook.fields) assert.ok(attentionParams.fields.some(([n]) => n === f) && tensorCoreParams.fields.some(([n]) => n === f), `${kind}.${f} is in both Params`);
    }
  });

  it('supports() explains shapes a device cannot run', () => {
    const limits = { maxComputeWorkgroupStorageSize: 16384, maxComputeWorkgroupsPerDimension: 65535, maxStorageBufferBindingSize: 2 ** 27 } as GPUSupportedLimits;
    const shape = { batch: 1, heads: 8, workgroupsX: 100, maxBindingBytes: 1024 };
    assert.equal(attentionProgram.supports(base, shape, limits), null);
    assert.match(attentionProgram.supports({ ...base, headDim: 66, valueDim: 66 }, shape, limits) ?? '', /multiples of 4.*D=66/);
    assert.match(attentionProgram.supports({ ...base, headDim: 512, valueDim: 512 }, shape, limits) ?? '', /at most 256/);
    assert.match(attentionProgram.supports(base, { ...shape, workgroupsX: 70000 }, limits) ?? '', /query blocks × chunks = 70000 workgroups exceeds/);
    assert.match(attentionProgram.supports(base, { ...shape, maxBindingBytes: 2 ** 28 }, limits) ?? '', /exceeds maxStorageBufferBindingSize/);
    assert.match(attentionProgram.supports(base, shape, { ...limits, maxComputeWorkgroupStorageSize: 8192 } as GPUSupportedLimits) ?? '', /16384 B of workgroup memory, device has 8192/);
  });

  it("createBackend('cpu') is the CPU reference and bad names are named", async () => {
    assert.equal((await createBackend('cpu')).name, 'cpu');
    await assert.rejects(createBackend('gpu' as 'cpu'), /backend must be one of "cpu", "webgpu", "auto", got "gpu"/);
  });
});

const gpu = await acquireTestGpu();

describe('WebGPU device and variants', { skip: gpu.skip }, () => {
  after(() => gpu.release());

  it('the adapter report names the adapter, its features and limits', () => {
    const r = gpu.ctx!.report;
    assert.ok(r.description || r.device || r.vendor, 'some adapter identification');
    assert.equal(r.shaderF16, r.features.includes('shader-f16'));
    assert.equal(r.subgroups.supported, r.features.includes('subgroups'));
    if (r.subgroups.supported) assert.ok((r.subgroups.minSize ?? 0) >= 1 && (r.subgroups.maxSize ?? 0) >= (r.subgroups.minSize ?? 0));
    assert.ok(r.limits.maxComputeWorkgroupStorageSize >= 16384 && r.limits.maxStorageBufferBindingSize >= 2 ** 27);
    for (const f of r.enabledFeatures) assert.ok(gpu.ctx!.device.features.has(f), `device has requested feature ${f}`);
    assert.equal(gpu.ctx!.device.limits.maxStorageBufferBindingSize, gpu.ctx!.adapter.limits.maxStorageBufferBindingSize, 'max limits requested');
    assert.match(formatAdapterReport(r), /shader-f16 {3}(yes|no)\nsubgroups/);
  });

  it("createBackend('auto') and ('webgpu') give the WebGPU backend when an adapter exists", async () => {
    assert.equal((await createBackend('auto')).name, 'webgpu');
    assert.equal((await createBackend('webgpu')).name, 'webgpu');
  });

  it('every attention variant compiles without WGSL errors and makes a pipeline', async () => {
    const device = gpu.ctx!.device;
    const specs = allAttentionSpecs().filter((s) => s.dtype === 'f32' || device.features.has('shader-f16'));
    const labels = new Set<string>();
    for (const spec of specs) {
      const compiled = await compileProgram(device, attentionProgram, spec);
      assert.equal(compiled.label, variantKey('attention', spec));
      labels.add(compiled.label);
      assert.equal(await compileProgram(device, attentionProgram, spec), compiled, 'the second request hits the pipeline cache');
    }
    assert.equal(labels.size, specs.length);
  });
});
