/**
 * Writing an image file: at most FILE_WRITES writes in flight, every byte of each written (a
 * short write is finished, not lost), a flush in the background as it grows, and every path
 * confined to the restore's directory. The restore (restore.ts) decides what to write; this
 * module only puts it on disk.
 */
import type { FileHandle } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { messageOf, RuntimeFailure } from '../../errors.js';
import type { VolumeProgress } from '../../progress.js';

/**
 * Block writes in flight per image: the blocks the reader lends at once. Writing while the stream
 * is read and hashed keeps the disk and the CPU busy at once (a write awaited per block left the
 * process idle about half the time). Two: one under way, one queued behind it so the file never
 * waits for the event loop; more would only wait, as ext4 and XFS hold the file's lock for the
 * whole of a buffered write (8 measured no faster, docs/PERFORMANCE.md).
 */
export const FILE_WRITES = 2;
/**
 * Bytes written to an image between two flushes started in the background. An image is fsynced
 * before its rename; flushing as it is written lets the disk work while the stream is still read,
 * instead of the whole image waiting for that last fsync.
 */
const FLUSH_EVERY = 64 * 1024 * 1024;

/** The image (or redo log) of the volume being read. */
export interface ImageWrite {
  handle: FileHandle;
  path: string;
  /** Redo records written so far: the next one goes at records × RECORD. */
  records: number;
  progress: VolumeProgress;
  flush: ImageFlush;
}

/**
 * Puts an image on disk as it is written: a flush starts in the background every FLUSH_EVERY
 * bytes, and `done` waits for it and fsyncs the rest. A failed background flush is kept and
 * reported by `done`: the fsync after it would no longer report it (Linux reports a writeback
 * error once per open file).
 */
export class ImageFlush {
  private unflushed = 0;
  private flushing: Promise<void> | undefined;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly handle: Pick<FileHandle, 'datasync' | 'sync'>,
    private readonly path: string,
    private readonly every = FLUSH_EVERY,
  ) {}

  wrote(bytes: number): void {
    this.unflushed += bytes;
    if (this.unflushed < this.every || this.flushing !== undefined) return;
    this.unflushed = 0;
    this.flushing = this.handle
      .datasync()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.flushing = undefined;
      });
  }

  /** No flush runs any more; the file can close. */
  async settled(): Promise<void> {
    await this.flushing;
  }

  /** Every byte written is on disk, or this throws. */
  async done(): Promise<void> {
    await this.flushing;
    if (this.failure) {
      throw new RuntimeFailure(
        `${this.path}: writing to disk failed (${messageOf(this.failure.error)}); the image is incomplete`,
      );
    }
    await this.handle.sync();
  }
}

/**
 * Writes `buffers` at `position`, all of them: a file write may take fewer bytes than asked (a
 * full disk may say so before it says ENOSPC), and an image must not silently miss the rest.
 */
export async function writeAll(
  handle: FileHandle,
  path: string,
  buffers: Buffer[],
  position: number,
): Promise<void> {
  try {
    await writeEvery(handle, path, buffers, position);
  } catch (err) {
    if (!isSystemError(err)) throw err;
    throw Object.assign(err, { path });
  }
}

async function writeEvery(
  handle: FileHandle,
  path: string,
  buffers: Buffer[],
  position: number,
): Promise<void> {
  const expected = buffers.reduce((sum, b) => sum + b.length, 0);
  const { bytesWritten } = await handle.writev(buffers, position);
  if (bytesWritten === expected) return;
  const rest = Buffer.concat(buffers).subarray(bytesWritten);
  for (let done = 0; done < rest.length;) {
    const { bytesWritten: more } = await handle.write(
      rest,
      done,
      rest.length - done,
      position + bytesWritten + done,
    );
    if (more === 0)
      throw new RuntimeFailure(
        `${path}: a write at offset ${position + bytesWritten + done} wrote nothing; is the disk full?`,
      );
    done += more;
  }
}

/**
 * `root` joined with names that come from a stream: each was checked against its id pattern
 * already, and the result must still lie under `root`. A path that does not is never written.
 */
export function under(root: string, ...parts: string[]): string {
  const path = resolve(root, ...parts);
  const rel = relative(resolve(root), path);
  if (
    rel === '' ||
    rel.startsWith('..') ||
    isAbsolute(rel) ||
    parts.some((p) => p === '' || p.includes('/'))
  ) {
    throw new RuntimeFailure(`refusing to write ${path}: it is not a file name inside ${root}`);
  }
  return path;
}

/** An error of the operating system (a full disk, a read-only file system, a permission). */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  return (
    err instanceof Error &&
    typeof (err as NodeJS.ErrnoException).code === 'string' &&
    !(err instanceof RuntimeFailure)
  );
}

export function describeSystemError(err: NodeJS.ErrnoException): string {
  return err.path === undefined ? err.message : `${err.path}: ${err.message}`;
}
