import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  EBSClient,
  GetSnapshotBlockCommand,
  type GetSnapshotBlockCommandOutput,
  ListSnapshotBlocksCommand,
  ValidationException,
} from '@aws-sdk/client-ebs';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { type BlockMemory, readBlock, snapshotBlocks } from '../../src/aws/blocks.js';
import { useClock } from '../../src/retry.js';

const ebsMock = mockClient(EBSClient);
afterEach(() => ebsMock.reset());

const expired = () =>
  new ValidationException({
    message: 'The pagination token has expired',
    Reason: 'INVALID_PAGE_TOKEN',
    $metadata: {},
  });

async function all(iterable: AsyncIterable<{ index: number }>): Promise<number[]> {
  const out: number[] = [];
  for await (const b of iterable) out.push(b.index);
  return out;
}

describe('block listings', () => {
  it('resume from the next block index when a page token expired while the consumer was slow', async () => {
    ebsMock
      .on(ListSnapshotBlocksCommand, { SnapshotId: 'snap-1', StartingBlockIndex: 0 })
      .resolves({
        Blocks: [
          { BlockIndex: 0, BlockToken: 'a' },
          { BlockIndex: 5, BlockToken: 'b' },
        ],
        NextToken: 'page-2',
      })
      .on(ListSnapshotBlocksCommand, { SnapshotId: 'snap-1', NextToken: 'page-2' })
      .rejects(expired())
      .on(ListSnapshotBlocksCommand, { SnapshotId: 'snap-1', StartingBlockIndex: 6 })
      .resolves({ Blocks: [{ BlockIndex: 9, BlockToken: 'c' }] });
    expect(await all(snapshotBlocks(new EBSClient({ region: 'us-east-1' }), 'snap-1'))).toEqual([0, 5, 9]);
    expect(ebsMock.commandCalls(ListSnapshotBlocksCommand)).toHaveLength(3);
  });

  it('fail on a listing that goes backwards', async () => {
    ebsMock.on(ListSnapshotBlocksCommand).resolves({
      Blocks: [
        { BlockIndex: 4, BlockToken: 'a' },
        { BlockIndex: 2, BlockToken: 'b' },
      ],
    });
    await expect(all(snapshotBlocks(new EBSClient({ region: 'us-east-1' }), 'snap-2'))).rejects.toThrow(
      /ListSnapshotBlocks for snap-2 returned blocks out of order/,
    );
  });

  it('do not retry an expired token of the first page: that is not a slow consumer', async () => {
    ebsMock.on(ListSnapshotBlocksCommand).rejects(expired());
    await expect(all(snapshotBlocks(new EBSClient({ region: 'us-east-1' }), 'snap-3'))).rejects.toThrow(
      /expired/,
    );
  });
});

describe('a listing in memory', () => {
  it('holds at most one page: the next page is asked for only when the consumer reaches it', async () => {
    const page = (from: number, next?: string) => ({
      Blocks: Array.from({ length: 3 }, (_, i) => ({ BlockIndex: from + i, BlockToken: `t${from + i}` })),
      ...(next !== undefined && { NextToken: next }),
    });
    ebsMock
      .on(ListSnapshotBlocksCommand, { StartingBlockIndex: 0 })
      .resolves(page(0, 'p2'))
      .on(ListSnapshotBlocksCommand, { NextToken: 'p2' })
      .resolves(page(3, 'p3'))
      .on(ListSnapshotBlocksCommand, { NextToken: 'p3' })
      .resolves(page(6));
    const listing = snapshotBlocks(new EBSClient({ region: 'us-east-1' }), 'snap-1');
    const seen: number[] = [];
    for await (const block of listing) {
      seen.push(block.index);
      // While the consumer is inside page n, no page after n has been fetched.
      expect(ebsMock.commandCalls(ListSnapshotBlocksCommand)).toHaveLength(Math.floor(block.index / 3) + 1);
    }
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

describe('a block read into its slot', () => {
  const SIZE = 4096;
  const good = Buffer.from(Array.from({ length: SIZE }, (_, i) => (i * 31 + 7) & 0xff));
  const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('base64');
  /** A GetSnapshotBlock answer whose body comes in `chunks`, or breaks after them with `error`. */
  const answer = (
    chunks: Buffer[],
    checksum = sha256(good),
    error?: Error,
  ): GetSnapshotBlockCommandOutput => {
    const body = Readable.from(
      (async function* () {
        yield* chunks;
        if (error) throw error;
      })(),
    );
    return {
      // The SDK's stream mixin adds helpers (transformToString…) that a block read does not use.
      BlockData: body as unknown as GetSnapshotBlockCommandOutput['BlockData'],
      Checksum: checksum,
      ChecksumAlgorithm: 'SHA256',
      DataLength: SIZE,
      $metadata: {},
    };
  };
  /** One block of memory that counts how often it was taken and given back. */
  class OneSlot implements BlockMemory<{ data: Buffer }> {
    taken = 0;
    given = 0;
    constructor(readonly data: Buffer) {}
    acquire(): Promise<{ data: Buffer }> {
      this.taken++;
      return Promise.resolve({ data: this.data });
    }
    give(): void {
      this.given++;
    }
  }
  const cut = (bytes: Buffer, points: number[]): Buffer[] => {
    const sorted = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
    return [...sorted, bytes.length].map((p, i) => bytes.subarray(i === 0 ? 0 : sorted[i - 1], p));
  };
  let restoreClock: (() => void) | undefined;
  afterEach(() => restoreClock?.());
  const instantClock = () => {
    restoreClock = useClock({ sleep: () => Promise.resolve(), now: () => 0 });
  };

  it('holds the block and returns AWS checksum as a digest, however the body is chunked', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 10 }), async (points) => {
        ebsMock.reset();
        ebsMock.on(GetSnapshotBlockCommand).resolves(answer(cut(good, points)));
        const memory = new OneSlot(Buffer.alloc(SIZE, 0xaa));
        const { digest, slot } = await readBlock(
          new EBSClient({ region: 'us-east-1' }),
          'snap-1',
          { index: 3, token: 't' },
          memory,
        );
        expect(slot.data).toBe(memory.data);
        expect(memory.data.equals(good)).toBe(true);
        expect([memory.taken, memory.given]).toEqual([1, 0]);
        expect(digest.toString('base64')).toBe(sha256(good));
      }),
      { numRuns: 50 },
    );
  });

  it('gives the slot back after a body that broke or did not match, and keeps only the verified block', async () => {
    instantClock();
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const wrong = Buffer.alloc(SIZE, 0x55);
    ebsMock
      .on(GetSnapshotBlockCommand)
      .resolvesOnce(answer([wrong.subarray(0, 1000)], sha256(good), reset))
      .resolvesOnce(answer([wrong]))
      .resolvesOnce(answer([good.subarray(0, 100), good.subarray(100)]));
    const memory = new OneSlot(Buffer.alloc(SIZE));
    const { digest } = await readBlock(
      new EBSClient({ region: 'us-east-1' }),
      'snap-1',
      { index: 3, token: 't' },
      memory,
    );
    expect(ebsMock.commandCalls(GetSnapshotBlockCommand)).toHaveLength(3);
    expect(memory.data.equals(good)).toBe(true);
    // Each failed attempt gave its slot back before its retry: only the verified block holds one.
    expect([memory.taken, memory.given]).toEqual([3, 2]);
    expect(digest.toString('base64')).toBe(sha256(good));
  });

  it('refuses a body longer than the block without writing past its slot', async () => {
    instantClock();
    const longer = Buffer.concat([good, Buffer.from([1, 2, 3])]);
    ebsMock.on(GetSnapshotBlockCommand).callsFake(() => answer([longer], sha256(longer)));
    const bytes = Buffer.alloc(SIZE + 64, 0xee);
    const memory = new OneSlot(bytes.subarray(0, SIZE));
    await expect(
      readBlock(new EBSClient({ region: 'us-east-1' }), 'snap-9', { index: 7, token: 't' }, memory),
    ).rejects.toThrow(
      /block 7 of snapshot snap-9 could not be read and verified \(.*body longer than 4096 bytes/,
    );
    expect(bytes.subarray(SIZE).every((byte) => byte === 0xee)).toBe(true);
    // Each failed attempt gave its slot back.
    expect(memory.taken).toBeGreaterThan(0);
    expect(memory.given).toBe(memory.taken);
  });

  it('takes no memory while AWS has not answered, nor for a read that fails without a body', async () => {
    instantClock();
    const memory = new OneSlot(Buffer.alloc(SIZE));
    let answered: ((output: GetSnapshotBlockCommandOutput) => void) | undefined;
    ebsMock
      .on(GetSnapshotBlockCommand)
      .callsFakeOnce(() => new Promise<GetSnapshotBlockCommandOutput>((resolve) => (answered = resolve)));
    const read = readBlock(
      new EBSClient({ region: 'us-east-1' }),
      'snap-1',
      { index: 3, token: 't' },
      memory,
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(answered).toBeDefined();
    expect(memory.taken).toBe(0);
    answered?.(answer([good]));
    await read;
    expect([memory.taken, memory.given]).toEqual([1, 0]);

    const refused = new OneSlot(Buffer.alloc(SIZE));
    ebsMock.reset();
    ebsMock
      .on(GetSnapshotBlockCommand)
      .rejects(
        Object.assign(new Error('Access denied'), { name: 'AccessDeniedException', $fault: 'client' }),
      );
    await expect(
      readBlock(new EBSClient({ region: 'us-east-1' }), 'snap-1', { index: 3, token: 't' }, refused),
    ).rejects.toThrow(/block 3 of snapshot snap-1 could not be read and verified/);
    expect([refused.taken, refused.given]).toEqual([0, 0]);
  });
});
