/**
 * docs/FORMAT.md, "`<vol-id>.ebs`: the volume data". The map that opens the data of a GNU sparse
 * 1.0 member: the number of entries, then offset and size for each, one decimal number per line,
 * zero-padded to a 512-byte boundary. A final (realsize, 0) entry makes GNU tar extend the file to
 * its full size.
 */
import { createHash } from 'node:crypto';
export const TAR_BLOCK = 512;

export const padTo512 = (n: number): number => Math.ceil(n / TAR_BLOCK) * TAR_BLOCK;

const digits = (n: number): number => String(n).length;

/** Tracks the map's byte length while regions are counted, without keeping them. */
export class SparseMapSize {
  private entries = 0;
  private bytes = 0;

  add(offset: number, size: number): void {
    this.entries++;
    this.bytes += digits(offset) + digits(size) + 2;
  }

  /** Padded length of the whole map, including the count line and the terminating entry. */
  paddedLength(realSize: number): number {
    const count = this.entries + 1;
    return padTo512(digits(count) + 1 + this.bytes + digits(realSize) + digits(0) + 2);
  }

  get regions(): number {
    return this.entries;
  }
}

export function mapHead(regions: number): string {
  return `${regions + 1}\n`;
}

export function mapEntry(offset: number, size: number): string {
  return `${offset}\n${size}\n`;
}

export function mapTail(realSize: number, written: number): Buffer {
  const tail = Buffer.from(mapEntry(realSize, 0));
  const padded = Buffer.alloc(padTo512(written + tail.length) - written);
  tail.copy(padded);
  return padded;
}

/** A growable list of block indices: 4 bytes per block, the only per-block state a reader keeps. */
export class IndexList {
  private data = new Uint32Array(1024);
  length = 0;

  push(value: number): void {
    if (this.length === this.data.length) {
      const bigger = new Uint32Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = value;
  }

  /**
   * The SHA-256 of the indices in order (4 bytes each, in the machine's order: little-endian on
   * every platform Node supports but s390x): what a pending restore binds itself to.
   */
  digest(): Buffer {
    return createHash('sha256')
      .update(new Uint8Array(this.data.buffer, 0, this.length * 4))
      .digest();
  }

  at(i: number): number {
    const value = this.data[i];
    if (value === undefined || i >= this.length)
      throw new RangeError(`index ${i} is past the list's ${this.length}`);
    return value;
  }
}

/** The sparse map of a member is malformed; the message says how. */
export class SparseMapError extends Error {
  constructor(reason: string) {
    super(`sparse map: ${reason}`);
    this.name = 'SparseMapError';
  }
}

/**
 * Incremental parser for the sparse map that opens an `.ebs` member's data. Every region must be
 * one whole block at a block-aligned offset, and the last entry must be (realSize, 0).
 */
export class SparseMapParser {
  private pending = '';
  /** Bytes of member data seen so far. */
  private seen = 0;
  private count: number | undefined;
  private numbers = 0;
  private offset = 0;
  private mapEnd: number | undefined;
  readonly blocks = new IndexList();
  done = false;

  constructor(
    private readonly blockSize: number,
    private readonly realSize: number,
  ) {}

  /** Feeds a chunk; returns the data bytes after the padded map (possibly empty), or undefined while in the map. */
  push(chunk: Buffer): Buffer | undefined {
    if (this.done) return chunk;
    const chunkStart = this.seen;
    this.seen += chunk.length;
    /** Where, in this chunk, the bytes after the map text begin. */
    let from = 0;
    if (this.mapEnd === undefined) {
      const textStart = chunkStart - this.pending.length;
      this.pending += chunk.toString('latin1');
      let pos = 0;
      for (;;) {
        const nl = this.pending.indexOf('\n', pos);
        if (nl < 0) break;
        this.take(this.pending.slice(pos, nl));
        pos = nl + 1;
        if (this.count !== undefined && this.numbers === this.count * 2) {
          this.mapEnd = padTo512(textStart + pos);
          from = textStart + pos - chunkStart;
          break;
        }
      }
      if (this.mapEnd === undefined) {
        this.pending = this.pending.slice(pos);
        if (this.pending.length > 64) throw new SparseMapError('a line is too long');
        return undefined;
      }
      this.pending = '';
    }
    // The map is padded with zero bytes: anything else there is damage that nothing would check.
    const padEnd = Math.min(chunk.length, this.mapEnd - chunkStart);
    for (let i = from; i < padEnd; i++) {
      if (chunk[i] !== 0) throw new SparseMapError('the padding after the map is not zero');
    }
    if (this.seen < this.mapEnd) return undefined;
    this.done = true;
    return chunk.subarray(this.mapEnd - chunkStart);
  }

  private take(line: string): void {
    if (!/^\d{1,20}$/.test(line)) throw new SparseMapError(`"${line.slice(0, 20)}" is not a number`);
    const value = Number(line);
    if (!Number.isSafeInteger(value)) throw new SparseMapError('a number is too large');
    if (this.count === undefined) {
      if (value < 1) throw new SparseMapError('no entries');
      this.count = value;
      return;
    }
    const isOffset = this.numbers % 2 === 0;
    const last = this.numbers >= this.count * 2 - 2;
    this.numbers++;
    if (isOffset) {
      this.offset = value;
      return;
    }
    if (last) {
      if (this.offset !== this.realSize || value !== 0) {
        throw new SparseMapError(
          `the last entry must be (${this.realSize}, 0), found (${this.offset}, ${value})`,
        );
      }
      return;
    }
    if (
      value !== this.blockSize ||
      this.offset % this.blockSize !== 0 ||
      this.offset + value > this.realSize
    ) {
      throw new SparseMapError(`region (${this.offset}, ${value}) is not one whole block inside the volume`);
    }
    const index = this.offset / this.blockSize;
    if (this.blocks.length > 0 && index <= this.blocks.at(this.blocks.length - 1)) {
      throw new SparseMapError(`block ${index} is out of ascending order`);
    }
    this.blocks.push(index);
  }
}
