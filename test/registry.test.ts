import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError, SparseAttentionError } from '../src/core/errors.js';
import { DenseMethod } from '../src/methods/dense/dense.js';
import { BUILTIN_METHODS, createSparseMethod, getSparseMethod, registerSparseMethod, sparseMethods } from '../src/methods/index.js';
import type { SparseMethodClass } from '../src/methods/method.js';
import { compareVersions, MethodRegistry } from '../src/methods/registry.js';

/** Distinct classes so a lookup's answer is identifiable. */
function fakeMethod(label: string): SparseMethodClass {
  const cls = class extends (DenseMethod as new (settings?: Record<string, unknown>) => DenseMethod) {
    static readonly description = `fake ${label}`;
  };
  Object.defineProperty(cls, 'name', { value: label });
  return cls;
}

describe('method registry', () => {
  it('compares versions numerically, component by component', () => {
    assert.ok(compareVersions('v10', 'v9') > 0);
    assert.ok(compareVersions('v2.1', 'v2') > 0);
    assert.ok(compareVersions('v2.10', 'v2.9') > 0);
    assert.ok(compareVersions('v1', 'v2') < 0);
    assert.equal(compareVersions('v2', 'v2.0'), 0);
  });

  it('returns the newest version when none is named: v10 over v9, v2.1 over v2', () => {
    const classes = Object.fromEntries(['v9', 'v1', 'v10', 'v2'].map((v) => [v, fakeMethod(`A_${v}`)]));
    const reg = new MethodRegistry(Object.entries(classes).map(([version, cls]) => ({ name: 'a', version, cls })));
    assert.deepEqual(reg.versions('a'), ['v1', 'v2', 'v9', 'v10']);
    assert.equal(reg.latest('a'), 'v10');
    assert.equal(reg.get('a'), classes.v10);
    assert.equal(reg.get('a', 'v9'), classes.v9);

    const minor = new MethodRegistry();
    const v2 = fakeMethod('B_v2');
    const v21 = fakeMethod('B_v2_1');
    minor.register('b', 'v2.1', v21);
    minor.register('b', 'v2', v2);
    assert.equal(minor.get('b'), v21);
    assert.equal(minor.get('b', 'v2'), v2);
  });

  it('unknown names and versions fail with what is registered', () => {
    const reg = new MethodRegistry([
      { name: 'a', version: 'v1', cls: fakeMethod('A1') },
      { name: 'a', version: 'v2', cls: fakeMethod('A2') },
      { name: 'b', version: 'v1', cls: fakeMethod('B1') },
    ]);
    assert.throws(() => reg.get('c'), (err: Error) => err instanceof SparseAttentionError && err.message === 'unknown sparse method "c"; registered: a (v1, v2), b (v1)');
    assert.throws(() => reg.get('a', 'v3'), (err: Error) => err instanceof SparseAttentionError && err.message === 'sparse method "a" has no version v3; registered versions: v1, v2');
    assert.throws(() => reg.latest('c'), /unknown sparse method "c"; registered: a \(v1, v2\), b \(v1\)/);
    assert.throws(() => new MethodRegistry().get('a'), /unknown sparse method "a"; registered: \(none\)/);
    assert.equal(reg.has('a'), true);
    assert.equal(reg.has('a', 'v2'), true);
    assert.equal(reg.has('a', 'v3'), false);
    assert.equal(reg.has('c'), false);
  });

  it('refuses to register the same name and version twice, naming the holder', () => {
    const reg = new MethodRegistry([{ name: 'a', version: 'v1', cls: fakeMethod('FirstA') }]);
    assert.throws(() => reg.register('a', 'v1', fakeMethod('SecondA')), /sparse method "a" version v1 is already registered \(by FirstA\)/);
    reg.register('a', 'v1.1', fakeMethod('SecondA'));
    assert.equal(reg.latest('a'), 'v1.1');
  });

  it('rejects malformed names and versions with the value and the expected form', () => {
    const reg = new MethodRegistry();
    for (const version of ['1', 'V1', 'v', 'v1.', 'v1.x', 'latest']) {
      assert.throws(() => reg.register('a', version, fakeMethod('A')), (err: Error) =>
        err instanceof InvalidArgumentError && err.message === `version of method "a" must be of the form v<N>[.<N>...] (e.g. "v1", "v2.1"), got ${JSON.stringify(version)}`);
    }
    for (const name of ['', 'Flash', '1x', 'a-b', 'a b']) {
      assert.throws(() => reg.register(name, 'v1', fakeMethod('A')), (err: Error) =>
        err instanceof InvalidArgumentError && err.message.startsWith(`method name must be snake_case letters, digits and underscores, starting with a letter, got ${JSON.stringify(name)}`));
    }
    assert.deepEqual(reg.list(), []);
  });

  it('lists methods by name with versions, latest and description', () => {
    const reg = new MethodRegistry([
      { name: 'z', version: 'v1', cls: fakeMethod('Z') },
      { name: 'a', version: 'v3', cls: fakeMethod('A3') },
      { name: 'a', version: 'v1', cls: fakeMethod('A1') },
    ]);
    assert.deepEqual(reg.list(), [
      { name: 'a', versions: ['v1', 'v3'], latest: 'v3', description: 'fake A3' },
      { name: 'z', versions: ['v1'], latest: 'v1', description: 'fake Z' },
    ]);
  });

  it('the default registry holds every BUILTIN_METHODS row', () => {
    assert.ok(BUILTIN_METHODS.length >= 1);
    for (const row of BUILTIN_METHODS) assert.equal(sparseMethods.get(row.name, row.version), row.cls, `${row.name} ${row.version}`);
    assert.equal(getSparseMethod('dense'), DenseMethod);
    assert.ok(createSparseMethod('dense', { br: 16, bc: 32 }) instanceof DenseMethod);
    assert.throws(() => createSparseMethod('dense', { br: 0 }), /dense\.br must be an integer >= 1, got 0/);
  });

  it('registers through the decorator form and the call form', () => {
    @registerSparseMethod('test_decorated', 'v3')
    class DecoratedV3 extends (DenseMethod as new (settings?: Record<string, unknown>) => DenseMethod) {
      static readonly description = 'decorated v3';
    }
    @registerSparseMethod('test_decorated')
    class DecoratedV1 extends (DenseMethod as new (settings?: Record<string, unknown>) => DenseMethod) {
      static readonly description = 'decorated v1';
    }
    assert.deepEqual(sparseMethods.versions('test_decorated'), ['v1', 'v3']);
    assert.equal(getSparseMethod('test_decorated'), DecoratedV3);
    assert.equal(getSparseMethod('test_decorated', 'v1'), DecoratedV1);
    assert.ok(createSparseMethod('test_decorated', {}, 'v1') instanceof DecoratedV1);

    const called = fakeMethod('Called');
    assert.equal(registerSparseMethod('test_called', 'v2')(called), called);
    assert.equal(getSparseMethod('test_called'), called);
    assert.throws(() => registerSparseMethod('test_called', 'v2')(fakeMethod('Again')), /version v2 is already registered \(by Called\)/);
  });
});
