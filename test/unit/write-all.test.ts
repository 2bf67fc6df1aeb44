import type { FileHandle } from 'node:fs/promises';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { writeAll } from '../../src/restore/files/writer.js';

/** A file that takes at most `take(n)` bytes of each write, as a filling disk may. */
function shortFile(size: number, take: (asked: number) => number) {
  const content = Buffer.alloc(size);
  const handle = {
    writev: (buffers: Buffer[], position: number) => {
      const all = Buffer.concat(buffers);
      const n = take(all.length);
      all.copy(content, position, 0, n);
      return Promise.resolve({ bytesWritten: n, buffers });
    },
    write: (buffer: Buffer, offset: number, length: number, position: number) => {
      const n = take(length);
      buffer.copy(content, position, offset, offset + n);
      return Promise.resolve({ bytesWritten: n, buffer });
    },
  };
  return { content, handle: handle as unknown as FileHandle };
}

describe('writeAll (a block reaches the image whole, or the restore fails)', () => {
  it('finishes short writes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 1, max: 50 }),
        async (a, b, position, chunk) => {
          const { content, handle } = shortFile(800, (asked) => Math.min(asked, chunk));
          await writeAll(handle, '/img', [Buffer.from(a), Buffer.from(b)], position);
          expect(content.subarray(position, position + a.length + b.length)).toEqual(Buffer.concat([a, b]));
        },
      ),
    );
  });

  it('fails, naming the file, when the disk takes nothing more', async () => {
    let calls = 0;
    const { handle } = shortFile(100, (asked) => (calls++ === 0 ? Math.min(asked, 3) : 0));
    await expect(writeAll(handle, '/restore/vol-1.ebs', [Buffer.alloc(10, 1)], 0)).rejects.toThrow(
      '/restore/vol-1.ebs: a write at offset 3 wrote nothing; is the disk full?',
    );
  });
});
