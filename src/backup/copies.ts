import type { EC2Client, Tag } from '@aws-sdk/client-ec2';
import { deleteSnapshot, describeSnapshots } from '../aws/snapshots.js';
import type { Logger } from 'pino';
import { type AwsClients, createClients } from '../aws/clients.js';
import {
  CONCURRENT_COPIES,
  copiesOfConfig,
  copyQuotaReached,
  type KnownCopy,
  startCopy,
} from '../aws/copy.js';
import { checkKmsKey } from '../aws/kms.js';
import { jobTag, TAG, tagValue, withinTagLimit } from '../format/tags.js';
import { otherConfigFile, volumeLinks } from './links.js';
import type { Config } from '../config.js';
import { describeError } from '../errors.js';
import { retainEach } from './retention.js';

/** What a job asks of its DR copies: the snapshots of its complete stream, by volume. */
export interface CopyRequest {
  config: Config;
  /** The Region the snapshots are in. */
  sourceRegion: string;
  /** The source Region's EC2 client, to read the snapshots' tags. */
  ec2: EC2Client;
  /** Volume id to snapshot id, of one complete stream. */
  snapshots: Map<string, string>;
  /** The job whose snapshots these are. */
  job: string;
  log: Logger;
}

/**
 * The value of a copy's `ec2-bpipe:copy-of` tag: where its source is. A restore or an operator
 * reading the copy region finds the snapshot it stands for.
 */
export function copyOfTag(region: string, snapshotId: string): string {
  return `${region}/${snapshotId}`;
}

/**
 * DR copies (docs/DESIGN.md §4): each snapshot of a complete stream is copied to
 * `[backup] copy-to-region` with CopySnapshot, sent to that Region. The copy carries the source's
 * tags (AWS copies none by itself) plus `ec2-bpipe:copy-of`, so it is a link of the same chain
 * there: `points` lists it, and retention keeps `keep-snapshots` of them by the same rules.
 *
 * The job does not wait for the copies: AWS takes minutes to hours per copy, and the stream is
 * whole already. A copy still pending is no complete link (its state is not `completed`), so
 * retention there never counts it as the newest good one. A failure is a warning, as for
 * retention: the Bacula stream and the source snapshots are intact.
 *
 * What one job misses, a later job makes up: besides its own snapshots, a job copies the newest
 * `keep-snapshots` complete links of each of its volumes that have no copy yet (a copy refused,
 * one that failed and was deleted, one left over for the quota). AWS makes at most 20 copies into
 * a Region at once: the job starts as many as there are free places, its own snapshots first,
 * and leaves the rest for the next job, saying so.
 */
export async function copyToRegion(request: CopyRequest): Promise<void> {
  const { config, sourceRegion, snapshots, log } = request;
  const region = config.backup.copyToRegion;
  if (region === undefined || snapshots.size === 0) return;
  const clients = createClients(config.aws, { region, purpose: 'a DR copy ([backup] copy-to-region)' });
  try {
    // Unlisted, the copies already made are unknown: the job copies its own snapshots only, so
    // that no link is copied twice.
    let known: KnownCopy[] | undefined;
    try {
      known = await copiesOfConfig(clients.ec2, config.name);
      await dropFailedCopies(clients.ec2, config, region, known, log);
    } catch (err) {
      log.warn(
        `the DR copies in ${region} could not be listed (${describeError(err)}); this job copies its own snapshots only`,
      );
    }
    const key = config.backup.copyKmsKeyId;
    if (key !== undefined) await checkKmsKey(clients.kms, key, region, '[backup] copy-kms-key-id');
    const queue = known === undefined ? ownQueue(request) : await copyQueue(request, known);
    const ids = queue.map((c) => c.snapshotId);
    const described = await describeSnapshots(request.ec2, ids);
    const tagsOf = new Map(described.map((s) => [s.SnapshotId, s.Tags ?? []]));
    const inFlight = (known ?? []).filter((c) => c.state === 'pending').length;
    let free = CONCURRENT_COPIES - inFlight;
    let started = 0;
    let left = 0;
    for (const [n, { volumeId, snapshotId }] of queue.entries()) {
      if (free <= 0) {
        left = queue.length - n;
        break;
      }
      try {
        const copyId = await copyOne(clients, request, region, snapshotId, tagsOf.get(snapshotId) ?? []);
        started++;
        free--;
        log.info(`DR copy of ${snapshotId} (${volumeId}) started in ${region}: ${copyId}`);
      } catch (err) {
        if (copyQuotaReached(err)) {
          // Copies of other tools or configs hold the remaining places.
          left = queue.length - n;
          break;
        }
        log.warn(
          `DR copy of ${snapshotId} (${volumeId}) to ${region} failed (${describeError(err)}); ` +
            `the stream and the snapshot in ${sourceRegion} are whole. Check [backup] copy-to-region and ` +
            `copy-kms-key-id, and ec2:CopySnapshot in ${region}.`,
        );
      }
    }
    if (left > 0) {
      log.warn(
        `DR copies to ${region}: ${left} of ${queue.length} left for a later job, since AWS makes at most ` +
          `${CONCURRENT_COPIES} snapshot copies into a Region at once (${inFlight} of this config were under way ` +
          `before this job, ${started} started now)`,
      );
    }
    await retainEach(
      clients.ec2,
      config,
      snapshots.keys(),
      config.backup.keepSnapshots,
      log,
      request.job,
      region,
    );
  } finally {
    clients.destroy();
  }
}

interface QueuedCopy {
  volumeId: string;
  snapshotId: string;
}

/**
 * What to copy, in order: the job's own snapshots, then, newest first, the complete links among
 * the newest `keep-snapshots` of each of its volumes that have no copy in the copy Region.
 */
function ownQueue(request: CopyRequest): QueuedCopy[] {
  return [...request.snapshots].map(([volumeId, snapshotId]) => ({ volumeId, snapshotId }));
}

async function copyQueue(request: CopyRequest, known: KnownCopy[]): Promise<QueuedCopy[]> {
  const { config, sourceRegion, snapshots } = request;
  const copied = new Set(known.filter((c) => c.state !== 'error').map((c) => c.copyOf));
  const own = ownQueue(request);
  const queued = new Set(own.map((c) => c.snapshotId));
  const missing: { volumeId: string; snapshotId: string; startTime: number }[] = [];
  for (const volumeId of snapshots.keys()) {
    const links = await volumeLinks(request.ec2, config, volumeId);
    for (const link of links.filter((l) => l.complete).slice(0, config.backup.keepSnapshots)) {
      if (queued.has(link.snapshotId) || copied.has(copyOfTag(sourceRegion, link.snapshotId))) continue;
      missing.push({ volumeId, snapshotId: link.snapshotId, startTime: link.startTime.getTime() });
    }
  }
  missing.sort((a, b) => b.startTime - a.startTime);
  return [...own, ...missing.map(({ volumeId, snapshotId }) => ({ volumeId, snapshotId }))];
}

async function copyOne(
  clients: AwsClients,
  request: CopyRequest,
  region: string,
  snapshotId: string,
  sourceTags: Tag[],
): Promise<string> {
  const { config, sourceRegion } = request;
  // Keys under aws: are AWS's own: CreateTags, and so a TagSpecification, refuses them.
  const others = sourceTags.filter((t) => t.Key !== undefined && !t.Key.toLowerCase().startsWith('aws:'));
  // The source's own id is no tag of the copy: the copy gets its own once CopySnapshot answered.
  const ours = others.filter((t) => t.Key?.startsWith('ec2-bpipe:') && t.Key !== TAG.taken);
  const { tags, dropped } = withinTagLimit(
    [...ours, { Key: TAG.copyOf, Value: copyOfTag(sourceRegion, snapshotId) }],
    others.filter((t) => !t.Key?.startsWith('ec2-bpipe:')),
  );
  if (dropped.length) {
    request.log.warn(`DR copy of ${snapshotId}: tags left out (50 at most): ${dropped.join(', ')}`);
  }
  const key = config.backup.copyKmsKeyId;
  return startCopy({
    source: request.ec2,
    destination: clients.ec2,
    credentials: clients.credentials,
    sourceRegion,
    destinationRegion: region,
    snapshotId,
    description: `ec2-bpipe DR copy of ${sourceRegion}/${snapshotId}`,
    ...(key !== undefined && { kmsKeyId: key }),
    tags,
  });
}

/** AWS's StateMessage of a failed copy, as a log may show it: one line of printable text, bounded. */
export function stateMessage(message: string | undefined): string {
  const clean = (message ?? '')
    .replace(/[^\x20-\x7e]/g, ' ')
    .trim()
    .slice(0, 300);
  return clean === '' ? 'AWS gave no reason' : clean;
}

/**
 * A copy AWS failed after it started (its key disabled or deleted meanwhile, a presigned URL it
 * could not authenticate: AWS checks both asynchronously) is in the `error` state. That is no
 * chain link, so neither retention nor `points` would ever show it. Each job says so in its log,
 * with AWS's reason, then deletes it: it is this config's (its tags and config file say so) and
 * holds nothing usable. Its source has no copy any more, so the same job copies it again.
 */
async function dropFailedCopies(
  ec2: EC2Client,
  config: Config,
  region: string,
  known: KnownCopy[],
  log: Logger,
): Promise<void> {
  for (const copy of known) {
    if (copy.state !== 'error') continue;
    // Another config file of the same name made it: not ours to delete (docs/DESIGN.md §4).
    if (otherConfigFile(config, copy.tags) !== undefined) continue;
    // A copy of a copy made with its tags carries another snapshot's id: not one this tool made.
    const taken = tagValue(copy.tags, TAG.taken);
    if (taken !== undefined && taken !== copy.snapshotId) continue;
    // Tag values are anyone's text: only well-formed ones reach the log.
    const source = /^[a-z0-9-]+\/snap-[0-9a-f]+$/.exec(copy.copyOf)?.[0];
    log.warn(
      `DR copy ${copy.snapshotId} of ${source ?? 'a snapshot'} (job ${jobTag(copy.tags, TAG.job) ?? '?'}) ` +
        `failed in ${region}: AWS put it in the error state ("${stateMessage(copy.stateMessage)}"); deleting it ` +
        'and copying its source again. Check that [backup] copy-kms-key-id stays enabled.',
    );
    await deleteSnapshot(ec2, copy.snapshotId);
  }
}
