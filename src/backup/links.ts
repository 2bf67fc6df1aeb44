import type { EC2Client, Snapshot, Tag } from '@aws-sdk/client-ec2';
import { ownSnapshots } from '../aws/snapshots.js';
import { configPathTag, jobTag, levelTag, TAG, tagValue } from '../format/tags.js';
import { UsageError } from '../errors.js';
import { SNAPSHOT_ID, VOLUME_ID } from '../ids.js';
import type { Level } from '../format/fields.js';

/** One ec2-bpipe snapshot of a volume, as its tags describe it: a link of a chain. */
export interface ChainLink {
  snapshotId: string;
  volumeId: string;
  job: string;
  baseJob: string | null;
  level: Level;
  complete: boolean;
  /**
   * The stream was written to the end but AWS has not finished the snapshot yet: a DR copy under
   * way (a backup's own snapshots are completed before their stream is read).
   */
  pending: boolean;
  /** Its job ended without a whole stream and said so (since 0.3; older failed jobs left `streaming`). */
  failed?: boolean;
  sizeGiB: number;
  startTime: Date;
  /** The host whose job took it (since 0.3); undefined for older snapshots or a value out of shape. */
  host?: string | undefined;
  /** The blocks its stream held (since 0.3); undefined for older snapshots or a value out of shape. */
  blocks?: number | undefined;
  /** On a DR copy: `<region>/<snapshot id>` of the snapshot it was copied from. */
  copyOf?: string | undefined;
}

/** A snapshot that carries this config's tags, which ec2-bpipe cannot prove it took (a copy, a forged tag). */
export interface DoubtfulSnapshot {
  snapshotId: string;
  volumeId: string;
  why: string;
}

/** AWS's placeholder volume id of a snapshot made without a volume: copies, StartSnapshot. */
const NO_VOLUME = 'vol-ffffffff';

/**
 * Why a snapshot that carries our tags is not one ec2-bpipe took of `volumeId`, or undefined when
 * it is. Ours: a snapshot of the volume itself (its real volume id, which no tag can change), or a
 * DR copy (`copy-of`), whose snapshot-id tag, when present, is its own id: a copy made with our
 * tags carries its source's id there. Snapshots of 0.2 have no snapshot-id tag.
 */
function doubt(snapshot: Snapshot, snapshotId: string, volumeId: string): string | undefined {
  const taken = tagValue(snapshot.Tags, TAG.taken);
  if (taken !== undefined && taken !== snapshotId)
    return `it carries the tags of ${SNAPSHOT_ID.test(taken) ? taken : 'another snapshot'}: a copy made with its tags`;
  const isCopy = tagValue(snapshot.Tags, TAG.copyOf) !== undefined;
  if (!isCopy && snapshot.VolumeId !== volumeId) {
    return snapshot.VolumeId === NO_VOLUME || snapshot.VolumeId === undefined
      ? 'it was not taken of the volume (a copy, or a snapshot made without one)'
      : `it is a snapshot of ${snapshot.VolumeId}`;
  }
  return undefined;
}

/** Who took a snapshot: the config's name, and the file it was read from. */
export interface ConfigIdentity {
  name: string;
  path?: string;
  /** The name was set with [backup] name: the admin vouches for it, so a moved file keeps its chains. */
  backup: { name?: string };
}

/**
 * A snapshot's tags as a link, or undefined when they do not describe one: tags are read back
 * from AWS, where anyone with CreateTags can write them, so a value out of shape is ignored.
 */
function toLink(snapshot: Snapshot): ChainLink | undefined {
  const job = jobTag(snapshot.Tags, TAG.job);
  const volumeId = tagValue(snapshot.Tags, TAG.volume);
  const level = levelTag(snapshot.Tags);
  const baseJob = tagValue(snapshot.Tags, TAG.baseJob);
  if (
    snapshot.SnapshotId === undefined ||
    job === undefined ||
    volumeId === undefined ||
    !VOLUME_ID.test(volumeId) ||
    level === undefined ||
    snapshot.State === 'error'
  ) {
    return undefined;
  }
  return {
    snapshotId: snapshot.SnapshotId,
    volumeId,
    job,
    baseJob: baseJob ? (jobTag(snapshot.Tags, TAG.baseJob) ?? null) : null,
    level,
    // A stream counts only when it was written to the end and the snapshot itself is usable.
    complete: tagValue(snapshot.Tags, TAG.state) === 'complete' && snapshot.State === 'completed',
    pending: tagValue(snapshot.Tags, TAG.state) === 'complete' && snapshot.State === 'pending',
    failed: tagValue(snapshot.Tags, TAG.state) === 'failed',
    sizeGiB: snapshot.VolumeSize ?? 0,
    startTime: snapshot.StartTime ?? new Date(0),
    host: hostTag(snapshot.Tags),
    blocks: blocksTag(snapshot.Tags, snapshot.VolumeSize ?? 0),
    copyOf: tagValue(snapshot.Tags, TAG.copyOf),
  };
}

/** A block count read back from a tag: digits only, and no more blocks than the volume holds. */
function blocksTag(tags: Tag[] | undefined, sizeGiB: number): number | undefined {
  const value = tagValue(tags, TAG.blocks);
  if (value === undefined || !/^\d{1,9}$/.test(value)) return undefined;
  const blocks = Number(value);
  // 2048 blocks of 512 KiB per GiB.
  return blocks <= sizeGiB * 2048 ? blocks : undefined;
}

/** A host name read back from a tag: a DNS-like label only, so that a log line never carries anyone's text. */
function hostTag(tags: Tag[] | undefined): string | undefined {
  const value = tagValue(tags, TAG.host);
  return value !== undefined && /^[\w.-]{1,253}$/.test(value) ? value : undefined;
}

/**
 * The config file (its path tag) that took a snapshot carrying this config's name, when that is
 * another file than this one; undefined when it is this one, when the snapshot has no path tag
 * (ec2-bpipe 0.1), or when [backup] name was set, which vouches that the files are one config.
 */
export function otherConfigFile(identity: ConfigIdentity, tags: Tag[] | undefined): string | undefined {
  const theirs = tagValue(tags, TAG.configPath);
  if (identity.backup.name !== undefined || theirs === undefined) return undefined;
  return theirs === configPathTag(identity.path) ? undefined : theirs;
}

/**
 * Every snapshot this config took of the volume, newest first. Only snapshots carrying our tags
 * are listed. Refuses when another config file of the same name took some, unless the name was
 * set explicitly: two files called web.ini in two directories would otherwise share chains and
 * delete each other's snapshots (docs/DESIGN.md §4).
 */
export async function volumeLinks(
  ec2: EC2Client,
  identity: ConfigIdentity,
  volumeId: string,
  /** Told of each snapshot with our tags that is no link (retention names them in its log). */
  onDoubt?: (snapshot: DoubtfulSnapshot) => void,
): Promise<ChainLink[]> {
  const config = identity.name;
  const ours = configPathTag(identity.path);
  const links: ChainLink[] = [];
  for (const snapshot of await ownSnapshots(ec2, { [TAG.config]: config, [TAG.volume]: volumeId })) {
    const link = toLink(snapshot);
    if (!link || tagValue(snapshot.Tags, TAG.config) !== config || link.volumeId !== volumeId) continue;
    const theirs = otherConfigFile(identity, snapshot.Tags);
    if (theirs !== undefined) {
      throw new UsageError(
        `${link.snapshotId} of ${volumeId} was taken by another config file named ${config} (${theirs || 'the command line'}; ` +
          `this one is ${ours || 'the command line'}). Two configs of one name would share chains and retention: ` +
          'give each a distinct [backup] name.',
      );
    }
    const why = doubt(snapshot, link.snapshotId, volumeId);
    if (why !== undefined) {
      onDoubt?.({ snapshotId: link.snapshotId, volumeId, why });
      continue;
    }
    links.push(link);
  }
  return links.sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
}
