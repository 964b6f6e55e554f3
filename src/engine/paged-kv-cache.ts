/**
 * A paged KV cache (vLLM / OpenVINO GenAI style): fixed-size physical blocks handed out by an
 * allocator, and per sequence and layer a block table mapping logical block i (cache slots
 * [i·bs, (i+1)·bs)) to a physical block of that layer. Layers have their own allocators and tables,
 * as in OpenVINO, because cache eviction removes different blocks in each layer; every operation but
 * eviction changes all layers alike, so without eviction all tables are equal. Without eviction slot t
 * holds the sequence's token t; after evictions the kept tokens close up (the engine tracks positions).
 *
 *   keys[layer], values[layer]: Float32Array [numBlocks, Hkv, blockSize, D]
 *   slot t of a sequence lives in physical block table[layer][floor(t / bs)], offset t % bs
 *
 * A backend may attach a resident copy of the storage (attachDeviceCopy: the WebGPU backend keeps
 * one GPU buffer per layer for K and one for V); writes then go through to it, new rows only.
 *
 * Writes check that every slot belongs to the writing sequence's own blocks, so one sequence can
 * never overwrite another's keys and values.
 */
import { InvalidArgumentError, requireInteger, SparseAttentionError } from '../core/errors.js';
import { HeadTensor } from '../core/tensor.js';
import type { PagedKvDeviceCopy } from '../backends/backend.js';

/** Hands out physical block ids [0, numBlocks); a freed id can be handed out again. */
export class BlockAllocator {
  private readonly freeList: number[];
  private readonly inUse: Uint8Array;

  constructor(readonly numBlocks: number) {
    requireInteger('numBlocks', numBlocks, 1);
    // Lowest ids first, so tests and dumps read naturally.
    this.freeList = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
    this.inUse = new Uint8Array(numBlocks);
  }

  get freeCount(): number {
    return this.freeList.length;
  }

  get usedCount(): number {
    return this.numBlocks - this.freeList.length;
  }

  allocate(): number {
    const id = this.freeList.pop();
    if (id === undefined) throw new SparseAttentionError(`KV cache is full: all ${this.numBlocks} blocks are in use`);
    this.inUse[id] = 1;
    return id;
  }

  free(id: number): void {
    requireInteger('block id', id, 0, this.numBlocks - 1);
    if (!this.inUse[id]) throw new InvalidArgumentError('block id', id, 'a block that is currently allocated (double free)');
    this.inUse[id] = 0;
    this.freeList.push(id);
  }

  isAllocated(id: number): boolean {
    return this.inUse[id] === 1;
  }
}

export interface GatheredKv {
  /** [1, Hkv, n, D] f32 */
  k: HeadTensor;
  v: HeadTensor;
  /** Position in the sequence of each gathered token, ascending. */
  positions: Int32Array;
}

export interface PagedKvCacheShape {
  numLayers: number;
  numBlocks: number;
  kvHeads: number;
  headDim: number;
  blockSize: number;
}

export class PagedKvCache {
  readonly numLayers: number;
  readonly numBlocks: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly blockSize: number;
  /** One allocator per layer; they hand out the same number of blocks. */
  readonly allocators: BlockAllocator[];
  /** Per layer, [numBlocks, Hkv, blockSize, D]. */
  readonly keys: Float32Array[];
  readonly values: Float32Array[];
  /** Per sequence, per layer, logical → physical block ids. */
  private readonly tables = new Map<number, number[][]>();
  private copy: PagedKvDeviceCopy | null = null;

  constructor(shape: PagedKvCacheShape) {
    this.numLayers = requireInteger('numLayers', shape.numLayers, 1);
    this.numBlocks = requireInteger('numBlocks', shape.numBlocks, 1);
    this.kvHeads = requireInteger('kvHeads', shape.kvHeads, 1);
    this.headDim = requireInteger('headDim', shape.headDim, 1);
    this.blockSize = requireInteger('blockSize', shape.blockSize, 1);
    this.allocators = Array.from({ length: this.numLayers }, () => new BlockAllocator(this.numBlocks));
    const n = this.numBlocks * this.kvHeads * this.blockSize * this.headDim;
    this.keys = Array.from({ length: this.numLayers }, () => new Float32Array(n));
    this.values = Array.from({ length: this.numLayers }, () => new Float32Array(n));
  }

  /**
   * A backend's resident copy of the storage (e.g. one GPU buffer per layer for K and one for V),
   * null until a backend attaches one. Every write goes to both; blocks are never moved (eviction and
   * freeing only edit block tables), so the copy stays equal to `keys`/`values` with row writes alone.
   */
  get deviceCopy(): PagedKvDeviceCopy | null {
    return this.copy;
  }

  /** Replaces the resident copy (disposing the previous one); null releases it. */
  attachDeviceCopy(copy: PagedKvDeviceCopy | null): void {
    if (this.copy && this.copy !== copy) this.copy.dispose();
    this.copy = copy;
  }

  /** Layer 0's allocator (every layer's holds as many blocks). */
  get allocator(): BlockAllocator {
    return this.allocators[0];
  }

  /** Free blocks per layer. */
  get freeBlocks(): number {
    return this.allocators[0].freeCount;
  }

  /** Blocks needed to hold `tokens` tokens. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /** Logical → physical block ids of a sequence in a layer (a copy; empty when it holds none). */
  blockTable(seqId: number, layer = 0): number[] {
    requireInteger('layer', layer, 0, this.numLayers - 1);
    return [...(this.tables.get(seqId)?.[layer] ?? [])];
  }

  /** Slots the sequence's blocks hold (per layer). */
  capacity(seqId: number): number {
    return (this.tables.get(seqId)?.[0].length ?? 0) * this.blockSize;
  }

  /** Grows the sequence's tables to hold `slots` slots; throws (allocating nothing) if too few blocks are free. */
  reserve(seqId: number, slots: number): void {
    requireInteger('tokens', slots, 0);
    let tables = this.tables.get(seqId);
    const need = this.blocksFor(slots) - (tables?.[0].length ?? 0);
    if (need <= 0) return;
    if (need > this.freeBlocks) {
      throw new SparseAttentionError(`KV cache cannot hold ${slots} tokens for sequence ${seqId}: needs ${need} more blocks, ${this.freeBlocks} free`);
    }
    if (!tables) this.tables.set(seqId, (tables = this.allocators.map(() => [])));
    tables.forEach((t, layer) => {
      for (let i = 0; i < need; i++) t.push(this.allocators[layer].allocate());
    });
  }

  /** Returns every block of the sequence to the allocators; the number of blocks per layer. */
  freeSequence(seqId: number): number {
    const tables = this.tables.get(seqId) ?? [];
    tables.forEach((t, layer) => t.forEach((id) => this.allocators[layer].free(id)));
    this.tables.delete(seqId);
    return tables[0]?.length ?? 0;
  }

  /**
   * Cache eviction: removes the given logical blocks (ascending, per layer, as many in every layer)
   * from the sequence's tables and frees them; later blocks move down, so the sequence's slots close up.
   * Only full blocks below `length` (the sequence's written slots) can go.
   */
  evictBlocks(seqId: number, perLayer: readonly (readonly number[])[], length: number): void {
    const tables = this.tables.get(seqId);
    if (!tables) throw new InvalidArgumentError('seqId', seqId, 'a sequence holding blocks');
    if (perLayer.length !== this.numLayers || perLayer.some((b) => b.length !== perLayer[0].length)) {
      throw new InvalidArgumentError('evicted blocks per layer', perLayer.map((b) => b.length), `${this.numLayers} lists of equal length`);
    }
    const full = Math.floor(length / this.blockSize);
    perLayer.forEach((blocks, layer) => {
      blocks.forEach((b, i) => {
        if (!Number.isInteger(b) || b < 0 || b >= full || (i > 0 && b <= blocks[i - 1])) {
          throw new InvalidArgumentError(`evicted blocks of layer ${layer}`, [...blocks], `strictly ascending full blocks below ${full}`);
        }
      });
      const gone = new Set(blocks);
      for (const b of blocks) this.allocators[layer].free(tables[layer][b]);
      tables[layer] = tables[layer].filter((_, i) => !gone.has(i));
    });
  }

  /**
   * Writes one layer's keys and values of tokens [start, start + n) of a sequence.
   * k, v: [1, Hkv, n, D] (either layout, f32 or f16).
   */
  write(layer: number, seqId: number, start: number, k: HeadTensor, v: HeadTensor): void {
    requireInteger('layer', layer, 0, this.numLayers - 1);
    requireInteger('start', start, 0);
    for (const [name, t] of [['k', k], ['v', v]] as const) {
      if (t.batch !== 1 || t.heads !== this.kvHeads || t.headDim !== this.headDim || t.length !== k.length) {
        throw new InvalidArgumentError(`${name}.shape`, t.shape, `{ batch: 1, heads: ${this.kvHeads}, length: ${k.length}, headDim: ${this.headDim} }`);
      }
    }
    const end = start + k.length;
    if (end > this.capacity(seqId)) {
      throw new InvalidArgumentError('start + k.length', end, `at most the ${this.capacity(seqId)} token slots reserved for sequence ${seqId}`);
    }
    const table = this.tables.get(seqId)![layer];
    const D = this.headDim;
    const kf = k.toFloat32Array();
    const vf = v.toFloat32Array();
    for (let t = start; t < end; t++) {
      const block = table[Math.floor(t / this.blockSize)];
      for (let h = 0; h < this.kvHeads; h++) {
        const dst = this.slotOffset(block, h, t % this.blockSize);
        const src = k.offset(0, h, t - start);
        this.keys[layer].set(kf.subarray(src, src + D), dst);
        this.values[layer].set(vf.subarray(v.offset(0, h, t - start), v.offset(0, h, t - start) + D), dst);
      }
    }
    if (this.copy) this.writeThrough(layer, table, start, end);
  }

  /** The new slots [start, end) to the resident copy: per block and head one contiguous run of rows. */
  private writeThrough(layer: number, table: readonly number[], start: number, end: number): void {
    const bs = this.blockSize;
    for (let t = start; t < end; t = (Math.floor(t / bs) + 1) * bs) {
      const rows = Math.min(end, (Math.floor(t / bs) + 1) * bs) - t;
      for (let h = 0; h < this.kvHeads; h++) {
        const o = this.slotOffset(table[Math.floor(t / bs)], h, t % bs);
        const n = rows * this.headDim;
        this.copy!.writeRows(layer, o, this.keys[layer].subarray(o, o + n), this.values[layer].subarray(o, o + n));
      }
    }
  }

  /**
   * Copies the keys and values of the given logical blocks (ascending) of a sequence into
   * contiguous [1, Hkv, n, D] tensors, n = tokens of those blocks below `length` (the sequence's
   * written length, so the last block may be partial). Also returns each gathered token's position.
   */
  gather(layer: number, seqId: number, logicalBlocks: readonly number[], length: number): GatheredKv {
    return this.gatherBlocks(layer, this.tables.get(seqId)?.[layer] ?? [], logicalBlocks, length);
  }

  /** As `gather`, from an explicit block table (logical → physical), the way a kernel reads the cache. */
  gatherBlocks(layer: number, table: readonly number[], logicalBlocks: readonly number[], length: number): GatheredKv {
    requireInteger('layer', layer, 0, this.numLayers - 1);
    if (length > table.length * this.blockSize) {
      throw new InvalidArgumentError('length', length, `at most the ${table.length * this.blockSize} token slots of the block table`);
    }
    const positions: number[] = [];
    let prev = -1;
    for (const lb of logicalBlocks) {
      if (!Number.isInteger(lb) || lb <= prev || lb * this.blockSize >= length) {
        throw new InvalidArgumentError('logicalBlocks', logicalBlocks, `strictly ascending block indices below ${this.blocksFor(length)}`);
      }
      prev = lb;
      for (let t = lb * this.blockSize; t < Math.min((lb + 1) * this.blockSize, length); t++) positions.push(t);
    }
    const shape = { batch: 1, heads: this.kvHeads, length: positions.length, headDim: this.headDim };
    const k = HeadTensor.zeros(shape);
    const v = HeadTensor.zeros(shape);
    const D = this.headDim;
    for (let h = 0; h < this.kvHeads; h++) {
      positions.forEach((t, i) => {
        const src = this.slotOffset(table[Math.floor(t / this.blockSize)], h, t % this.blockSize);
        (k.data as Float32Array).set(this.keys[layer].subarray(src, src + D), k.offset(0, h, i));
        (v.data as Float32Array).set(this.values[layer].subarray(src, src + D), v.offset(0, h, i));
      });
    }
    return { k, v, positions: Int32Array.from(positions) };
  }

  /**
   * Views (no copy) of one logical block of a sequence in a layer's storage, [Hkv, blockSize, D]
   * each: what a kernel reading the cache in place sees. Slots past the written length hold stale data.
   */
  blockViews(layer: number, seqId: number, logicalBlock: number): { k: Float32Array; v: Float32Array } {
    requireInteger('layer', layer, 0, this.numLayers - 1);
    const table = this.tables.get(seqId)?.[layer] ?? [];
    requireInteger('logicalBlock', logicalBlock, 0, table.length - 1);
    const o = this.slotOffset(table[logicalBlock], 0, 0);
    const n = this.kvHeads * this.blockSize * this.headDim;
    return { k: this.keys[layer].subarray(o, o + n), v: this.values[layer].subarray(o, o + n) };
  }

  /** Element offset of (physical block, kv head, slot, 0) in a layer's storage. */
  slotOffset(block: number, head: number, slot: number): number {
    return ((block * this.kvHeads + head) * this.blockSize + slot) * this.headDim;
  }
}
