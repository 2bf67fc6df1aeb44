import { createHash } from 'node:crypto';
import type { EBSClient } from '@aws-sdk/client-ebs';
import type { Logger } from 'pino';
import {
  type BlockMemory,
  type BlockRef,
  changedBlocks,
  readBlock,
  renewToken,
  snapshotBlocks,
} from '../aws/blocks.js';
import { performance, userTags } from '../aws/metadata.js';
import { messageOf, RuntimeFailure } from '../errors.js';
import { orderedMap, type WorkerLimit } from '../pool.js';
import { throttledShare, throttleNote, workerLimit } from '../aws/throttling.js';
import { VolumeProgress } from '../progress.js';
import { BlockRing, type RingSlot } from '../stream/block-ring.js';
import { BlockList, CHANGE_TOKEN_BYTES, FULL_TOKEN_BYTES } from './block-list.js';
import { VolumeDigests, ZERO_BLOCK, ZERO_BLOCK_SHA256 } from '../format/digests.js';
import { BLOCK_SIZE, GIB, member } from '../format/container.js';
import type { Level } from '../format/fields.js';
import type { VolumeMeta, VolumeSum } from '../format/members.js';
import { SparseMapSize } from '../format/sparse.js';
import type { LentBlock, StreamWriter } from '../stream/writer.js';
import type { RequestCounts } from '../aws/clients.js';
import type { ChainLink } from './links.js';
import type { PlannedVolume } from './plan.js';

/** The `<vol-id>.json` member: the volume as the snapshot saw it. */
export function volumeMeta(
  planned: PlannedVolume,
  snapshotId: string,
  sizeGiB: number,
  level: Level,
  base: ChainLink | undefined,
  blockCount: number,
): VolumeMeta {
  const { iops, throughput } = performance(planned.volume);
  return {
    volumeId: planned.volumeId,
    snapshotId,
    deviceName: planned.deviceName,
    deleteOnTermination: planned.deleteOnTermination,
    sizeGiB,
    sizeBytes: sizeGiB * GIB,
    blockSize: BLOCK_SIZE,
    level,
    baseSnapshotId: base?.snapshotId ?? null,
    baseJob: base?.job ?? null,
    blockCount,
    volumeType: planned.volume.VolumeType ?? null,
    iops,
    throughput,
    encrypted: planned.volume.Encrypted ?? false,
    kmsKeyId: planned.volume.KmsKeyId ?? null,
    availabilityZone: planned.volume.AvailabilityZone ?? null,
    tags: userTags(planned.volume.Tags),
  };
}

/**
 * Ring slots beyond the reorder window, for the blocks already handed to the tar stream that the
 * destination has not written yet: at most three (one being written, one in the packer, one being
 * handed in), since the writer waits for the packer to drain after each block.
 */
const BLOCKS_BEING_WRITTEN = 4;

/**
 * What the reads may run ahead of the stream's order beyond one block per worker, in bytes: room
 * for the blocks that arrive while an earlier one is late, so that one slow read does not idle
 * the other workers. A fixed amount, not a multiple of the workers: a late read holds back as
 * many blocks as arrive in its delay, not as many as there are workers.
 */
const READ_AHEAD_BYTES = 8 * 2 ** 20;

/**
 * The reads admitted at once, in flight or waiting for their turn: one per worker and the read-
 * ahead, never fewer than twice the workers up to that allowance.
 */
export function readWindow(workers: number, blockSize = BLOCK_SIZE): number {
  return workers + Math.min(workers, Math.max(1, Math.floor(READ_AHEAD_BYTES / blockSize)));
}

/**
 * The block memory of one volume's reads, in bytes, whatever the workers: the blocks being filled
 * from their answers, those waiting for their turn, and those being written. A read takes its
 * slot only once AWS answers, and an answer that finds no slot waits in its socket (the kernel's
 * buffers, not this process's memory) until one is free, so most of a window's reads hold none.
 * At 64 workers a slot per admitted read (80) kept 40 MiB resident, for the moments when answers
 * all arrive at once; 32 slots cost no throughput (docs/PERFORMANCE.md).
 */
const BLOCK_MEMORY_BYTES = 16 * 2 ** 20;

/** Slots only the block the stream needs next may take (BlockRing's `reserved`). */
const NEXT_BLOCK_RESERVE = 1;

/**
 * The ring's slots for a volume of `blocks` blocks read through a window of `window` reads: the
 * window and the blocks being written, up to BLOCK_MEMORY_BYTES (never fewer than the next
 * block's reserve and the writer's own need).
 */
export function ringSlots(window: number, blocks: number, blockSize = BLOCK_SIZE): number {
  const bound = Math.max(
    Math.floor(BLOCK_MEMORY_BYTES / blockSize),
    NEXT_BLOCK_RESERVE + BLOCKS_BEING_WRITTEN + 1,
  );
  return Math.min(Math.min(window, blocks) + BLOCKS_BEING_WRITTEN, bound);
}

/** A volume's ring: `ringSlots` of them, one kept for the block the stream needs next. */
export function blockRing(window: number, blocks: number, blockSize = BLOCK_SIZE): BlockRing {
  return new BlockRing(ringSlots(window, blocks, blockSize), blockSize, NEXT_BLOCK_RESERVE);
}

/** One block of a volume as the stream takes it: from the ring (lent) or a plain buffer. */
export interface BlockRead {
  index: number;
  block: Buffer | LentBlock;
  digest: Buffer;
}

/**
 * `read` applied to every ref with at most `limit` reads at once and `window` admitted, the
 * results in the refs' order. Each read takes its memory from `ring` through the BlockMemory it
 * is given, which tells the ring whether that read's block is the one the stream needs next:
 * that block may use the ring's reserve, so that blocks arriving early can never fill the ring
 * while it waits (reads start in order, orderedMap, so it has always started when a later one has).
 *
 * The first read that fails dooms the stream: the ring is closed at once, so that the reads still
 * waiting for a slot fail too instead of waiting for blocks that will never leave, and every read
 * under way then reports that first failure. A consumer that stops early closes it the same way.
 */
export async function* readsInOrder<R>(
  refs: AsyncIterable<BlockRef> | Iterable<BlockRef>,
  limit: WorkerLimit,
  window: number,
  ring: BlockRing,
  read: (ref: BlockRef, memory: BlockMemory<RingSlot>) => Promise<R>,
): AsyncGenerator<R> {
  /** How many results left in order so far: the position of the block the stream needs next. */
  let emitted = 0;
  let failure: { error: unknown } | undefined;
  const stop = (error: unknown): void => {
    failure ??= { error };
    ring.close(error instanceof Error ? error : new RuntimeFailure(messageOf(error)));
  };
  const positioned = async function* (): AsyncGenerator<{ ref: BlockRef; position: number }> {
    let position = 0;
    for await (const ref of refs) yield { ref, position: position++ };
  };
  const started = ({ ref, position }: { ref: BlockRef; position: number }): Promise<R> =>
    read(ref, {
      acquire: () => ring.acquire({ first: () => position === emitted }),
      give: (slot) => ring.give(slot),
    }).catch((err: unknown) => {
      stop(err);
      throw failure?.error ?? err;
    });
  const results = orderedMap(positioned(), limit, started, window);
  let finished = false;
  try {
    for (;;) {
      const next = await results.next();
      if (next.done === true) break;
      emitted++;
      ring.advanced();
      yield next.value;
    }
    finished = true;
  } finally {
    if (!finished) {
      stop(new RuntimeFailure('the stream stopped before its last block'));
      await results.return(undefined);
    }
  }
}

export interface VolumeStreamRequest {
  planned: PlannedVolume;
  snapshotId: string;
  sizeGiB: number;
  level: Level;
  /** The base snapshot of an Incremental or Differential: only blocks changed since are streamed. */
  base: ChainLink | undefined;
  workers: number;
  /** Fewer reads in flight while AWS throttles (needs the request counts). */
  adaptWorkers: boolean;
}

/**
 * Writes the `.json`, `.ebs` and `.sum.json` members of one volume; returns its block count and
 * the metadata its `.json` member holds (the job's point record keeps it).
 *
 * The block list is read once before anything is written (tar needs the member size, hence the
 * sparse map's, up front) and kept compactly (BlockList): the sparse map is written from it, and
 * an Incremental or Differential fetches its blocks with the tokens it kept, so ListChangedBlocks
 * pages through the volume once. A Full keeps its tokens when they fit about one page; a larger
 * one lists again, page by page, for the tokens (they would cost ~100 bytes a block), and a
 * volume too large to keep is listed again for each pass. A running hash of the indices proves
 * every listing agrees with the first.
 */
export async function streamVolume(
  ebs: EBSClient,
  writer: StreamWriter,
  request: VolumeStreamRequest,
  log: Logger,
  counts?: RequestCounts,
): Promise<{ blockCount: number; meta: VolumeMeta }> {
  const countsBefore = counts ? { ...counts } : undefined;
  const { planned, snapshotId, sizeGiB, level, base } = request;
  const limit = workerLimit(request.workers, request.adaptWorkers, counts);
  const volumeId = planned.volumeId;
  const source = (): AsyncIterable<BlockRef> =>
    base ? changedBlocks(ebs, base.snapshotId, snapshotId) : snapshotBlocks(ebs, snapshotId);
  const map = new SparseMapSize();
  const listing = createHash('sha256');
  const kept = new BlockList(base ? CHANGE_TOKEN_BYTES : FULL_TOKEN_BYTES);
  for await (const ref of source()) {
    map.add(ref.index * BLOCK_SIZE, BLOCK_SIZE);
    listing.update(`${ref.index},`);
    kept.add(ref);
  }
  const expectedListing = listing.digest('hex');
  const meta = volumeMeta(planned, snapshotId, sizeGiB, level, base, map.regions);
  await writer.json(member.volumeMeta(volumeId), meta);
  log.info(
    `${volumeId}: ${map.regions} blocks (${((map.regions * BLOCK_SIZE) / 2 ** 20).toFixed(0)} MiB) from ${snapshotId}`,
  );

  const checkListing = async function* (refs: AsyncIterable<BlockRef>): AsyncGenerator<BlockRef> {
    const hash = createHash('sha256');
    for await (const ref of refs) {
      hash.update(`${ref.index},`);
      yield ref;
    }
    if (hash.digest('hex') !== expectedListing) {
      throw new RuntimeFailure(`${volumeId}: the block list of ${snapshotId} changed between two listings`);
    }
  };
  const indices = async function* (): AsyncGenerator<number> {
    if (kept.indicesKept) yield* kept.blockIndices();
    else for await (const ref of checkListing(source())) yield ref.index;
  };
  const refs = (): AsyncIterable<BlockRef> | Iterable<BlockRef> =>
    kept.tokensKept ? kept.refs() : checkListing(source());
  let renewed = 0;
  const renew = (index: number): Promise<string> => {
    renewed++;
    return renewToken(ebs, snapshotId, base?.snapshotId, index);
  };
  // Every block read, being filled, waiting for its turn or on its way out, sits in a slot of
  // this ring until the destination has written it.
  const window = readWindow(limit.max);
  const ring = blockRing(window, map.regions);
  const digests = new VolumeDigests();
  const progress = new VolumeProgress(log, volumeId, map.regions, BLOCK_SIZE, counts);
  // An explicit zero region (a block the base has and the new snapshot has not) needs no read.
  const read = async (ref: BlockRef, memory: BlockMemory<RingSlot>): Promise<BlockRead> => {
    if (ref.token === undefined) return { index: ref.index, block: ZERO_BLOCK, digest: ZERO_BLOCK_SHA256 };
    const { digest, slot } = await readBlock(ebs, snapshotId, ref, memory, renew);
    return { index: ref.index, block: { data: slot.data, written: () => ring.give(slot) }, digest };
  };
  const blocks = async function* (): AsyncGenerator<Buffer | LentBlock> {
    for await (const block of readsInOrder(refs(), limit, window, ring, read)) {
      digests.add(block.index, block.digest);
      progress.block();
      yield block.block;
    }
  };
  await writer.sparse(member.volumeData(volumeId), sizeGiB * GIB, BLOCK_SIZE, map, indices(), blocks());
  progress.finish();
  const { blockCount, checksum, indexedSha256 } = digests.finish();
  const sum: VolumeSum = {
    volumeId,
    blockCount,
    checksum,
    checksumAlgorithm: 'SHA256',
    checksumAggregationMethod: 'LINEAR',
    indexedSha256,
  };
  await writer.json(member.volumeSum(volumeId), sum);
  // The line and its JSON record say the same figures, taken once.
  const fields = progress.fields();
  const tokens = renewed ? ` (${renewed} expired block token(s) renewed)` : '';
  log.info(
    { event: 'volume', ...fields, blocks: blockCount },
    `${volumeId}: ${blockCount} blocks streamed in ${fields.seconds.toFixed(1)}s, effective ${fields.mibps.toFixed(1)} MiB/s` +
      `${throttledShare(countsBefore, counts)}${tokens}${throttleNote(limit)}`,
  );
  return { blockCount, meta };
}
