import { blockHasher } from '../block-hasher.js';

/** One block-sized place in a ring: its number, and the bytes it holds. */
export interface RingSlot {
  readonly slot: number;
  readonly data: Buffer;
}

/**
 * The memory a stream reader puts its blocks in: a fixed number of block-sized slots in one
 * SharedArrayBuffer, taken once per stream and reused block after block.
 *
 * Why not a fresh buffer per block: the block is hashed on the hashing thread while the reader
 * goes on, and a buffer moved there and back is new memory to the garbage collector each time; on
 * a 1 GiB restore its marking cost more CPU than the hash it moved away. A shared slot is hashed in
 * place, and nothing is allocated per block. The ring's size is the reader's whole block memory,
 * whatever the volume's size.
 */
export class BlockRing {
  private readonly memory: SharedArrayBuffer;
  private readonly free: number[];

  constructor(
    readonly slots: number,
    private readonly blockSize: number,
  ) {
    this.memory = new SharedArrayBuffer(slots * blockSize);
    // Handed out lowest first: a short stream touches only the first slots' pages.
    this.free = Array.from({ length: slots }, (_, i) => slots - 1 - i);
  }

  get available(): number {
    return this.free.length;
  }

  /** A free slot; the caller checks `available` first, as the ring cannot wait for one. */
  take(): RingSlot {
    const slot = this.free.pop();
    if (slot === undefined) throw new Error('BlockRing: no free slot');
    return {
      slot,
      data: Buffer.from(this.memory, slot * this.blockSize, this.blockSize),
    };
  }

  give(slot: RingSlot): void {
    this.free.push(slot.slot);
  }

  /** The SHA-256 of the slot's block; its bytes must not change until this settles. */
  hash(slot: RingSlot): Promise<Buffer> {
    return blockHasher().hashShared(this.memory, slot.slot * this.blockSize, this.blockSize);
  }

  /** The hashing thread lets go of the ring's memory. */
  close(): void {
    blockHasher().forget(this.memory);
  }
}
