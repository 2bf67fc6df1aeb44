/** docs/FORMAT.md, "`<vol-id>.sum.json`: integrity": how a volume's checksums are computed. */
import { createHash, type Hash } from 'node:crypto';
import { BLOCK_SIZE } from './container.js';

/**
 * The two per-volume checksums of a stream, fed one block digest at a time in map order:
 * - `checksum`: EBS's LINEAR aggregate (SHA-256 over the blocks' 32-byte SHA-256 digests), which
 *   CompleteSnapshot takes as it is;
 * - `indexedSha256`: SHA-256 over each block's 8-byte big-endian index and its digest, so that a
 *   block moved to another offset no longer matches. For a Full stream it is the source
 *   snapshot's content digest as docs/FORMAT.md defines it.
 */
export class VolumeDigests {
  private readonly linear: Hash = createHash('sha256');
  private readonly indexed: Hash = createHash('sha256');
  private readonly index = Buffer.alloc(8);
  blockCount = 0;

  add(blockIndex: number, digest: Buffer): void {
    this.linear.update(digest);
    this.index.writeBigUInt64BE(BigInt(blockIndex));
    this.indexed.update(this.index).update(digest);
    this.blockCount++;
  }

  /** Ends both hashes: call once, after the last block. */
  finish(): { blockCount: number; checksum: string; indexedSha256: string } {
    return {
      blockCount: this.blockCount,
      checksum: this.linear.digest('base64'),
      indexedSha256: this.indexed.digest('hex'),
    };
  }
}

export const sha256Hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A block of zeros, and its SHA-256: a block whose digest is this one holds only zeros. */
export const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
export const ZERO_BLOCK_SHA256 = createHash('sha256').update(ZERO_BLOCK).digest();
