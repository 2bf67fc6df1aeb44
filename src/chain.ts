import {
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { TAG } from './aws/snapshots.js';
import type { Level } from './stream/schema.js';

/** One ec2-bpipe snapshot of a volume, as its tags describe it. */
export interface ChainLink {
  snapshotId: string;
  volumeId: string;
  job: string;
  baseJob: string | null;
  level: Level;
  complete: boolean;
  sizeGiB: number;
  startTime: Date;
}

function tag(snapshot: Snapshot, key: string): string | undefined {
  return snapshot.Tags?.find((t) => t.Key === key)?.Value;
}

function toLink(snapshot: Snapshot): ChainLink | undefined {
  const job = tag(snapshot, TAG.job);
  const volumeId = tag(snapshot, TAG.volume);
  if (job === undefined || volumeId === undefined || snapshot.State === 'error') return undefined;
  return {
    snapshotId: snapshot.SnapshotId!,
    volumeId,
    job,
    baseJob: tag(snapshot, TAG.baseJob) || null,
    level: (tag(snapshot, TAG.level) ?? 'Full') as Level,
    // A stream counts only when it was written to the end and the snapshot itself is usable.
    complete: tag(snapshot, TAG.state) === 'complete' && snapshot.State === 'completed',
    sizeGiB: snapshot.VolumeSize ?? 0,
    startTime: snapshot.StartTime ?? new Date(0),
  };
}

/** Every snapshot this config took of the volume, newest first. Only snapshots carrying our tags are listed. */
export async function volumeLinks(ec2: EC2Client, config: string, volumeId: string): Promise<ChainLink[]> {
  const links: ChainLink[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [
          { Name: `tag:${TAG.config}`, Values: [config] },
          { Name: `tag:${TAG.volume}`, Values: [volumeId] },
        ],
        MaxResults: 1000,
        NextToken: nextToken,
      }),
    );
    for (const snapshot of page.Snapshots ?? []) {
      const link = toLink(snapshot);
      if (link && tag(snapshot, TAG.config) === config && link.volumeId === volumeId) links.push(link);
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return links.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
}

export type BaseChoice = { base: ChainLink } | { base: undefined; reason: string };

/**
 * The base of an Incremental or Differential for one volume (DESIGN.md section 5):
 * - with a previous job (Bacula's %S): its snapshot if that stream is complete, else the newest
 *   complete one found by walking its base-job tags back;
 * - without: the newest complete snapshot;
 * - a Differential needs a Full, so the walk continues to the newest complete Full;
 * - a base of another size cannot be diffed into this volume's stream.
 */
export function chooseBase(
  links: ChainLink[],
  level: Level,
  prevJob: string | undefined,
  sizeGiB: number,
): BaseChoice {
  const byJob = new Map(links.map((l) => [l.job, l]));
  let candidate: ChainLink | undefined;
  if (prevJob !== undefined) {
    let link = byJob.get(prevJob);
    if (!link)
      return { base: undefined, reason: `no snapshot of job ${prevJob} exists (deleted, or never taken)` };
    const seen = new Set<string>();
    while (link && !(link.complete && (level !== 'Differential' || link.level === 'Full'))) {
      seen.add(link.job);
      const next: ChainLink | undefined = link.baseJob ? byJob.get(link.baseJob) : undefined;
      if (!next || seen.has(next.job)) {
        const want = level === 'Differential' ? 'complete Full' : 'complete stream';
        return { base: undefined, reason: `no ${want} was found going back from job ${prevJob}` };
      }
      link = next;
    }
    candidate = link;
  } else {
    candidate = links.find((l) => l.complete && (level !== 'Differential' || l.level === 'Full'));
    if (!candidate) {
      return {
        base: undefined,
        reason: `no complete ${level === 'Differential' ? 'Full' : 'stream'} of this volume exists`,
      };
    }
  }
  if (candidate.sizeGiB !== sizeGiB) {
    return {
      base: undefined,
      reason: `the base ${candidate.snapshotId} is ${candidate.sizeGiB} GiB, the volume now ${sizeGiB} GiB`,
    };
  }
  return { base: candidate };
}

/**
 * After a complete stream: deletes this config's older snapshots of the volume beyond `keep`,
 * never the newest complete one nor the newest complete Full, and only snapshots whose tags say
 * ec2-bpipe took them for this config.
 */
export async function applyRetention(
  ec2: EC2Client,
  config: string,
  volumeId: string,
  keep: number,
  log: Logger,
): Promise<string[]> {
  const links = await volumeLinks(ec2, config, volumeId);
  const protect = new Set<string>();
  const newestComplete = links.find((l) => l.complete);
  const newestFull = links.find((l) => l.complete && l.level === 'Full');
  if (newestComplete) protect.add(newestComplete.snapshotId);
  if (newestFull) protect.add(newestFull.snapshotId);
  const deleted: string[] = [];
  for (const link of links.slice(keep)) {
    if (protect.has(link.snapshotId)) continue;
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: link.snapshotId }));
    log.info(
      `retention: deleted ${link.snapshotId} of ${volumeId} (job ${link.job}, ${link.level}${link.complete ? '' : ', incomplete'})`,
    );
    deleted.push(link.snapshotId);
  }
  return deleted;
}
