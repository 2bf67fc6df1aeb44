import { PassThrough, Writable } from 'node:stream';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BlockRing } from '../../src/stream/block-ring.js';
import { member } from '../../src/format/container.js';
import { SparseMapSize } from '../../src/format/sparse.js';
import { type LentBlock, StreamWriter } from '../../src/stream/writer.js';

const BS = 512 * 1024;

/** Block `index`'s bytes in a test: its index in every byte's low bits, and a seed. */
const fill = (into: Buffer, index: number, seed: number): Buffer => into.fill((index * 7 + seed) & 0xff);

/**
 * A destination that calls back late (after `delays[i]` turns of the event loop) and copies
 * each chunk only then: a chunk changed between write() and its callback shows in the output.
 */
class LateDestination extends Writable {
  readonly parts: Buffer[] = [];
  readonly calledBack = new Set<Uint8Array>();
  private writes = 0;
  constructor(private readonly delays: number[]) {
    super({ highWaterMark: 0 });
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    let turns = this.delays[this.writes++ % Math.max(1, this.delays.length)] ?? 0;
    const later = (): void => {
      if (turns-- > 0) {
        setImmediate(later);
        return;
      }
      this.parts.push(Buffer.from(chunk));
      this.calledBack.add(chunk);
      callback();
    };
    later();
  }
}

async function writeVolume(
  destination: Writable,
  indices: number[],
  blocks: AsyncIterable<Buffer | LentBlock>,
): Promise<void> {
  const writer = new StreamWriter(destination);
  const map = new SparseMapSize();
  for (const index of indices) map.add(index * BS, BS);
  const list = async function* (): AsyncGenerator<number> {
    yield* indices;
  };
  await writer.sparse(
    member.volumeData('vol-0123456789abcdef0'),
    1024 * 1024 * 1024,
    BS,
    map,
    list(),
    blocks,
  );
  await writer.close();
}

describe('BlockRing.acquire', () => {
  it('waits for a slot given back, first come first served, each lending a new view of the slot', async () => {
    const ring = new BlockRing(2, 16);
    const a = await ring.acquire();
    const b = await ring.acquire();
    const order: string[] = [];
    const c = ring.acquire().then((slot) => (order.push('c'), slot));
    const d = ring.acquire().then((slot) => (order.push('d'), slot));
    await Promise.resolve();
    expect(order).toEqual([]);
    ring.give(b);
    const cSlot = await c;
    expect(order).toEqual(['c']);
    expect(cSlot.slot).toBe(b.slot);
    expect(cSlot.data).not.toBe(b.data);
    expect(cSlot.data.buffer).toBe(b.data.buffer);
    ring.give(a);
    expect((await d).slot).toBe(a.slot);
    expect(order).toEqual(['c', 'd']);
  });
});

describe('StreamWriter with lent blocks', () => {
  // Both writers of a case must stamp their members with the same mtime (whole seconds).
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-04T12:00:00Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('gives each block back once, only after the destination wrote it, and writes what plain buffers write', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 0, max: 2047 }), { minLength: 1, maxLength: 24 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 8 }),
        fc.integer({ min: 0, max: 255 }),
        async (raw, slots, delays, seed) => {
          const indices = [...raw].sort((a, b) => a - b);
          // The same volume from plain buffers, to an ordinary stream: what the bytes must be.
          const plain = new PassThrough();
          const expected: Buffer[] = [];
          plain.on('data', (chunk: Buffer) => expected.push(chunk));
          const plainBlocks = async function* (): AsyncGenerator<Buffer> {
            for (const index of indices) yield fill(Buffer.alloc(BS), index, seed);
          };
          await writeVolume(plain, indices, plainBlocks());

          // A ring smaller than the volume: every slot is reused while the destination lags.
          const ring = new BlockRing(slots, BS);
          const destination = new LateDestination(delays);
          const givenBack = new Map<Uint8Array, number>();
          const early: number[] = [];
          const lent = async function* (): AsyncGenerator<LentBlock> {
            for (const index of indices) {
              const slot = await ring.acquire();
              fill(slot.data, index, seed);
              yield {
                data: slot.data,
                written: () => {
                  if (!destination.calledBack.has(slot.data)) early.push(index);
                  givenBack.set(slot.data, (givenBack.get(slot.data) ?? 0) + 1);
                  ring.give(slot);
                },
              };
            }
          };
          await writeVolume(destination, indices, lent());
          expect(early).toEqual([]);
          expect([...givenBack.values()]).toEqual(indices.map(() => 1));
          expect(Buffer.concat(destination.parts).equals(Buffer.concat(expected))).toBe(true);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('fails the member, rather than waiting, when the destination fails in the middle of it', async () => {
    let writes = 0;
    const destination = new Writable({
      write(_chunk, _encoding, callback) {
        writes++;
        if (writes === 3) callback(new Error('disk full'));
        else setImmediate(callback);
      },
    });
    const indices = Array.from({ length: 20 }, (_, i) => i);
    const blocks = async function* (): AsyncGenerator<Buffer> {
      for (const index of indices) yield fill(Buffer.alloc(BS), index, 0);
    };
    await expect(writeVolume(destination, indices, blocks())).rejects.toThrow(/disk full/);
  }, 10_000);

  it('leaves no listener on its destination once the stream is written', async () => {
    const destination = new PassThrough();
    destination.resume();
    const before = destination.listenerCount('error');
    const indices = [0, 5];
    const blocks = async function* (): AsyncGenerator<Buffer> {
      for (const index of indices) yield fill(Buffer.alloc(BS), index, 0);
    };
    await writeVolume(destination, indices, blocks());
    expect(destination.listenerCount('error')).toBe(before);
  });

  it('refuses a lent block handed in twice before the destination wrote it', async () => {
    const destination = new LateDestination([3]);
    const data = fill(Buffer.alloc(BS), 1, 0);
    const twice = async function* (): AsyncGenerator<LentBlock> {
      yield { data, written: () => undefined };
      yield { data, written: () => undefined };
    };
    await expect(writeVolume(destination, [1, 2], twice())).rejects.toThrow(/lent block was written twice/);
  });
});
