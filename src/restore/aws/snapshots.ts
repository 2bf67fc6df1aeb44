/**
 * A restore's EBS snapshots, one per volume: started (StartSnapshot with the journal's tags, on
 * the parent of a chain link, resuming a pending one of the same stream), passed over (a volume
 * left out, or restored from its live snapshot), planned (a dry run), and marked abandoned when
 * their stream was damaged. restore.ts drives them through a stream; this module knows one
 * snapshot's life.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { AwsClients } from '../../aws/clients.js';
import { describeSnapshots, ownSnapshots, tagResources } from '../../aws/snapshots.js';
import { throttleNote, workerLimit } from '../../aws/throttling.js';
import { startSnapshot } from '../../aws/writes.js';
import type { Config } from '../../config.js';
import { RuntimeFailure } from '../../errors.js';
import { BLOCK_SIZE } from '../../format/container.js';
import type { Manifest, VolumeMeta, VolumeSum } from '../../format/members.js';
import { JOURNAL_TAG, RESTORE_TAG, tagValue } from '../../format/tags.js';
import { fixedLimit, Slots, type WorkerLimit } from '../../pool.js';
import { VolumeProgress } from '../../progress.js';
import { idempotencyToken, restoreTags } from './tags.js';

/** How a dry run names the snapshots it would make. */
export const PLANNED = '(new snapshot';

export interface VolumeSession {
  meta: VolumeMeta;
  snapshotId: string;
  /** Completed by an earlier run with the same source: its blocks are read and checked, not written again. */
  alreadyComplete: boolean;
  slots: Slots;
  /** The writes' worker limit. */
  limit: WorkerLimit;
  /** Blocks written, time and throttled requests since the volume began. */
  progress: VolumeProgress;
  sum?: VolumeSum;
}

export class SnapshotSessions {
  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    /** A restore test's id: new snapshots whatever an earlier restore left (the test removes them). */
    private readonly testId: string | undefined,
    /** Where a dry run's plan lines go. */
    private readonly planNote: (line: string) => void,
  ) {}

  /**
   * Pending snapshots an earlier attempt started for the same source volume and job from another
   * stream (its manifest, metadata or sparse map differed: a damaged or cut copy): tagged
   * abandoned and named, so that no attempt resumes them; EBS discards them after its timeout.
   */
  private async abandonOthers(
    clients: AwsClients,
    manifest: Manifest,
    meta: VolumeMeta,
    proof: string,
    ours: string,
  ): Promise<void> {
    const pending = await ownSnapshots(
      clients.ec2,
      {
        [JOURNAL_TAG.config]: manifest.config,
        [JOURNAL_TAG.job]: manifest.job,
        [JOURNAL_TAG.volume]: meta.volumeId,
      },
      'pending',
    );
    const stale = pending
      .filter(
        (s) =>
          s.SnapshotId !== undefined &&
          s.SnapshotId !== ours &&
          s.State === 'pending' &&
          tagValue(s.Tags, JOURNAL_TAG.proof) !== proof &&
          tagValue(s.Tags, JOURNAL_TAG.abandoned) === undefined,
      )
      .flatMap((s) => (s.SnapshotId === undefined ? [] : [s.SnapshotId]));
    if (stale.length === 0) return;
    await tagResources(clients.ec2, stale, [{ Key: JOURNAL_TAG.abandoned, Value: 'other-stream' }]);
    this.log.warn(
      `${meta.volumeId}: ${stale.join(', ')}, left pending by an attempt that read another copy of job ${manifest.job}'s stream, not resumed: marked abandoned`,
    );
  }

  /** Tags the pending snapshots of an attempt that read a damaged stream, so no later attempt resumes them. */
  async abandon(clients: AwsClients, sessions: VolumeSession[]): Promise<void> {
    const open = sessions.filter((s) => !s.alreadyComplete).map((s) => s.snapshotId);
    if (open.length === 0) return;
    await tagResources(clients.ec2, open, [{ Key: JOURNAL_TAG.abandoned, Value: 'damaged-stream' }]);
  }

  private async abandoned(clients: AwsClients, snapshotId: string): Promise<boolean> {
    const [snapshot] = await describeSnapshots(clients.ec2, [snapshotId]);
    return snapshot?.Tags?.some((t) => t.Key === JOURNAL_TAG.abandoned) ?? false;
  }

  /** `vol-…: 2048 blocks written to snap-… in 9.1s, effective 112.5 MiB/s, 3% of … throttled`. */
  logWritten(volume: VolumeSession): void {
    // The line and its JSON record say the same figures, taken once.
    const fields = volume.progress.fields();
    this.log.info(
      { event: 'volume', ...fields, snapshot: volume.snapshotId },
      `${volume.meta.volumeId}: ${volume.meta.blockCount} blocks written to ${volume.snapshotId} in ${fields.seconds.toFixed(1)}s, ` +
        `effective ${fields.mibps.toFixed(1)} MiB/s${volume.progress.throttledShare()}${throttleNote(volume.limit)}`,
    );
  }

  /** The snapshot StartSnapshot would get: chains take their parent's key (docs/DESIGN.md §5). */
  private encryption(
    clients: AwsClients,
    manifest: Manifest,
    meta: VolumeMeta,
    parentSnapshotId: string | undefined,
  ): { encrypted: boolean; kmsKeyArn: string | undefined } {
    const settings = this.config.restore;
    const kmsKeyArn =
      parentSnapshotId !== undefined
        ? undefined
        : (settings.kmsKeyId ??
          (meta.encrypted && clients.region === manifest.region ? (meta.kmsKeyId ?? undefined) : undefined));
    return {
      encrypted: parentSnapshotId === undefined && (meta.encrypted || kmsKeyArn !== undefined),
      kmsKeyArn,
    };
  }

  /**
   * A session that writes nothing: its blocks are read and checked, and go nowhere (a volume left
   * out by --volume, or a dry run's planned snapshot, named `snapshotId`).
   */
  passOver(clients: AwsClients, meta: VolumeMeta, snapshotId = ''): VolumeSession {
    return {
      meta,
      snapshotId,
      // Nothing is written nor completed.
      alreadyComplete: true,
      slots: new Slots(1),
      limit: fixedLimit(1),
      progress: new VolumeProgress(this.log, meta.volumeId, meta.blockCount, BLOCK_SIZE),
    };
  }

  /** Dry run: says what StartSnapshot would make of the volume, and makes nothing. */
  plan(
    clients: AwsClients,
    manifest: Manifest,
    meta: VolumeMeta,
    parentSnapshotId: string | undefined,
  ): VolumeSession {
    const { encrypted, kmsKeyArn } = this.encryption(clients, manifest, meta, parentSnapshotId);
    const snapshotId = `${PLANNED} of ${meta.volumeId} job ${manifest.job})`;
    const chain =
      parentSnapshotId !== undefined ? `on ${parentSnapshotId}, in its key` : "a chain's first snapshot";
    const key =
      parentSnapshotId !== undefined
        ? ''
        : encrypted
          ? `, encrypted with ${kmsKeyArn ?? 'the default EBS key'}`
          : ', not encrypted';
    this.planNote(
      `snapshot: ${meta.volumeId} job ${manifest.job}: ${meta.sizeGiB} GiB, ${meta.blockCount} blocks, ${chain}${key}, in ${clients.region}`,
    );
    return this.passOver(clients, meta, snapshotId);
  }

  async start(
    clients: AwsClients,
    manifest: Manifest,
    meta: VolumeMeta,
    parentSnapshotId: string | undefined,
    /** What this stream writes to the snapshot (streamProof): a pending one of another is not resumed. */
    proof: string,
  ): Promise<VolumeSession> {
    const settings = this.config.restore;
    // A chain link takes its parent's encryption and key: StartSnapshot refuses Encrypted or a
    // key beside ParentSnapshotId (docs/DESIGN.md §5). Only the chain's first snapshot chooses.
    const { encrypted, kmsKeyArn } = this.encryption(clients, manifest, meta, parentSnapshotId);
    const tags = [
      { Key: JOURNAL_TAG.config, Value: manifest.config },
      { Key: JOURNAL_TAG.job, Value: manifest.job },
      { Key: JOURNAL_TAG.volume, Value: meta.volumeId },
      { Key: JOURNAL_TAG.snapshot, Value: meta.snapshotId },
      { Key: JOURNAL_TAG.proof, Value: proof },
      ...restoreTags(settings, meta.volumeId, '').filter((t) => t.Key !== RESTORE_TAG.date),
    ];
    // The same source restored again gets the same token: a crashed restore resumes its snapshot
    // instead of leaving a second one. A snapshot that failed earlier makes way for a new token.
    // A restore test always starts its own: it removes them at its end.
    let salt = this.testId ?? '';
    for (let attempt = 0; attempt < 10; attempt++) {
      const started = await startSnapshot(clients.ebs, {
        sizeGiB: meta.sizeGiB,
        ...(parentSnapshotId !== undefined && { parentSnapshotId }),
        encrypted,
        ...(kmsKeyArn !== undefined && { kmsKeyArn }),
        clientToken: idempotencyToken(
          manifest.config,
          manifest.job,
          meta.volumeId,
          meta.snapshotId,
          clients.region,
          kmsKeyArn ?? '',
          parentSnapshotId ?? '',
          proof,
          salt,
        ),
        description: `ec2-bpipe restore of ${meta.volumeId} (${meta.snapshotId}), job ${manifest.job}`,
        tags,
      });
      const snapshotId = started.SnapshotId;
      if (snapshotId === undefined)
        throw new RuntimeFailure(`StartSnapshot for ${meta.volumeId} returned no snapshot id`);
      if (started.Status === 'error') {
        this.log.warn(
          `${snapshotId}, left by an earlier attempt, is in the error state; starting a new snapshot`,
        );
        salt = snapshotId;
        continue;
      }
      // A pending snapshot of an earlier attempt is resumed (every block is written again), unless
      // that attempt read a damaged stream: it may hold blocks at indices this stream does not have.
      if (started.Status === 'pending' && (await this.abandoned(clients, snapshotId))) {
        this.log.warn(
          `${snapshotId}, left by an attempt that read a damaged stream, is not resumed; starting a new snapshot`,
        );
        salt = snapshotId;
        continue;
      }
      await this.abandonOthers(clients, manifest, meta, proof, snapshotId);
      const alreadyComplete = started.Status === 'completed';
      const parent = parentSnapshotId ? ` on ${parentSnapshotId}` : '';
      this.log.info(
        `${meta.volumeId}: ${alreadyComplete ? 'already restored as' : 'writing'} ${snapshotId}${parent} (${meta.blockCount} blocks)`,
      );
      const limit = workerLimit(settings.workers, settings.adaptWorkers, clients.ebsCounts);
      return {
        meta,
        snapshotId,
        alreadyComplete,
        slots: new Slots(limit),
        limit,
        progress: new VolumeProgress(this.log, meta.volumeId, meta.blockCount, BLOCK_SIZE, clients.ebsCounts),
      };
    }
    throw new RuntimeFailure(
      `could not start a snapshot for ${meta.volumeId}: earlier attempts left snapshots in the error state or abandoned`,
    );
  }
}

export /**
 * What a stream writes to a volume's snapshot, as far as it is known before the first block: the
 * manifest, the volume's metadata and the block indices of its sparse map. A pending snapshot is
 * resumed only by a stream with the same proof, which writes every block it holds again.
 */
function streamProof(manifest: Manifest, meta: VolumeMeta, mapDigest: Buffer): string {
  return createHash('sha256')
    .update(JSON.stringify(manifest))
    .update('\n')
    .update(JSON.stringify(meta))
    .update('\n')
    .update(mapDigest)
    .digest('hex');
}
