import { createHash } from 'node:crypto';

export const BLOCK_SIZE = 512 * 1024;
export const GIB = 1024 * 1024 * 1024;

/**
 * One 512 KiB block as EBS stores it. Synthetic blocks are generated from (seed, index) on demand,
 * so a volume with 20,000 written blocks costs a few bytes per block, not 10 GiB.
 * Each write makes a new Block object: ListChangedBlocks compares identities, as EBS compares writes.
 */
export class Block {
  private digest?: Buffer;
  private constructor(
    private readonly buffer: Buffer | undefined,
    private readonly seed: number,
  ) {}

  static synthetic(seed: number): Block {
    return new Block(undefined, seed);
  }

  /** A written block; `digest`, when the writer already checked it, spares hashing it again. */
  static fromData(data: Buffer, digest?: Buffer): Block {
    if (data.length !== BLOCK_SIZE) throw new Error(`block must be ${BLOCK_SIZE} bytes`);
    const block = new Block(data, 0);
    block.digest = digest;
    return block;
  }

  data(): Buffer {
    return this.buffer ?? syntheticData(this.seed);
  }

  sha256(): Buffer {
    this.digest ??= createHash('sha256').update(this.data()).digest();
    return this.digest;
  }

  isZero(): boolean {
    if (!this.buffer) return false;
    for (let i = 0; i < this.buffer.length; i += 8) {
      if (this.buffer.readBigUInt64LE(i) !== 0n) return false;
    }
    return true;
  }
}

/** xorshift32: fast, deterministic, never all-zero output for a non-zero state. */
export function prng(seed: number): () => number {
  let state = (seed ^ 0x9e3779b9) >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
}

// A 4 KiB pseudo-random pattern, unique per seed, repeated through the block: distinct blocks for
// distinct seeds at a fraction of the cost of 512 KiB of random words.
const PATTERN_WORDS = 1024;

function syntheticData(seed: number): Buffer {
  const next = prng(seed);
  const words = new Uint32Array(PATTERN_WORDS);
  for (let i = 0; i < words.length; i++) words[i] = next();
  return Buffer.alloc(BLOCK_SIZE, Buffer.from(words.buffer));
}

/** Picks `count` distinct block indices below `limit`, reproducibly from the seed. */
export function pickIndices(count: number, limit: number, seed: number): number[] {
  if (count > limit) throw new Error(`cannot write ${count} blocks into a volume of ${limit} blocks`);
  const next = prng(seed);
  const picked = new Set<number>();
  while (picked.size < count) picked.add(next() % limit);
  return [...picked].sort((a, b) => a - b);
}

/** The content digest the admin API reports: see emulator/README.md. */
export function contentDigest(blocks: Map<number, Block>): { digest: string; blocks: number } {
  const hash = createHash('sha256');
  let count = 0;
  const index = Buffer.alloc(8);
  for (const i of [...blocks.keys()].sort((a, b) => a - b)) {
    const block = blocks.get(i)!;
    if (block.isZero()) continue;
    index.writeBigUInt64BE(BigInt(i));
    hash.update(index).update(block.sha256());
    count++;
  }
  return { digest: hash.digest('hex'), blocks: count };
}
