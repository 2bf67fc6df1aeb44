import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockHasher, hashHere } from '../../src/block-hasher.js';

const sha256 = (chunks: readonly Uint8Array[]): string => {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
};

/** Chunks shaped like what a socket delivers: views of read buffers, some shared, some pooled. */
const chunkShapes = fc.array(
  fc.record({
    bytes: fc.uint8Array({ minLength: 0, maxLength: 70_000 }),
    // 0: a buffer of its own; 1: a view inside a larger buffer; 2: a small pooled Buffer;
    // 3: a view of the same buffer as the chunk before it.
    shape: fc.integer({ min: 0, max: 3 }),
  }),
  { maxLength: 12 },
);

function materialize(shapes: { bytes: Uint8Array; shape: number }[]): Buffer[] {
  const chunks: Buffer[] = [];
  let previous: Buffer | undefined;
  for (const { bytes, shape } of shapes) {
    let chunk: Buffer;
    if (shape === 1) {
      const big = Buffer.alloc(bytes.length + 3000, 0xee);
      big.set(bytes, 1000);
      chunk = big.subarray(1000, 1000 + bytes.length);
    } else if (shape === 2) {
      chunk = Buffer.from(bytes.subarray(0, 100));
    } else if (shape === 3 && previous !== undefined) {
      // Two chunks of one ArrayBuffer: it can be moved once only.
      const both = Buffer.concat([previous, bytes]);
      chunks[chunks.length - 1] = both.subarray(0, previous.length);
      chunk = both.subarray(previous.length);
    } else {
      chunk = Buffer.from(bytes);
    }
    chunks.push(chunk);
    previous = chunk;
  }
  return chunks;
}

describe('BlockHasher', () => {
  const hasher = new BlockHasher();
  afterAll(() => hasher.close());

  it('gives the SHA-256 of the chunks and hands back the same bytes, whatever buffers they are views of', async () => {
    await fc.assert(
      fc.asyncProperty(chunkShapes, async (shapes) => {
        const chunks = materialize(shapes);
        const expected = sha256(chunks);
        const bytes = Buffer.concat(chunks.map((c) => Buffer.from(c))).toString('hex');
        const result = await hasher.hash(chunks);
        expect(result.digest.toString('hex')).toBe(expected);
        expect(Buffer.concat(result.chunks).toString('hex')).toBe(bytes);
        expect(result.chunks.map((c) => c.length)).toEqual(chunks.map((c) => c.length));
      }),
      { numRuns: 60 },
    );
  });

  it('keeps blocks apart when many are in flight at once', async () => {
    const blocks = Array.from({ length: 40 }, (_, i) => [
      Buffer.alloc(512 * 1024, i),
      Buffer.alloc(10, 255 - i),
    ]);
    const expected = blocks.map((chunks) => sha256(chunks));
    const results = await Promise.all(blocks.map((chunks) => hasher.hash(chunks)));
    expect(results.map((r) => r.digest.toString('hex'))).toEqual(expected);
    results.forEach((r, i) => expect(r.chunks[0]?.[0]).toBe(i));
  });

  it('matches hashHere, the same digest on the calling thread', async () => {
    const chunks = [Buffer.from('block '), Buffer.alloc(4096, 7)];
    const here = hashHere(chunks);
    expect(here.digest.toString('hex')).toBe(sha256(chunks));
    expect((await hasher.hash([Buffer.from('block '), Buffer.alloc(4096, 7)])).digest).toEqual(here.digest);
  });

  it('fails the blocks on a thread that dies, with a clear error, and hashes later ones on the calling thread', async () => {
    const broken = new BlockHasher(
      `require('node:worker_threads').parentPort.on('message', () => { throw new Error('boom'); });`,
    );
    await expect(broken.hash([Buffer.alloc(1000, 1)])).rejects.toThrow(
      /block hashing thread stopped \(boom\)/,
    );
    const later = [Buffer.alloc(1000, 2)];
    expect((await broken.hash(later)).digest.toString('hex')).toBe(sha256(later));
    await broken.close();
  });
});
