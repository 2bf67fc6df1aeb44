import { EBSClient, ListSnapshotBlocksCommand, ValidationException } from '@aws-sdk/client-ebs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { snapshotBlocks } from '../../src/aws/blocks.js';

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
