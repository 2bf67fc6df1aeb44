/** One block-sized place in a ring: its number, and the bytes it holds. */
export interface RingSlot {
  readonly slot: number;
  readonly data: Buffer;
}

/**
 * The memory a stream reader puts its blocks in: a fixed number of block-sized slots of one
 * buffer, taken once per stream and reused block after block.
 *
 * Why not a fresh buffer per block: each one is new memory for the kernel to fault in and for the
 * garbage collector to follow, and on a restore to files that cost more than the copy into it
 * (docs/PERFORMANCE.md). The ring's size is the reader's whole block memory, whatever the
 * volume's size.
 */
export class BlockRing {
  private readonly memory: Buffer;
  private readonly free: number[];

  constructor(
    readonly slots: number,
    private readonly blockSize: number,
  ) {
    this.memory = Buffer.allocUnsafeSlow(slots * blockSize);
    // Handed out lowest first, and the slot given back last is taken next: a short stream, or
    // a visitor that settles at once, touches only the first slots' pages.
    this.free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  }

  /** A free slot; the caller keeps count, as the ring cannot wait for one. */
  take(): RingSlot {
    const slot = this.free.pop();
    if (slot === undefined) throw new Error('BlockRing: no free slot');
    return { slot, data: this.memory.subarray(slot * this.blockSize, (slot + 1) * this.blockSize) };
  }

  give(slot: RingSlot): void {
    this.free.push(slot.slot);
  }
}
