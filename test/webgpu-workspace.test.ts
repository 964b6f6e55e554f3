/**
 * Workspaces passed from call to call (runtime/workspace.ts): a call holds its own buffer until it
 * gives it back, a buffer given back serves the next call that fits in it, one buffer per name stays
 * pooled (the largest), and the tensor-core XAttention estimate's lse workspace goes back to the pool
 * when its plan is destroyed (its results across calls of other sizes: the emulated estimate tests).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pooledWorkspaceBytes, releaseWorkspaces, takeWorkspace } from '../src/backends/webgpu/runtime/workspace.js';
import { acquireTestGpu } from './helpers/webgpu.js';

const gpu = await acquireTestGpu();
after(() => gpu.release());

describe('workspaces passed from call to call', { skip: gpu.skip }, () => {
  it('a held workspace is never handed out twice; one given back serves the next call that fits, and the largest stays pooled', () => {
    const device = gpu.ctx!.device;
    releaseWorkspaces(device);
    const a = takeWorkspace(device, 'test', 4096);
    const b = takeWorkspace(device, 'test', 1000);
    assert.notEqual(a.buffer, b.buffer, 'two calls encoded side by side hold two buffers');
    assert.equal(b.buffer.size, 1000);
    a.destroy();
    b.destroy();
    b.destroy(); // twice is once
    assert.equal(pooledWorkspaceBytes(device), 4096, 'the larger one stays, the smaller is freed');
    const c = takeWorkspace(device, 'test', 2000);
    assert.equal(c.buffer, a.buffer, 'a smaller call takes the pooled buffer');
    assert.equal(pooledWorkspaceBytes(device), 0, 'held, not pooled');
    const d = takeWorkspace(device, 'other', 16);
    c.destroy();
    d.destroy();
    const e = takeWorkspace(device, 'test', 8192);
    assert.notEqual(e.buffer, a.buffer, 'a larger call gets a new buffer (the pooled one is freed)');
    assert.equal(e.buffer.size, 8192);
    assert.equal(pooledWorkspaceBytes(device), 16, "another name's buffer is its own");
    e.destroy();
    releaseWorkspaces(device);
    assert.equal(pooledWorkspaceBytes(device), 0);
  });

  it('a buffer given back after releaseWorkspaces goes to the new pool', () => {
    const device = gpu.ctx!.device;
    const a = takeWorkspace(device, 'test', 64);
    releaseWorkspaces(device);
    a.destroy();
    assert.equal(pooledWorkspaceBytes(device), 64);
    releaseWorkspaces(device);
  });
});
