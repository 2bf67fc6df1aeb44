import {
  CopySnapshotCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  paginateDescribeSnapshots,
  type Tag,
} from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { answered } from '../aws/answer.js';
import { createClients } from '../aws/clients.js';
import { checkKmsKey } from '../aws/kms.js';
import { jobTag, TAG, tagValue, withinTagLimit } from '../aws/tags.js';
import { otherConfigFile } from './links.js';
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
 * retention: the Bacula stream and the source snapshots are intact, and the next job copies its
 * own snapshots.
 */
export async function copyToRegion(request: CopyRequest): Promise<void> {
  const { config, sourceRegion, ec2, snapshots, log } = request;
  const region = config.backup.copyToRegion;
  if (region === undefined || snapshots.size === 0) return;
  const clients = createClients(config.aws, { region });
  try {
    try {
      await dropFailedCopies(clients.ec2, config, region, log);
    } catch (err) {
      log.warn(`the failed DR copies in ${region} could not be looked for (${describeError(err)})`);
    }
    const key = config.backup.copyKmsKeyId;
    if (key !== undefined) await checkKmsKey(clients.kms, key, region, '[backup] copy-kms-key-id');
    const ids = [...snapshots.values()];
    const described = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: ids }));
    const tagsOf = new Map((described.Snapshots ?? []).map((s) => [s.SnapshotId, s.Tags ?? []]));
    for (const [volumeId, snapshotId] of snapshots) {
      try {
        const copyId = await copyOne(clients.ec2, request, region, snapshotId, tagsOf.get(snapshotId) ?? []);
        log.info(`DR copy of ${snapshotId} (${volumeId}) started in ${region}: ${copyId}`);
      } catch (err) {
        log.warn(
          `DR copy of ${snapshotId} (${volumeId}) to ${region} failed (${describeError(err)}); ` +
            `the stream and the snapshot in ${sourceRegion} are whole. Check [backup] copy-to-region and ` +
            `copy-kms-key-id, and ec2:CopySnapshot in ${region}.`,
        );
      }
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

async function copyOne(
  ec2: EC2Client,
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
  const copy = await ec2.send(
    new CopySnapshotCommand({
      SourceRegion: sourceRegion,
      SourceSnapshotId: snapshotId,
      Description: `ec2-bpipe DR copy of ${sourceRegion}/${snapshotId}`,
      // "If KmsKeyId is specified, the encrypted state must be true" (CopySnapshot reference).
      ...(key !== undefined && { Encrypted: true, KmsKeyId: key }),
      TagSpecifications: [{ ResourceType: 'snapshot', Tags: tags }],
    }),
  );
  const copyId = answered(copy.SnapshotId, `the snapshot id of the copy of ${snapshotId} in CopySnapshot`);
  await ec2.send(new CreateTagsCommand({ Resources: [copyId], Tags: [{ Key: TAG.taken, Value: copyId }] }));
  return copyId;
}

/**
 * A copy AWS failed after it started (its key disabled or deleted meanwhile: AWS checks the key
 * asynchronously) is in the `error` state. That is no chain link, so neither retention nor
 * `points` would ever show it. Each job says so in its log, then deletes it: it is this config's
 * (its tags and config file say so) and holds nothing usable.
 */
async function dropFailedCopies(ec2: EC2Client, config: Config, region: string, log: Logger): Promise<void> {
  const pages = paginateDescribeSnapshots(
    { client: ec2 },
    {
      OwnerIds: ['self'],
      Filters: [
        { Name: `tag:${TAG.config}`, Values: [config.name] },
        { Name: 'tag-key', Values: [TAG.copyOf] },
        { Name: 'status', Values: ['error'] },
      ],
      MaxResults: 1000,
    },
  );
  for await (const page of pages) {
    for (const snapshot of page.Snapshots ?? []) {
      if (snapshot.SnapshotId === undefined || snapshot.State !== 'error') continue;
      if (tagValue(snapshot.Tags, TAG.config) !== config.name) continue;
      // Another config file of the same name made it: not ours to delete (docs/DESIGN.md §4).
      if (otherConfigFile(config, snapshot.Tags) !== undefined) continue;
      // A copy of a copy made with its tags carries another snapshot's id: not one this tool made.
      const taken = tagValue(snapshot.Tags, TAG.taken);
      if (taken !== undefined && taken !== snapshot.SnapshotId) continue;
      // Tag values are anyone's text: only well-formed ones reach the log.
      const source = /^[a-z0-9-]+\/snap-[0-9a-f]+$/.exec(tagValue(snapshot.Tags, TAG.copyOf) ?? '')?.[0];
      log.warn(
        `DR copy ${snapshot.SnapshotId} of ${source ?? 'a snapshot'} (job ${jobTag(snapshot.Tags, TAG.job) ?? '?'}) ` +
          `failed in ${region}: AWS put it in the error state; deleting it. Check that [backup] ` +
          'copy-kms-key-id stays enabled.',
      );
      await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshot.SnapshotId }));
    }
  }
}
