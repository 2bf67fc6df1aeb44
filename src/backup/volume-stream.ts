import { createHash } from 'node:crypto';
import type { EBSClient } from '@aws-sdk/client-ebs';
import type { Logger } from 'pino';
import { type BlockRef, changedBlocks, readBlock, renewToken, snapshotBlocks } from '../aws/blocks.js';
import { performance, userTags } from '../aws/metadata.js';
import { RuntimeFailure } from '../errors.js';
import { orderedMap } from '../pool.js';
import { throttledShare, throttleNote, workerLimit } from '../aws/throttling.js';
import { VolumeProgress } from '../progress.js';
import { BlockRing } from '../stream/block-ring.js';
import { BlockList } from './block-list.js';
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
 * handed in), since the writer waits for the packer to drain after each block. With that many
 * spare, every read the window admits finds a slot when its body arrives, whatever order bodies
 * arrive in and even when the destination stops taking data: the reads under way can then still
 * finish, and a failure can unwind instead of waiting forever for memory.
 */
const BLOCKS_BEING_WRITTEN = 4;

/**
 * What the reads may run ahead of the stream's order beyond one block per worker, in bytes: room
 * for the blocks that arrive while an earlier one is late, so that one slow read does not idle
 * the other workers. A fixed amount, not a multiple of the workers: a late read holds back as
 * many blocks as arrive in its delay, and at 64 workers twice the workers (the window before)
 * kept 64 MiB of blocks that the stream mostly did not wait for. Since a read takes its memory
 * only when its body arrives (readBlock), the blocks actually held are those arriving and those
 * waiting for their turn: usually far fewer than the window allows.
 */
const READ_AHEAD_BYTES = 8 * 2 ** 20;

/**
 * The reads admitted at once, in flight or waiting for their turn: one per worker and the read-
 * ahead, never fewer than twice the workers up to that allowance. The ring holds that many blocks
 * (and those being written), so its bytes bound the backup's block memory.
 */
export function readWindow(workers: number, blockSize = BLOCK_SIZE): number {
  return workers + Math.min(workers, Math.max(1, Math.floor(READ_AHEAD_BYTES / blockSize)));
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
 * pages through the volume once. A Full lists again, page by page, for the tokens (they would cost
 * ~100 bytes a block), and a volume too large to keep is listed again for each pass. A running
 * hash of the indices proves every listing agrees with the first.
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
  const kept = new BlockList(base !== undefined);
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
  // Every block read, waiting for its turn or on its way out, sits in a slot of this ring until
  // the destination has written it: the window's blocks, and those the tar stream still holds.
  const window = readWindow(limit.max);
  const ring = new BlockRing(Math.min(window, map.regions) + BLOCKS_BEING_WRITTEN, BLOCK_SIZE);
  // An explicit zero region (a block the base has and the new snapshot has not) needs no read.
  const fetch = async (
    ref: BlockRef,
  ): Promise<{ index: number; block: Buffer | LentBlock; digest: Buffer }> => {
    if (ref.token === undefined) return { index: ref.index, block: ZERO_BLOCK, digest: ZERO_BLOCK_SHA256 };
    const { digest, slot } = await readBlock(ebs, snapshotId, ref, ring, renew);
    return { index: ref.index, block: { data: slot.data, written: () => ring.give(slot) }, digest };
  };
  const digests = new VolumeDigests();
  const progress = new VolumeProgress(log, volumeId, map.regions, BLOCK_SIZE, counts);
  const blocks = async function* (): AsyncGenerator<Buffer | LentBlock> {
    for await (const read of orderedMap(refs(), limit, fetch, window)) {
      digests.add(read.index, read.digest);
      progress.block();
      yield read.block;
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
