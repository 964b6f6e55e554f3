/**
 * The validation layer (src/core/validate.ts) as a user meets it: every bad input class is an
 * error naming the argument and what was expected, before any backend is chosen.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveAttentionCall, sparseAttention } from '../src/attention.js';
import { HeadTensor } from '../src/core/tensor.js';
import { InvalidArgumentError } from '../src/core/errors.js';
import { BUILTIN_METHODS, createSparseMethod } from '../src/methods/index.js';

const shape = { batch: 1, heads: 2, length: 8, headDim: 4 };
const n = 2 * 8 * 4;
const q = HeadTensor.randn(shape, 1);
const k = HeadTensor.randn(shape, 2);
const v = HeadTensor.randn(shape, 3);

/** A method's settings small enough for an 8-token call (block sizes <= 8). */
const SMALL: Record<string, Record<string, unknown>> = {
  dense: { br: 4, bc: 4 },
  flash_skip_softmax: { br: 4, bc: 4 },
  tri_shape: { br: 4, bc: 4, sinkTokens: 1, localWindow: 2, lastDenseQueries: 1 },
  xattention: { blockSize: 4, stride: 2 },
  sla: { BLKQ: 4, BLKK: 4, topkRatio: 0.5 },
  sage_sla: { BLKQ: 4, BLKK: 4, topkRatio: 0.5 },
};

describe('HeadTensor storage kinds', () => {
  for (const [kind, data] of [
    ['Float64Array', new Float64Array(n)], ['Int32Array', new Int32Array(n)], ['Uint8Array', new Uint8Array(n)],
    ['Int16Array', new Int16Array(n)], ['Buffer', Buffer.alloc(n)], ['plain array', new Array(n).fill(0)],
  ] as const) {
    it(`refuses a ${kind}, naming the argument and the accepted kinds`, () => {
      assert.throws(() => new HeadTensor(shape, data as unknown as Float32Array), (err: Error) => {
        assert.ok(err instanceof InvalidArgumentError, String(err));
        assert.match(err.message, /^HeadTensor data must be a Float32Array \(f32\), a Uint16Array of f16 bits or a Float16Array \(f16\), got /);
        return true;
      });
    });
  }

  it('takes Float32Array as f32 and Uint16Array as f16 bits', () => {
    assert.equal(new HeadTensor(shape, new Float32Array(n)).dtype, 'f32');
    assert.equal(new HeadTensor(shape, new Uint16Array(n)).dtype, 'f16');
  });

  it('takes a Float16Array (where the runtime has one) as f16 with the same bits', (t) => {
    const F16 = (globalThis as { Float16Array?: new (a: number[]) => ArrayLike<number> }).Float16Array;
    if (!F16) return t.skip('this runtime has no Float16Array');
    const values = Array.from({ length: n }, (_, i) => i / 4);
    const tensor = new HeadTensor(shape, new F16(values) as unknown as Uint16Array);
    assert.equal(tensor.dtype, 'f16');
    assert.deepEqual(Array.from(tensor.toFloat32Array()), values);
  });

  it('sparseAttention names q, k or v when its storage was swapped for another kind', async () => {
    const bad = HeadTensor.randn(shape, 4);
    (bad as unknown as { data: unknown }).data = new Float64Array(n);
    await assert.rejects(sparseAttention(q, bad, v), /^InvalidArgumentError: k\.data must be a Float32Array/);
    await assert.rejects(sparseAttention(q, k, { ...v } as HeadTensor), /v must be a HeadTensor/);
  });
});

describe('sparseAttention options', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a non-boolean causal', { causal: 'yes' }, /causal must be true or false, got "yes"/],
    ['a numeric causal', { causal: 1 }, /causal must be true or false, got 1/],
    ['a non-finite scale', { scale: Number.NaN }, /scale must be a finite number > 0, got NaN/],
    ['a string scale', { scale: '0.5' }, /scale must be a finite number > 0, got "0.5"/],
    ['an unknown phase', { phase: 'prefil' }, /phase must be one of "prefill", "decode", got "prefil"/],
    ['an unknown backend', { backend: 'cuda' }, /backend must be one of "cpu", "webgpu", "auto", got "cuda"/],
    ['an unknown option', { casual: true }, /sparseAttention option "casual" must be one of method, settings, backend, phase, causal, scale/],
    ['an unknown method', { method: 'xatention' }, /unknown sparse method "xatention"/],
    ['settings that are not an object', { method: 'dense', settings: 'br=4' }, /settings must be an object, got "br=4"/],
    ['settings beside a constructed method', { method: createSparseMethod('dense'), settings: { br: 4 } }, /settings must be absent when method is a constructed method/],
  ];
  for (const [what, opts, message] of cases) {
    it(`refuses ${what} before a backend is chosen`, () => {
      assert.throws(() => resolveAttentionCall(q, k, v, opts), message);
    });
  }

  it('decides causality from the method when the call leaves it out', () => {
    assert.equal(resolveAttentionCall(q, k, v).plan.causal, false);
    assert.equal(resolveAttentionCall(q, k, v, { method: 'flash_skip_softmax' }).plan.causal, true);
    assert.equal(resolveAttentionCall(q, k, v, { method: 'flash_skip_softmax', settings: { is_causal: false } }).plan.causal, false);
    assert.equal(resolveAttentionCall(q, k, v, { method: 'tri_shape' }).plan.causal, true);
    assert.equal(resolveAttentionCall(q, k, v, { method: 'sla', settings: { causal: true } }).plan.causal, true);
    assert.equal(resolveAttentionCall(q, k, v, { method: 'xattention', causal: true }).plan.causal, true);
    assert.equal(resolveAttentionCall(q, k, v).plan.scale, 1 / Math.sqrt(4));
  });

  it('flash_skip_softmax with causal left out runs (causally) on the CPU instead of throwing', async () => {
    const left = await sparseAttention(q, k, v, { method: 'flash_skip_softmax', settings: { br: 4, bc: 4 } });
    const causal = await sparseAttention(q, k, v, { method: 'flash_skip_softmax', settings: { br: 4, bc: 4 }, causal: true });
    assert.deepEqual(left.output.data, causal.output.data);
    assert.equal(left.plan.mask.causal, true);
  });
});

describe('every method rejects unknown settings and mistyped ones', () => {
  for (const d of BUILTIN_METHODS) {
    it(`${d.name} ${d.version}: an unknown setting names itself`, () => {
      assert.throws(() => new d.cls({ thresh: 0.5 }), (err: Error) => err instanceof InvalidArgumentError && /thresh/.test(err.message));
    });
    it(`${d.name} ${d.version}: a string block size is refused`, () => {
      const field = d.name === 'xattention' ? 'blockSize' : d.name.includes('sla') ? 'BLKQ' : 'br';
      assert.throws(() => new d.cls({ [field]: '4' }), (err: Error) => err instanceof InvalidArgumentError && err.message.includes(field));
    });
  }
  for (const [method, field] of [['flash_skip_softmax', 'is_causal'], ['flash_skip_softmax', 'group_consensus'], ['xattention', 'dense'], ['xattention', 'causal'], ['sla', 'causal']] as const) {
    it(`${method}.${field} must be a boolean`, () => {
      assert.throws(() => createSparseMethod(method, { [field]: 'true' }), new RegExp(`${method}\\.${field} must be (a boolean|true or false), got "true"`));
    });
  }
  for (const [method, field, value] of [['flash_skip_softmax', 'variant', 'fast'], ['sla', 'featureMap', 'gelu'], ['sla', 'linearBlocks', 'some']] as const) {
    it(`${method}.${field} is an enum`, () => {
      assert.throws(() => createSparseMethod(method, { [field]: value }), new RegExp(`${method}\\.${field} must be .*got "${value}"`));
    });
  }
});

describe('planBlockMask with NaN in Q or K throws what sparseAttention throws', () => {
  for (const d of BUILTIN_METHODS) {
    for (const which of ['q', 'k'] as const) {
      it(`${d.name} ${d.version}: NaN in ${which}`, async () => {
        const wide = { ...shape, headDim: 64 }; // sage_sla's kernels take D = 64 or 128
        const bad = HeadTensor.randn(wide, 9);
        (bad.data as Float32Array)[65] = Number.NaN;
        const [qq, kk, vv] = which === 'q' ? [bad, HeadTensor.randn(wide, 2), HeadTensor.randn(wide, 3)] : [HeadTensor.randn(wide, 1), bad, HeadTensor.randn(wide, 3)];
        const method = new d.cls(SMALL[d.name] ?? {});
        const causal = d.name === 'tri_shape';
        let apiError: Error | undefined;
        await sparseAttention(qq, kk, vv, { method, causal }).catch((e: Error) => { apiError = e; });
        assert.ok(apiError, 'sparseAttention accepted NaN');
        assert.match(apiError.message, new RegExp(`^${which}\\[0, 0, 1, 1\\] \\(layout BHLD\\) must be a finite number, got NaN`));
        assert.throws(() => method.planBlockMask(qq, kk, { causal }), (err: Error) => err.message === apiError!.message);
      });
    }
  }
});
