import {
  CreateSnapshotCommand,
  CreateSnapshotsCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  DescribeSnapshotsCommand,
  type EC2Client,
  paginateDescribeSnapshots,
  type Snapshot,
  type Tag,
} from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { RuntimeFailure } from '../errors.js';
import { type StreamState, TAG } from '../format/tags.js';
import { pollUntil } from '../retry.js';
import { answered } from './answer.js';

export interface SnapshotRequest {
  /** Instance whose attached volumes are snapshotted together, or undefined for a detached volume. */
  instanceId?: string;
  /** Volumes wanted; with an instance, the others are excluded from CreateSnapshots. */
  volumeIds: string[];
  /** All volumes attached to the instance, with the root device's volume first. */
  attached?: { volumeId: string; root: boolean }[];
  description: string;
  tags: Tag[];
  copyVolumeTags: boolean;
}

/**
 * Takes the snapshots of one request: one CreateSnapshots call for the volumes of an instance, so
 * they are crash-consistent with each other, or one CreateSnapshot for a detached volume.
 * Returns volume id to snapshot id.
 */
export async function takeSnapshots(ec2: EC2Client, request: SnapshotRequest): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  const tagSpecifications = [{ ResourceType: 'snapshot' as const, Tags: request.tags }];
  if (request.instanceId === undefined) {
    for (const volumeId of request.volumeIds) {
      const snap = await ec2.send(
        new CreateSnapshotCommand({
          VolumeId: volumeId,
          Description: request.description,
          TagSpecifications: tagSpecifications,
        }),
      );
      result.set(volumeId, answered(snap.SnapshotId, `the snapshot id of ${volumeId} in CreateSnapshot`));
    }
  } else {
    const wanted = new Set(request.volumeIds);
    const attached = request.attached ?? [];
    const root = attached.find((v) => v.root);
    const response = await ec2.send(
      new CreateSnapshotsCommand({
        InstanceSpecification: {
          InstanceId: request.instanceId,
          ExcludeBootVolume: root !== undefined && !wanted.has(root.volumeId),
          ExcludeDataVolumeIds: attached
            .filter((v) => !v.root && !wanted.has(v.volumeId))
            .map((v) => v.volumeId),
        },
        Description: request.description,
        TagSpecifications: tagSpecifications,
        ...(request.copyVolumeTags && { CopyTagsFromSource: 'volume' as const }),
      }),
    );
    for (const info of response.Snapshots ?? []) {
      if (info.VolumeId && info.SnapshotId && wanted.has(info.VolumeId))
        result.set(info.VolumeId, info.SnapshotId);
    }
  }
  const missing = request.volumeIds.filter((v) => !result.has(v));
  if (missing.length)
    throw new RuntimeFailure(`AWS returned no snapshot for volume(s) ${missing.join(', ')}`);
  return result;
}

/**
 * Tags each new snapshot with its volume and its own id. One tag spec serves every snapshot of a
 * CreateSnapshots call, so these two, which differ per snapshot (and the id is known only once
 * AWS answered), go on after; a copy made with these tags keeps them, which tells it from the
 * snapshot this tool took.
 */
export async function tagTaken(ec2: EC2Client, taken: ReadonlyMap<string, string>): Promise<void> {
  for (const [volumeId, snapshotId] of taken) {
    await tagResources(
      ec2,
      [snapshotId],
      [
        { Key: TAG.volume, Value: volumeId },
        { Key: TAG.taken, Value: snapshotId },
      ],
    );
  }
}

/** Polls until every snapshot is completed; fails on an error state or after `timeoutS`. */
export async function waitForSnapshots(
  ec2: EC2Client,
  snapshotIds: string[],
  timeoutS: number,
  log: Logger,
): Promise<Snapshot[]> {
  let latest: Snapshot[] = [];
  let lastReport = Date.now();
  return pollUntil(
    'snapshot completion',
    timeoutS,
    async () => {
      const snapshots = await describeSnapshots(ec2, snapshotIds);
      latest = snapshots;
      const failed = snapshots.find((s) => s.State === 'error');
      if (failed) {
        throw new RuntimeFailure(
          `snapshot ${failed.SnapshotId} of ${failed.VolumeId} failed: ${failed.StateMessage ?? 'state error'}`,
        );
      }
      if (snapshots.length === snapshotIds.length && snapshots.every((s) => s.State === 'completed'))
        return snapshots;
      if (Date.now() - lastReport > 30_000) {
        lastReport = Date.now();
        log.info(
          `waiting for snapshots: ${snapshots.map((s) => `${s.SnapshotId} ${s.Progress ?? ''}`.trim()).join(', ')}`,
        );
      }
      return undefined;
    },
    () => {
      const pending = latest
        .filter((s) => s.State !== 'completed')
        .map((s) => `${s.SnapshotId} (${s.Progress ?? '?'})`);
      return `snapshots still pending after ${timeoutS}s: ${pending.join(', ')}. Raise [backup] snapshot-timeout or retry later.`;
    },
  );
}

/**
 * Marks a job's snapshots complete, each tagged with the blocks its stream held. The count goes on
 * no later than the `complete` state, so that a complete link always says it. One snapshot takes
 * both tags in one call. Several take their counts first, one call each, then the state all in
 * one call, so that the job turns complete at once: a job that dies in between leaves `streaming`
 * snapshots with counts, which nothing reads as links.
 */
export async function tagStreamComplete(ec2: EC2Client, blocks: ReadonlyMap<string, number>): Promise<void> {
  const state = { Key: TAG.state, Value: 'complete' satisfies StreamState };
  const count = (n: number) => ({ Key: TAG.blocks, Value: String(n) });
  const [only, ...others] = blocks;
  if (only === undefined) return;
  if (others.length === 0) {
    await tagResources(ec2, [only[0]], [count(only[1]), state]);
    return;
  }
  for (const [snapshotId, n] of blocks) await tagResources(ec2, [snapshotId], [count(n)]);
  await tagResources(ec2, [...blocks.keys()], [state]);
}

export async function setStreamState(
  ec2: EC2Client,
  snapshotIds: string[],
  state: StreamState,
): Promise<void> {
  await tagResources(ec2, snapshotIds, [{ Key: TAG.state, Value: state }]);
}

/** Snapshots by id, as DescribeSnapshots answers (an unknown id fails the call). */
export async function describeSnapshots(ec2: EC2Client, snapshotIds: string[]): Promise<Snapshot[]> {
  if (snapshotIds.length === 0) return [];
  const { Snapshots = [] } = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: snapshotIds }));
  return Snapshots;
}

/**
 * This account's snapshots matching every tag and, optionally, one state: each name a tag key
 * (`status` aside, which filters the state), each value the one it must have.
 */
export async function ownSnapshots(
  ec2: EC2Client,
  tags: Readonly<Record<string, string>>,
  status?: Snapshot['State'],
): Promise<Snapshot[]> {
  const found: Snapshot[] = [];
  const filters = [
    ...Object.entries(tags).map(([key, value]) => ({ Name: `tag:${key}`, Values: [value] })),
    ...(status === undefined ? [] : [{ Name: 'status', Values: [status] }]),
  ];
  for await (const page of paginateDescribeSnapshots(
    { client: ec2 },
    { OwnerIds: ['self'], Filters: filters, MaxResults: 1000 },
  ))
    found.push(...(page.Snapshots ?? []));
  return found;
}

/** Adds or replaces tags on resources (CreateTags: at most 1,000 resources a call). */
export async function tagResources(ec2: EC2Client, resourceIds: string[], tags: Tag[]): Promise<void> {
  if (resourceIds.length === 0) return;
  await ec2.send(new CreateTagsCommand({ Resources: resourceIds, Tags: tags }));
}

/** Deletes one snapshot; a snapshot an AMI uses fails with InvalidSnapshot.InUse, left to the caller. */
export async function deleteSnapshot(ec2: EC2Client, snapshotId: string): Promise<void> {
  await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
}
