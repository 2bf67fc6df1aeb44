/**
 * Restore points AWS still holds (docs/DESIGN.md §13): the snapshots a completed backup job took,
 * or their DR copies in the target Region, found through the job's point record and checked
 * before anything is created. EBS snapshots are immutable, so a snapshot that is still this
 * config's, completed, of this job and volume and size, holds exactly the blocks its stream held.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { copyOfTag } from '../../backup/copies.js';
import { type ChainLink, volumeLinks } from '../../backup/links.js';
import type { Config } from '../../config.js';
import { describeError, UsageError } from '../../errors.js';
import { JOB_NAME } from '../../ids.js';
import { type PointRecord, readPointRecord, recordedJobs, unitRecordDir } from '../../format/point-record.js';
import type { VolumeMeta } from '../../format/members.js';
import type { RestoredVolume } from './volumes.js';

/** `--point`: a job name, or the newest point that is live. */
export type PointChoice = { job: string } | 'latest';

export function parsePointChoice(raw: string): PointChoice {
  if (raw === 'latest') return 'latest';
  if (!JOB_NAME.test(raw))
    throw new UsageError(
      `--point=${raw}: expected a job name (as \`ec2-bpipe points\` lists them) or latest.`,
    );
  return { job: raw };
}

/** A point whose snapshots are live in the target Region: what the launch needs. */
export interface LivePoint {
  record: PointRecord;
  restored: Map<string, RestoredVolume>;
  /** Where the snapshots are live: the target Region. */
  region: string;
}

/**
 * The snapshots of `record` in `region` (its own, or the DR copies of them), each checked against
 * its tags; the reasons when one is not usable. A snapshot whose tags name another config, job or
 * volume, or that is not completed, is never launched.
 */
export async function liveSnapshots(
  ec2: EC2Client,
  config: Config,
  region: string,
  record: PointRecord,
  selected: (volumeId: string) => boolean,
): Promise<{ restored: Map<string, RestoredVolume>; why: string[] }> {
  const restored = new Map<string, RestoredVolume>();
  const why: string[] = [];
  const own = region === record.region;
  const volumes = record.volumes.filter((v) => selected(v.volumeId));
  // One listing per volume, side by side: the point's check is on the recovery's critical path.
  const listed = await Promise.all(volumes.map((v) => volumeLinks(ec2, config, v.volumeId)));
  for (const [n, meta] of volumes.entries()) {
    const links = listed[n] ?? [];
    const source = copyOfTag(record.region, meta.snapshotId);
    const link = links.find((l) =>
      own ? l.snapshotId === meta.snapshotId && l.copyOf === undefined : l.copyOf === source,
    );
    const problem =
      link === undefined
        ? own
          ? `${meta.snapshotId} is not among config ${config.name}'s snapshots of ${meta.volumeId} in ${region} (deleted, or its tags changed)`
          : `no copy of ${source} is among config ${config.name}'s snapshots of ${meta.volumeId} in ${region}`
        : link.job !== record.head
          ? `${link.snapshotId} is tagged for job ${link.job}, not ${record.head}`
          : !link.complete
            ? `${link.snapshotId} is ${link.pending ? 'still being copied' : 'not completed, or its stream was not'}`
            : link.sizeGiB !== meta.sizeGiB
              ? `${link.snapshotId} holds ${link.sizeGiB} GiB, the stream ${meta.sizeGiB} GiB`
              : undefined;
    if (problem !== undefined || link === undefined) why.push(`${meta.volumeId}: ${problem ?? ''}`);
    else restored.set(meta.volumeId, { meta: pointVolume(meta), snapshotId: link.snapshotId });
  }
  return { restored, why };
}

/** The volume as launched from its own snapshot: a Full of itself, whatever level its job had. */
function pointVolume(meta: VolumeMeta): VolumeMeta {
  return { ...meta, level: 'Full', baseSnapshotId: null, baseJob: null };
}

/**
 * The point `choice` names among the unit's records, with its live snapshots in `region`. A job
 * named outright is refused (exit 2) with every reason; `latest` takes the newest complete point
 * that is live there, and says why it passed over newer ones.
 */
export async function choosePoint(
  /** The EC2 client of a Region (clients are made once per Region). */
  ec2In: (region: string) => EC2Client,
  config: Config,
  resourceId: string,
  choice: PointChoice,
  selected: (volumeId: string) => boolean,
  log: Logger,
): Promise<LivePoint> {
  const stateDir = config.bacula.stateDir;
  const where = unitRecordDir(stateDir, config.name, resourceId);
  const records: PointRecord[] = [];
  if (choice === 'latest') {
    for (const job of await recordedJobs(stateDir, config.name, resourceId)) {
      try {
        const record = await readPointRecord(stateDir, config.name, resourceId, job);
        if (record) records.push(record);
      } catch (err) {
        // One damaged record must not hide the other points: it is named and passed over.
        log.warn(`point ${job} passed over: ${describeError(err)}`);
      }
    }
    records.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  } else {
    const record = await readPointRecord(stateDir, config.name, resourceId, choice.job);
    if (record === undefined)
      throw new UsageError(
        `no point record of job ${choice.job} for ${resourceId} in ${where}: a backup writes one there when its job completes. ` +
          '`ec2-bpipe points` lists the points; a job backed up on another host, or before 0.4, restores from its stream.',
      );
    records.push(record);
  }
  if (records.length === 0)
    throw new UsageError(
      `no point record for ${resourceId} in ${where}: no backup of config ${config.name} completed on this host. Restore from the stream.`,
    );
  const passed: string[] = [];
  for (const record of records) {
    // [restore] region (--region) names the target; else the Region the job backed up from.
    const region = config.restore.region ?? record.region;
    const { restored, why } = await liveSnapshots(ec2In(region), config, region, record, selected);
    if (why.length === 0 && restored.size > 0) {
      if (passed.length) log.info(`newer points passed over: ${passed.join('; ')}`);
      return { record, restored, region };
    }
    const reason = why.length ? why.join('; ') : 'none of its volumes is selected';
    if (choice !== 'latest')
      throw new UsageError(
        `point ${record.head} of ${resourceId} cannot be launched from snapshots in ${region}: ${reason}. ` +
          'Choose another point (`ec2-bpipe points`), or restore this job from its stream.',
      );
    passed.push(`${record.head} (${reason})`);
  }
  throw new UsageError(`no point of ${resourceId} is live: ${passed.join('; ')}`);
}

/**
 * The snapshots of `job` that AWS holds in `region` for each volume, for [restore] from-snapshots:
 * the job's own snapshot in its Region, or a DR copy of it elsewhere, complete, of this config.
 * The stream's metadata is matched against them as it is read (liveMatch).
 */
export async function liveLinks(
  ec2: EC2Client,
  config: Config,
  region: string,
  sourceRegion: string,
  job: string,
  volumeIds: string[],
): Promise<{ links: Map<string, ChainLink>; why: string[] }> {
  const links = new Map<string, ChainLink>();
  const why: string[] = [];
  for (const volumeId of volumeIds) {
    const link = (await volumeLinks(ec2, config, volumeId)).find(
      (l) => l.job === job && (region === sourceRegion) === (l.copyOf === undefined),
    );
    if (link === undefined) why.push(`${volumeId}: no snapshot of job ${job} is left in ${region}`);
    else if (!link.complete)
      why.push(`${volumeId}: ${link.snapshotId} is ${link.pending ? 'still being copied' : 'not complete'}`);
    else links.set(volumeId, link);
  }
  return { links, why };
}

/**
 * Whether the stream's volume was read from `link` (or from the snapshot `link` is a copy of):
 * undefined when it was, else why not. The stream names its snapshot; the tags alone do not.
 */
export function liveMismatch(link: ChainLink, meta: VolumeMeta, sourceRegion: string): string | undefined {
  const same =
    link.copyOf === undefined
      ? link.snapshotId === meta.snapshotId
      : link.copyOf === copyOfTag(sourceRegion, meta.snapshotId);
  if (!same) return `the stream was read from ${meta.snapshotId}, not from ${link.copyOf ?? link.snapshotId}`;
  if (link.sizeGiB !== meta.sizeGiB)
    return `${link.snapshotId} holds ${link.sizeGiB} GiB, the stream ${meta.sizeGiB} GiB`;
  return undefined;
}
