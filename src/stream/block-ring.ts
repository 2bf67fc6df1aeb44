/** One block-sized place in a ring: its number, and the bytes it holds. */
export interface RingSlot {
  readonly slot: number;
  readonly data: Buffer;
}

/**
 * Block memory: a fixed number of block-sized slots of one buffer, taken once per stream (a
 * reader's) or per volume (a backup's) and reused block after block.
 *
 * Why not a fresh buffer per block: each one is new memory for the kernel to fault in and for the
 * garbage collector to follow. On a restore to files that cost more than the copy into it; on a
 * backup, blocks held until they leave in order outlived V8's young generation and cost it a
 * mark-compact collection every few dozen megabytes (docs/PERFORMANCE.md). The ring's size is
 * the whole block memory, whatever the volume's size.
 */
export class BlockRing {
  private readonly memory: Buffer;
  private readonly free: number[];
  /** Callers of `acquire` waiting for a slot, first come first served. */
  private readonly waiting: ((slot: RingSlot) => void)[] = [];

  constructor(
    readonly slots: number,
    private readonly blockSize: number,
  ) {
    this.memory = Buffer.allocUnsafeSlow(slots * blockSize);
    // Handed out lowest first, and the slot given back last is taken next: a short stream, or
    // a visitor that settles at once, touches only the first slots' pages.
    this.free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  }

  /** A free slot, for a caller that keeps count of its slots itself. */
  take(): RingSlot {
    const slot = this.free.pop();
    if (slot === undefined) throw new Error('BlockRing: no free slot');
    return this.view(slot);
  }

  /** A free slot, once there is one: waiters are served in the order they asked. */
  acquire(): Promise<RingSlot> {
    const slot = this.waiting.length === 0 ? this.free.pop() : undefined;
    if (slot !== undefined) return Promise.resolve(this.view(slot));
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(slot: RingSlot): void {
    const next = this.waiting.shift();
    // A fresh view of the same memory: each lending of a slot is a distinct Buffer object, which
    // the tar writer recognizes its blocks by.
    if (next !== undefined) next(this.view(slot.slot));
    else this.free.push(slot.slot);
  }

  private view(slot: number): RingSlot {
    return { slot, data: this.memory.subarray(slot * this.blockSize, (slot + 1) * this.blockSize) };
  }
}
