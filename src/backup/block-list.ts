import type { BlockRef } from '../aws/blocks.js';

/**
 * The most block indices one volume keeps: 4 bytes each, so 16 MiB, or 2 TiB of written data.
 * A volume with more blocks is listed again for each pass instead, so memory stays bounded
 * whatever the volume size.
 */
const MAX_BLOCKS = 4 * 2 ** 20;

/**
 * The most token bytes an Incremental or Differential keeps (block tokens are base64 strings of
 * up to 256 characters; EBS API reference, Block). 16 MiB holds the tokens of a change of 100,000
 * blocks or more (50 GiB); a larger change is listed again to fetch its blocks. Worth the memory:
 * ListChangedBlocks scans a fixed span of the volume per page, so listing a small change again
 * costs as many round trips as the volume has spans.
 */
export const CHANGE_TOKEN_BYTES = 16 * 2 ** 20;

/**
 * The most token bytes a Full keeps: about one page of ListSnapshotBlocks (10,000 blocks, 5 GiB of
 * data). A Full that fits starts its reads without listing again (one round trip less before the
 * first block); a larger one lists again for its tokens, page by page as the reads go, since
 * keeping them all would cost about 100 bytes a block.
 */
export const FULL_TOKEN_BYTES = 2 ** 20;

/**
 * One listing of a volume's blocks, kept compactly so the volume need not be listed again: the
 * indices in a Uint32Array (4 bytes a block) and, when asked, the block tokens in one byte buffer.
 * The tar member needs the sparse map's size before any data, so a volume is listed once before
 * anything is written; keeping that listing spares the second listing (the sparse map) and, with
 * the tokens, the third (the reads). That matters most for ListChangedBlocks, whose pages scan a
 * fixed span of the volume and come back mostly empty for a small change.
 *
 * Past MAX_BLOCKS indices the list gives up (`indicesKept` turns false) and past `maxTokenBytes`
 * it drops the tokens (`tokensKept`): the caller lists again for what was not kept.
 */
export class BlockList {
  private indices: Uint32Array = new Uint32Array(1024);
  private tokenEnds: Uint32Array | undefined;
  private tokenBytes: Buffer | undefined;
  private count = 0;
  private tokenLength = 0;
  private gaveUp = false;

  /** `maxTokenBytes` 0 keeps no tokens. */
  constructor(
    private readonly maxTokenBytes: number,
    private readonly maxBlocks = MAX_BLOCKS,
  ) {
    if (maxTokenBytes > 0) {
      this.tokenEnds = new Uint32Array(1024);
      this.tokenBytes = Buffer.allocUnsafe(Math.min(maxTokenBytes, 64 * 1024));
    }
  }

  get indicesKept(): boolean {
    return !this.gaveUp;
  }

  get tokensKept(): boolean {
    return !this.gaveUp && this.tokenBytes !== undefined;
  }

  get length(): number {
    return this.count;
  }

  add(ref: BlockRef): void {
    if (this.gaveUp) return;
    if (this.count >= this.maxBlocks) {
      this.gaveUp = true;
      this.indices = new Uint32Array(0);
      this.dropTokens();
      return;
    }
    if (this.count === this.indices.length) this.indices = grown(this.indices);
    this.indices[this.count] = ref.index;
    this.addToken(ref.token);
    this.count++;
  }

  private addToken(token: string | undefined): void {
    if (this.tokenEnds === undefined || this.tokenBytes === undefined) return;
    // An explicit zero region has no token: an empty one (a real token is never empty).
    const length = token === undefined ? 0 : Buffer.byteLength(token, 'latin1');
    if (this.tokenLength + length > this.maxTokenBytes) {
      this.dropTokens();
      return;
    }
    if (this.count === this.tokenEnds.length) this.tokenEnds = grown(this.tokenEnds);
    if (this.tokenLength + length > this.tokenBytes.length) {
      const bigger = Buffer.allocUnsafe(Math.min(this.maxTokenBytes, 2 * (this.tokenLength + length)));
      this.tokenBytes.copy(bigger, 0, 0, this.tokenLength);
      this.tokenBytes = bigger;
    }
    if (token !== undefined) this.tokenBytes.write(token, this.tokenLength, 'latin1');
    this.tokenLength += length;
    this.tokenEnds[this.count] = this.tokenLength;
  }

  private dropTokens(): void {
    this.tokenEnds = undefined;
    this.tokenBytes = undefined;
    this.tokenLength = 0;
  }

  /** The kept indices, in listing order. */
  *blockIndices(): Generator<number> {
    if (this.gaveUp) throw new Error('BlockList: the indices were not kept');
    for (let i = 0; i < this.count; i++) yield this.indices[i] ?? 0;
  }

  /** The kept blocks with their tokens, in listing order. */
  *refs(): Generator<BlockRef> {
    const ends = this.tokenEnds;
    const bytes = this.tokenBytes;
    if (this.gaveUp || ends === undefined || bytes === undefined) {
      throw new Error('BlockList: the tokens were not kept');
    }
    let start = 0;
    for (let i = 0; i < this.count; i++) {
      const end = ends[i] ?? start;
      const index = this.indices[i] ?? 0;
      yield end === start ? { index } : { index, token: bytes.toString('latin1', start, end) };
      start = end;
    }
  }
}

function grown(array: Uint32Array): Uint32Array {
  const bigger = new Uint32Array(array.length * 2);
  bigger.set(array);
  return bigger;
}
