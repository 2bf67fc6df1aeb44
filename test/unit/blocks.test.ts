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
