import { once } from 'node:events';
import { finished, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { sha256Hex } from '../format/digests.js';
import { MEMBER_MODE, member, sparseHeaderName } from '../format/container.js';
import type { EndMarker, MemberDigest } from '../format/members.js';
import { mapEntry, mapHead, mapTail, SparseMapSize } from '../format/sparse.js';

type Entry = ReturnType<tar.Pack['entry']>;

async function write(entry: Entry, chunk: Buffer): Promise<void> {
  if (!entry.write(chunk)) await once(entry, 'drain');
}

/** A block for a sparse member, in memory its owner wants back once the destination wrote it. */
export interface LentBlock {
  data: Buffer;
  /** Called once the destination has written `data` (its write callback): the memory is free. */
  written: () => void;
}

type Destination = Writable | NodeJS.WritableStream;

/**
 * Between the tar packer and the destination. It hands every chunk on, and gives a lent block's
 * memory back only from the destination's write callback: until then the destination may still
 * be reading it. tar-stream hands a member's data through as the same Buffer objects, which is
 * how a lent block is recognized here.
 */
class Outlet extends Writable {
  private readonly lent = new Map<Uint8Array, () => void>();
  private pending = 0;
  private idle: (() => void) | undefined;
  private readonly destinationFailed = (err: Error): void => {
    this.destroy(err);
  };

  constructor(
    private readonly destination: Destination,
    private readonly endDestination: boolean,
  ) {
    super();
    destination.on('error', this.destinationFailed);
  }

  /** `block` is about to be written: its memory goes back to its owner once the destination wrote it. */
  lend(block: LentBlock, member: string): void {
    if (this.lent.has(block.data)) throw new Error(`${member}: a lent block was written twice`);
    this.lent.set(block.data, block.written);
  }

  /** Lets go of the destination (stdout lives on after the stream: its errors are not ours then). */
  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.destination.removeListener('error', this.destinationFailed);
    callback(err);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.pending++;
    const flowing = this.destination.write(chunk, (err) => {
      this.pending--;
      const written = this.lent.get(chunk);
      this.lent.delete(chunk);
      if (!err) written?.();
      if (this.pending === 0) this.idle?.();
    });
    if (flowing) callback();
    else this.destination.once('drain', () => callback());
  }

  override _final(callback: (err?: Error | null) => void): void {
    const finish = (): void => {
      this.idle = undefined;
      if (!this.endDestination) {
        callback();
        return;
      }
      // Finished only when the destination has flushed and closed, or failed doing it.
      const stopWatching = finished(this.destination, { readable: false }, (err) => {
        stopWatching();
        callback(err);
      });
      this.destination.end();
    };
    if (this.pending === 0) finish();
    else this.idle = finish;
  }
}

/**
 * Writes the tar stream (pax headers) to a destination, with backpressure: a member's data is
 * only produced as fast as the destination takes it.
 */
export class StreamWriter {
  private readonly pack = tar.pack();
  private readonly outlet: Outlet;
  private readonly done: Promise<void>;
  private readonly mtime: Date;
  /** The SHA-256 of every JSON member written so far: end.json records them (format version 2). */
  private readonly digests: MemberDigest[] = [];

  /**
   * `mtime` is every member's modification time: the time the stream is written unless given (the
   * golden fixtures fix it, so that the same inputs give the same bytes).
   */
  constructor(destination: Destination, mtime = new Date()) {
    this.mtime = mtime;
    this.outlet = new Outlet(destination, destination !== process.stdout);
    this.done = pipeline(this.pack, this.outlet);
    this.done.catch(() => undefined);
  }

  async json(name: string, value: unknown): Promise<void> {
    const body = Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
    this.digests.push({ name, sha256: sha256Hex(body) });
    await new Promise<void>((resolve, reject) => {
      this.pack.entry({ name, size: body.length, mode: MEMBER_MODE, mtime: this.mtime }, body, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  /** Writes end.json, with the digest of every JSON member before it, and closes the tar. */
  async end(volumes: number, blocks: number): Promise<void> {
    const marker: EndMarker = { complete: true, volumes, blocks, members: [...this.digests] };
    await this.json(member.end, marker);
    await this.close();
  }

  /** Writes the tar end records and waits until the destination took everything. */
  async close(): Promise<void> {
    this.pack.finalize();
    await this.done;
  }

  /**
   * Writes a GNU sparse 1.0 member whose regions are whole blocks. `regions` is how many blocks
   * will follow, and `map` their byte size as counted beforehand; `indices` and `blocks` must then
   * deliver exactly those, in ascending order.
   */
  async sparse(
    name: string,
    realSize: number,
    blockSize: number,
    map: SparseMapSize,
    indices: AsyncIterable<number>,
    /** Each block as one buffer, or lent: given back once the destination wrote it. */
    blocks: AsyncIterable<Buffer | LentBlock>,
  ): Promise<void> {
    const mapLength = map.paddedLength(realSize);
    const size = mapLength + map.regions * blockSize;
    const entry = this.pack.entry({
      name: sparseHeaderName(name),
      size,
      mode: MEMBER_MODE,
      mtime: this.mtime,
      pax: {
        'GNU.sparse.major': '1',
        'GNU.sparse.minor': '0',
        'GNU.sparse.name': name,
        'GNU.sparse.realsize': String(realSize),
      },
    });
    const finished = new Promise<void>((resolve, reject) => {
      entry.on('error', reject);
      entry.on('finish', resolve);
    });
    // Awaited below only on success; when the blocks fail first, the entry fails too, and that
    // second report of the same failure must not surface as an unhandled rejection.
    finished.catch(() => undefined);
    let text = mapHead(map.regions);
    let written = 0;
    let count = 0;
    for await (const index of indices) {
      text += mapEntry(index * blockSize, blockSize);
      count++;
      if (text.length >= 64 * 1024) {
        await write(entry, Buffer.from(text, 'latin1'));
        written += text.length;
        text = '';
      }
    }
    if (count !== map.regions)
      throw new Error(`${name}: the block list changed between two passes (${count} vs ${map.regions})`);
    const head = Buffer.from(text, 'latin1');
    await write(entry, Buffer.concat([head, mapTail(realSize, written + head.length)]));
    let blocksWritten = 0;
    for await (const block of blocks) {
      const data = Buffer.isBuffer(block) ? block : block.data;
      if (data.length !== blockSize) throw new Error(`${name}: a block of ${data.length} bytes`);
      if (!Buffer.isBuffer(block)) this.outlet.lend(block, name);
      await write(entry, data);
      blocksWritten++;
    }
    if (blocksWritten !== map.regions) {
      throw new Error(`${name}: ${blocksWritten} blocks delivered, ${map.regions} announced`);
    }
    entry.end(undefined);
    await finished;
  }

  /** Stops the stream without the tar end blocks, so a reader sees it truncated. */
  abort(err: Error): void {
    this.pack.destroy(err);
  }
}
