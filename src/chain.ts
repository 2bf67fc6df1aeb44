import {
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  type Snapshot,
} from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { configPathTag, TAG } from './aws/snapshots.js';
import { UsageError } from './errors.js';
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

/** Who took a snapshot: the config's name, and the file it was read from. */
export interface ConfigIdentity {
  name: string;
  path?: string;
  /** The name was set with [backup] name: the admin vouches for it, so a moved file keeps its chains. */
  backup: { name?: string };
}

/**
 * Every snapshot this config took of the volume, newest first. Only snapshots carrying our tags
 * are listed. Refuses when another config file of the same name took some, unless the name was
 * set explicitly: two files called web.ini in two directories would otherwise share chains and
 * delete each other's snapshots.
 */
export async function volumeLinks(
  ec2: EC2Client,
  identity: ConfigIdentity,
  volumeId: string,
): Promise<ChainLink[]> {
  const config = identity.name;
  const ours = configPathTag(identity.path);
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
      if (!link || tag(snapshot, TAG.config) !== config || link.volumeId !== volumeId) continue;
      const theirs = tag(snapshot, TAG.configPath);
      if (identity.backup.name === undefined && theirs !== undefined && theirs !== ours) {
        throw new UsageError(
          `${snapshot.SnapshotId} of ${volumeId} was taken by another config file named ${config} (${theirs || 'the command line'}; ` +
            `this one is ${ours || 'the command line'}). Two configs of one name would share chains and retention: ` +
            'give each a distinct [backup] name.',
        );
      }
      links.push(link);
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return links.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
}

/** A base, with a note when it is not the one asked for; or why there is none. */
export type BaseChoice = { base: ChainLink; note?: string } | { base: undefined; reason: string };

/**
 * The base of an Incremental or Differential for one volume (docs/DESIGN.md §4):
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
  const usable = (l: ChainLink): boolean => l.complete && (level !== 'Differential' || l.level === 'Full');
  const want = level === 'Differential' ? 'complete Full' : 'complete stream';
  let candidate: ChainLink | undefined;
  let note: string | undefined;
  let link = prevJob === undefined ? undefined : byJob.get(prevJob);
  if (prevJob !== undefined && link !== undefined) {
    const seen = new Set<string>();
    while (link && !usable(link)) {
      seen.add(link.job);
      const next: ChainLink | undefined = link.baseJob ? byJob.get(link.baseJob) : undefined;
      if (!next || seen.has(next.job)) {
        return { base: undefined, reason: `no ${want} was found going back from job ${prevJob}` };
      }
      link = next;
    }
    candidate = link;
  } else {
    // No previous job given, or it left no snapshot at all (it failed before taking one, or its
    // snapshots were deleted): the newest usable stream is what it would have walked back to.
    candidate = links.find(usable);
    if (!candidate) {
      const why = prevJob === undefined ? '' : `job ${prevJob} left no snapshot, and `;
      return { base: undefined, reason: `${why}no ${want} of this volume exists` };
    }
    if (prevJob !== undefined) {
      note = `job ${prevJob} left no snapshot (it failed before taking one, or they were deleted); the newest ${want} is job ${candidate.job}`;
    }
  }
  if (candidate.sizeGiB !== sizeGiB) {
    return {
      base: undefined,
      reason: `the base ${candidate.snapshotId} is ${candidate.sizeGiB} GiB, the volume now ${sizeGiB} GiB`,
    };
  }
  return note === undefined ? { base: candidate } : { base: candidate, note };
}

/**
 * After a complete stream: deletes this config's older snapshots of the volume beyond `keep`,
 * never the newest complete one nor the newest complete Full, and only snapshots whose tags say
 * ec2-bpipe took them for this config.
 */
export async function applyRetention(
  ec2: EC2Client,
  config: ConfigIdentity,
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
