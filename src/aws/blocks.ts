import { createHash } from 'node:crypto';
import {
  type EBSClient,
  GetSnapshotBlockCommand,
  ListChangedBlocksCommand,
  ListSnapshotBlocksCommand,
  ValidationException,
} from '@aws-sdk/client-ebs';
import { describeError, RuntimeFailure } from '../errors.js';
import { BLOCK_SIZE } from '../format/container.js';
import { POLICY, transientNetworkError, withRetry } from '../retry.js';
import { ebsRetryable } from './ebs-retries.js';

/** A block to put in a stream: its data comes from `token`, or it is an explicit zero region. */
export interface BlockRef {
  index: number;
  token?: string;
}

const PAGE = 10_000;

function expiredPage(err: unknown): boolean {
  return err instanceof ValidationException && err.Reason === 'INVALID_PAGE_TOKEN';
}

function expiredBlockToken(err: unknown): boolean {
  return err instanceof ValidationException && err.Reason === 'INVALID_BLOCK_TOKEN';
}

/**
 * A fresh token for one block: the same listing again, from that block's index. `base` makes it
 * ListChangedBlocks (the second snapshot's token), else ListSnapshotBlocks.
 */
export async function renewToken(
  ebs: EBSClient,
  snapshotId: string,
  base: string | undefined,
  index: number,
): Promise<string> {
  const refs =
    base === undefined ? snapshotBlocks(ebs, snapshotId, index) : changedBlocks(ebs, base, snapshotId, index);
  for await (const ref of refs) {
    if (ref.index > index) break;
    if (ref.index === index && ref.token !== undefined) return ref.token;
  }
  throw new RuntimeFailure(
    `block ${index} of ${snapshotId} is no longer listed; its token cannot be renewed`,
  );
}

/** Where the next page starts: the page token, or, when there is none, the next block index. */
type PagePosition = { NextToken: string } | { StartingBlockIndex: number };

interface Page {
  blocks: BlockRef[];
  nextToken?: string;
  /** The page's BlockSize, as AWS states it. */
  blockSize?: number;
}

/**
 * Pages through a block listing as the blocks are consumed, checking they come in ascending
 * order. Pages may be empty and still carry a NextToken. Page tokens live 60 minutes; when a slow
 * consumer outlives one, listing resumes from the next block index.
 */
async function* pagedBlocks(
  what: string,
  fetch: (position: PagePosition) => Promise<Page>,
  from = 0,
): AsyncGenerator<BlockRef> {
  let nextToken: string | undefined;
  let nextIndex = from;
  for (;;) {
    let page: Page;
    try {
      page = await fetch(
        nextToken !== undefined ? { NextToken: nextToken } : { StartingBlockIndex: nextIndex },
      );
    } catch (err) {
      if (nextToken !== undefined && expiredPage(err)) {
        nextToken = undefined;
        continue;
      }
      throw err;
    }
    // Every index, token and the stream's sparse map assume EBS's one block size; a listing in
    // another size cannot be read right, so it is refused instead of taken as 512 KiB blocks.
    if (page.blockSize !== undefined && page.blockSize !== BLOCK_SIZE) {
      throw new RuntimeFailure(
        `${what} answered blocks of ${page.blockSize} bytes; ec2-bpipe reads and writes blocks of ${BLOCK_SIZE} bytes, the size the EBS direct APIs document`,
      );
    }
    for (const block of page.blocks) {
      if (block.index < nextIndex) throw new RuntimeFailure(`${what} returned blocks out of order`);
      nextIndex = block.index + 1;
      yield block;
    }
    if (!page.nextToken) return;
    nextToken = page.nextToken;
  }
}

function ref(index: number | undefined, token: string | undefined, what: string): BlockRef {
  if (index === undefined) throw new RuntimeFailure(`${what} returned a block without an index`);
  return { index, ...(token !== undefined && { token }) };
}

/** Every block of a snapshot that holds data (ListSnapshotBlocks), from block `from` on. */
export function snapshotBlocks(ebs: EBSClient, snapshotId: string, from = 0): AsyncGenerator<BlockRef> {
  const what = `ListSnapshotBlocks for ${snapshotId}`;
  return pagedBlocks(
    what,
    async (position) => {
      const page = await ebs.send(
        new ListSnapshotBlocksCommand({ SnapshotId: snapshotId, MaxResults: PAGE, ...position }),
      );
      return {
        blocks: (page.Blocks ?? []).map((b) => ref(b.BlockIndex, b.BlockToken, what)),
        ...(page.NextToken && { nextToken: page.NextToken }),
        ...(page.BlockSize !== undefined && { blockSize: page.BlockSize }),
      };
    },
    from,
  );
}

/**
 * The blocks that differ between `baseSnapshotId` and `snapshotId` (ListChangedBlocks). A block
 * present only in the base has no second token: it is yielded without one and becomes an
 * explicit zero region.
 */
export function changedBlocks(
  ebs: EBSClient,
  baseSnapshotId: string,
  snapshotId: string,
  from = 0,
): AsyncGenerator<BlockRef> {
  const what = `ListChangedBlocks for ${snapshotId}`;
  return pagedBlocks(
    what,
    async (position) => {
      const page = await ebs.send(
        new ListChangedBlocksCommand({
          FirstSnapshotId: baseSnapshotId,
          SecondSnapshotId: snapshotId,
          MaxResults: PAGE,
          ...position,
        }),
      );
      return {
        blocks: (page.ChangedBlocks ?? []).map((b) => ref(b.BlockIndex, b.SecondBlockToken, what)),
        ...(page.NextToken && { nextToken: page.NextToken }),
        ...(page.BlockSize !== undefined && { blockSize: page.BlockSize }),
      };
    },
    from,
  );
}

class ChecksumMismatch extends Error {
  override name = 'ChecksumMismatch';
}

/**
 * Whether a block read is worth another attempt: a broken or mismatched body (which the SDK
 * cannot retry, having returned already), an answer the EBS retry table calls retryable once the
 * SDK's own attempts are spent, or a reset.
 */
export function transientBlockError(err: unknown): boolean {
  return err instanceof ChecksumMismatch || ebsRetryable(err) || transientNetworkError(err);
}

/**
 * Reads a block body into `into` (one block long) and returns its SHA-256. Each chunk the socket
 * delivered is hashed and copied as it arrives, then dropped: it dies young, as in any client
 * that reads and discards, and the block lives on only in the caller's reused memory (a copy of
 * 512 KiB costs far less than the garbage collection of chunks held until the block's turn in
 * the stream; docs/PERFORMANCE.md).
 */
async function readBody(body: AsyncIterable<Uint8Array>, into: Buffer): Promise<Buffer> {
  const hash = createHash('sha256');
  let filled = 0;
  for await (const chunk of body) {
    if (filled + chunk.length > into.length)
      throw new ChecksumMismatch(`body longer than ${into.length} bytes`);
    into.set(chunk, filled);
    hash.update(chunk);
    filled += chunk.length;
  }
  if (filled !== into.length) throw new ChecksumMismatch(`body of ${filled} bytes, expected ${into.length}`);
  return hash.digest();
}

/** Block-sized memory a read fills: a ring's slots (stream/block-ring.ts), or one buffer in a test. */
export interface BlockMemory<Slot extends { readonly data: Buffer }> {
  acquire(): Promise<Slot>;
  give(slot: Slot): void;
}

/**
 * Reads one block and checks it against the SHA-256 AWS sent with it; returns that digest and the
 * slot of `memory` that holds the block. A mismatch or a broken body is retried: the SDK has
 * already returned when the body breaks, so it cannot. The slot holds a verified block only once
 * this resolves; on a failure it is given back.
 *
 * The slot is taken when the first response arrives, not when the request leaves: a read spends
 * most of its time waiting for AWS's answer, and memory taken for that wait would make the block
 * memory grow with the workers rather than with the blocks actually arriving or waiting for their
 * turn in the stream.
 */
export async function readBlock<Slot extends { readonly data: Buffer }>(
  ebs: EBSClient,
  snapshotId: string,
  ref: BlockRef,
  memory: BlockMemory<Slot>,
  renew?: (index: number) => Promise<string>,
): Promise<{ digest: Buffer; slot: Slot }> {
  let token = ref.token;
  let renewed = false;
  /** Set when the attempt that just failed renewed the token: the next attempt uses the new one. */
  let retryRenewed = false;
  const retryable = (err: unknown): boolean =>
    transientBlockError(err) || (retryRenewed && expiredBlockToken(err));
  try {
    return await withRetry(POLICY.blockRead, retryable, async () => {
      retryRenewed = false;
      if (token === undefined) throw new RuntimeFailure(`block ${ref.index} of ${snapshotId} has no token`);
      let response;
      try {
        response = await ebs.send(
          new GetSnapshotBlockCommand({
            SnapshotId: snapshotId,
            BlockIndex: ref.index,
            BlockToken: token,
          }),
        );
      } catch (err) {
        // A token outlived by a long read (tokens expire; GetSnapshotBlock reference) is renewed
        // once, by listing again from this block.
        if (expiredBlockToken(err) && renew !== undefined && !renewed) {
          token = await renew(ref.index);
          renewed = true;
          retryRenewed = true;
        }
        throw err;
      }
      if (!response.BlockData) throw new ChecksumMismatch('no body');
      if (response.ChecksumAlgorithm !== 'SHA256' || response.Checksum === undefined) {
        throw new RuntimeFailure(`block ${ref.index} of ${snapshotId} came without a SHA256 checksum`);
      }
      // A failed attempt gives its slot back at once: a retry waits out its back-off holding no
      // memory, and takes a slot again when its answer arrives.
      const slot = await memory.acquire();
      try {
        const digest = await readBody(response.BlockData as AsyncIterable<Uint8Array>, slot.data);
        if (digest.toString('base64') !== response.Checksum) {
          throw new ChecksumMismatch(
            `checksum ${digest.toString('base64')} differs from AWS's ${response.Checksum}`,
          );
        }
        return { digest, slot };
      } catch (err) {
        memory.give(slot);
        throw err;
      }
    });
  } catch (err) {
    const reason = describeError(err);
    throw new RuntimeFailure(
      `block ${ref.index} of snapshot ${snapshotId} could not be read and verified (${reason})`,
      {
        cause: err,
      },
    );
  }
}
