/**
 * A versioned table of method classes (after ModelOpt's `register_sparse_method` /
 * `get_sparse_method`). Versions are `v<major>[.<minor>...]` and compare numerically, so `v10` is
 * newer than `v9`; `get(name)` without a version returns the newest.
 */
import { InvalidArgumentError, SparseAttentionError } from '../core/errors.js';
import type { MethodDescriptor } from './descriptor.js';
import type { SparseMethodClass } from './method.js';

const VERSION = /^v(\d+)(\.\d+)*$/;

export function compareVersions(a: string, b: string): number {
  const pa = a.slice(1).split('.').map(Number);
  const pb = b.slice(1).split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** A registry row: a method's descriptor (at least its name, version and class). */
export type RegisteredMethod = MethodDescriptor;

export class MethodRegistry {
  private readonly table = new Map<string, Map<string, MethodDescriptor>>();

  constructor(entries: readonly MethodDescriptor[] = []) {
    for (const e of entries) this.add(e);
  }

  /** Registers a bare class: a descriptor with no knob, demo, bench or engine entries (their defaults apply). */
  register(name: string, version: string, cls: SparseMethodClass): void {
    this.add({ name, version, cls });
  }

  add(descriptor: MethodDescriptor): void {
    const { name, version } = descriptor;
    if (typeof name !== 'string' || !/^[a-z][a-z0-9_]*$/.test(name)) {
      throw new InvalidArgumentError('method name', name, 'snake_case letters, digits and underscores, starting with a letter');
    }
    if (!VERSION.test(version)) throw new InvalidArgumentError(`version of method "${name}"`, version, 'of the form v<N>[.<N>...] (e.g. "v1", "v2.1")');
    let versions = this.table.get(name);
    if (!versions) this.table.set(name, (versions = new Map()));
    if (versions.has(version)) {
      throw new SparseAttentionError(`sparse method "${name}" version ${version} is already registered (by ${versions.get(version)!.cls.name || 'an anonymous class'})`);
    }
    versions.set(version, descriptor);
  }

  get(name: string, version?: string): SparseMethodClass {
    return this.descriptor(name, version).cls;
  }

  /** The descriptor of `name` at `version`, or its newest. */
  descriptor(name: string, version?: string): MethodDescriptor {
    const versions = this.table.get(name);
    if (!versions) {
      throw new SparseAttentionError(`unknown sparse method "${name}"; registered: ${this.describe()}`);
    }
    if (version === undefined) return versions.get(this.latest(name))!;
    const d = versions.get(version);
    if (!d) {
      throw new SparseAttentionError(`sparse method "${name}" has no version ${version}; registered versions: ${this.versions(name).join(', ')}`);
    }
    return d;
  }

  has(name: string, version?: string): boolean {
    const versions = this.table.get(name);
    return !!versions && (version === undefined || versions.has(version));
  }

  /** Versions of one method, oldest first. */
  versions(name: string): string[] {
    return [...(this.table.get(name)?.keys() ?? [])].sort(compareVersions);
  }

  latest(name: string): string {
    const v = this.versions(name);
    if (v.length === 0) throw new SparseAttentionError(`unknown sparse method "${name}"; registered: ${this.describe()}`);
    return v[v.length - 1];
  }

  /** The newest descriptor of every method, by name. */
  descriptors(): MethodDescriptor[] {
    return [...this.table.keys()].sort().map((name) => this.descriptor(name));
  }

  list(): { name: string; versions: string[]; latest: string; description: string }[] {
    return [...this.table.keys()].sort().map((name) => ({
      name,
      versions: this.versions(name),
      latest: this.latest(name),
      description: this.get(name).description,
    }));
  }

  private describe(): string {
    const all = this.list().map((m) => `${m.name} (${m.versions.join(', ')})`);
    return all.length ? all.join(', ') : '(none)';
  }
}
