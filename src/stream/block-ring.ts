/** One block-sized place in a ring: its number, and the bytes it holds. */
export interface RingSlot {
  readonly slot: number;
  readonly data: Buffer;
}

/** Who asks `acquire` for a slot: `first()` says whether its block is the next the stream needs. */
export interface SlotRequest {
  first(): boolean;
}

interface Waiter {
  resolve: (slot: RingSlot) => void;
  reject: (reason: unknown) => void;
  request: SlotRequest | undefined;
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
  /** Callers of `acquire` waiting for a slot, first come first served (the next block aside). */
  private readonly waiting: Waiter[] = [];
  private closed: { reason: Error } | undefined;

  /**
   * `reserved` slots are kept free for the block the stream needs next (a backup's ring is
   * smaller than the reads it admits at once: without them, the blocks that arrived early could
   * take every slot while the next block still waits for one, and nothing could ever leave).
   */
  constructor(
    readonly slots: number,
    private readonly blockSize: number,
    private readonly reserved = 0,
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

  /**
   * A free slot, once there is one beyond the reserve (any free slot, for the block the stream
   * needs next). Waiters are served in the order they asked, but for that block, which passes them.
   */
  acquire(request?: SlotRequest): Promise<RingSlot> {
    if (this.closed !== undefined) return Promise.reject(this.closed.reason);
    if (this.waiting.length === 0 && this.grantable(request)) {
      const slot = this.free.pop();
      if (slot !== undefined) return Promise.resolve(this.view(slot));
    }
    const slot = new Promise<RingSlot>((resolve, reject) => {
      this.waiting.push({ resolve, reject, request });
    });
    this.serve();
    return slot;
  }

  give(slot: RingSlot): void {
    this.free.push(slot.slot);
    this.serve();
  }

  /**
   * No slot for anyone any more: every caller waiting, and every later one, fails with `reason`.
   * A stream that failed closes its ring, so that the reads still waiting for memory end too (the
   * blocks held for their turn will never leave, so their slots would never come back).
   */
  close(reason: Error): void {
    this.closed ??= { reason };
    for (const waiter of this.waiting.splice(0)) waiter.reject(reason);
  }

  /** The stream moved on to its next block: a waiter for that block may now use the reserve. */
  advanced(): void {
    this.serve();
  }

  private grantable(request: SlotRequest | undefined): boolean {
    return this.free.length > (request?.first() === true ? 0 : this.reserved);
  }

  private serve(): void {
    if (this.waiting.length === 0) return;
    const next = this.waiting.findIndex((w) => w.request?.first() === true);
    if (next > 0) this.grant(next);
    while (this.waiting.length > 0 && this.grantable(this.waiting[0]?.request)) this.grant(0);
  }

  /** Gives waiter `at` a free slot, when there is one. */
  private grant(at: number): void {
    const slot = this.free.pop();
    if (slot === undefined) return;
    const [waiter] = this.waiting.splice(at, 1);
    if (waiter === undefined) {
      this.free.push(slot);
      return;
    }
    // A fresh view of the same memory: each lending of a slot is a distinct Buffer object, which
    // the tar writer recognizes its blocks by.
    waiter.resolve(this.view(slot));
  }

  private view(slot: number): RingSlot {
    return { slot, data: this.memory.subarray(slot * this.blockSize, (slot + 1) * this.blockSize) };
  }
}
