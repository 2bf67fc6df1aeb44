/**
 * docs/FORMAT.md, "Snapshot tags": every tag key ec2-bpipe writes or reads back, and the parsing of
 * the values it reads. Later versions read them, and a hostile or hand-edited value must not steer
 * a chain or a retention.
 */
import { createHash } from 'node:crypto';
import type { Tag } from '@aws-sdk/client-ec2';
import { JOB_NAME } from '../ids.js';
import { type Level, levelSchema } from './fields.js';

/** On each snapshot a backup takes. */
export const TAG = {
  config: 'ec2-bpipe:config',
  /** The config file that took the snapshot: two files of one name must not share chains. */
  configPath: 'ec2-bpipe:config-path',
  job: 'ec2-bpipe:job',
  baseJob: 'ec2-bpipe:base-job',
  level: 'ec2-bpipe:level',
  volume: 'ec2-bpipe:volume',
  instance: 'ec2-bpipe:instance',
  state: 'ec2-bpipe:state',
  /** On a DR copy only: `<region>/<snapshot id>` of the snapshot it was copied from. */
  copyOf: 'ec2-bpipe:copy-of',
  /**
   * The snapshot's own id, tagged once CreateSnapshot(s) or CopySnapshot answered: a copy of it
   * made with its tags carries another snapshot's id here, so retention can tell it is no link.
   */
  taken: 'ec2-bpipe:snapshot-id',
  /** The host whose job took the snapshot: a `streaming` one of another host may be a job still running. */
  host: 'ec2-bpipe:host',
  /** How many blocks the job's stream held of this volume, tagged before `complete` (`points` shows it). */
  blocks: 'ec2-bpipe:blocks',
} as const;

/** On each snapshot a restore starts: its journal entry in AWS. */
export const JOURNAL_TAG = {
  config: 'ec2-bpipe:config',
  job: 'ec2-bpipe:source-job',
  volume: 'ec2-bpipe:source-volume',
  snapshot: 'ec2-bpipe:source-snapshot',
  /** The SHA-256 of what the stream writes (manifest, volume metadata, sparse map): only the same resumes it. */
  proof: 'ec2-bpipe:stream-proof',
  /** On a pending snapshot whose attempt read a damaged stream, or another stream: never resumed. */
  abandoned: 'ec2-bpipe:abandoned',
} as const;

/** On everything a restore creates. */
export const RESTORE_TAG = {
  restored: 'ec2-bpipe:restored',
  date: 'ec2-bpipe:restore-date',
  source: 'ec2-bpipe:source',
  /** On an AMI or volume a restore makes: the operation it is for, so a rerun finds it. */
  token: 'ec2-bpipe:restore-token',
  /** On everything a restore test (restore --test) makes: the run's id, by which it removes them. */
  test: 'ec2-bpipe:restore-test',
} as const;

/** `failed`: the job that took it ended without a whole stream (it is not running any more). */
export type StreamState = 'streaming' | 'complete' | 'failed';

/** EC2 tag values hold at most 256 characters: a longer path is tagged by its SHA-256. */
export function configPathTag(path: string | undefined): string {
  if (path === undefined) return '';
  return path.length <= 256 ? path : `sha256:${createHash('sha256').update(path).digest('hex')}`;
}

export function tagValue(tags: Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** A job name read back from a tag, or undefined when the value is not one. */
export function jobTag(tags: Tag[] | undefined, key: string): string | undefined {
  const value = tagValue(tags, key);
  return value !== undefined && JOB_NAME.test(value) ? value : undefined;
}

/** The level a snapshot's tag records, or undefined when the value is not a level. */
export function levelTag(tags: Tag[] | undefined): Level | undefined {
  const parsed = levelSchema.safeParse(tagValue(tags, TAG.level));
  return parsed.success ? parsed.data : undefined;
}

/** At most 50 tags per EC2 resource ("Tag your Amazon EC2 resources", tag restrictions). */
export const MAX_TAGS = 50;

/**
 * The longest tag key and value a user may give. EC2 takes keys of 128 characters and values of
 * 256 (tag restrictions); the EBS direct APIs' StartSnapshot one less of each (TagKey 127,
 * TagValue 255, EBS API reference "Tag"). A restore puts the same tags on both kinds of resource,
 * so the shorter limits hold for every tag the config gives.
 */
export const TAG_KEY_MAX = 127;
export const TAG_VALUE_MAX = 255;

/**
 * How many of a snapshot's 50 tags are ec2-bpipe's own: every key of TAG is on a DR copy (a
 * source snapshot lacks copy-of). `[backup] snapshot-tags` may use the rest.
 */
export const OWN_SNAPSHOT_TAGS = Object.keys(TAG).length;

/**
 * How many of a restored snapshot's tags are ec2-bpipe's own: its journal entry (config, job,
 * volume, snapshot, stream proof), the restore's (restored, source), and the restore date tagged
 * once it completed, or `abandoned` on one that never will; `[restore] tags` may use the rest.
 */
export const OWN_RESTORE_TAGS = 8;

/**
 * A resource's tags within the limit: ec2-bpipe's own tags always (a restore, retention and the
 * journal depend on them), then the others while room remains. Returns what was left out, so
 * the caller can say it.
 */
export function withinTagLimit(ours: Tag[], others: Tag[]): { tags: Tag[]; dropped: string[] } {
  const ourKeys = new Set(ours.map((t) => t.Key));
  const rest = others.filter((t) => !ourKeys.has(t.Key));
  const room = Math.max(0, MAX_TAGS - ours.length);
  return {
    tags: [...rest.slice(0, room), ...ours],
    dropped: rest.slice(room).flatMap((t) => (t.Key === undefined ? [] : [t.Key])),
  };
}
