import {
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Filter,
} from '@aws-sdk/client-ec2';
import type { Config, Tags } from './config.js';
import { UsageError } from './errors.js';

/** What one backup stream holds: an instance with its volumes, or a set of volumes. */
export type Unit =
  | { kind: 'instance'; resourceId: string; instanceId: string }
  | { kind: 'volumes'; resourceId: string; volumeIds: string[] };

const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
const VOLUME_ID = /^vol-[0-9a-f]{8,17}$/;

export function tagFilters(tags: Tags): Filter[] {
  return Object.entries(tags).map(([key, value]) => ({ Name: `tag:${key}`, Values: [value] }));
}

/** Instances and volumes the config selects, in a stable order. Changes nothing in AWS. */
export async function selectedUnits(config: Config, ec2: EC2Client): Promise<Unit[]> {
  const { backup } = config;
  const instanceIds = new Set(backup.instanceIds);
  if (Object.keys(backup.instanceTags).length) {
    const filters = [
      ...tagFilters(backup.instanceTags),
      { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
    ];
    let nextToken: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeInstancesCommand({ Filters: filters, MaxResults: 1000, NextToken: nextToken }),
      );
      for (const i of (page.Reservations ?? []).flatMap((r) => r.Instances ?? []))
        instanceIds.add(i.InstanceId!);
      nextToken = page.NextToken;
    } while (nextToken);
  }
  const volumeIds = new Set(backup.volumeIds);
  if (Object.keys(backup.volumeTags).length) {
    let nextToken: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeVolumesCommand({
          Filters: tagFilters(backup.volumeTags),
          MaxResults: 500,
          NextToken: nextToken,
        }),
      );
      for (const v of page.Volumes ?? []) volumeIds.add(v.VolumeId!);
      nextToken = page.NextToken;
    } while (nextToken);
  }
  return [
    ...[...instanceIds].sort().map((id): Unit => ({ kind: 'instance', resourceId: id, instanceId: id })),
    ...[...volumeIds].sort().map((id): Unit => ({ kind: 'volumes', resourceId: id, volumeIds: [id] })),
  ];
}

/** The unit a `backup` or `estimate` invocation streams: from the flags, else the config's only unit. */
export async function resolveUnit(
  config: Config,
  ec2: EC2Client,
  options: Record<string, unknown>,
): Promise<Unit> {
  const instance = options.instance as string | undefined;
  const volume = options.volume as string | undefined;
  if (instance !== undefined && volume !== undefined)
    throw new UsageError('Give --instance or --volume, not both.');
  if (instance !== undefined) {
    if (!INSTANCE_ID.test(instance))
      throw new UsageError(`--instance=${instance}: expected an instance id (i-...).`);
    return { kind: 'instance', resourceId: instance, instanceId: instance };
  }
  if (volume !== undefined) {
    const ids = volume
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const bad = ids.find((id) => !VOLUME_ID.test(id));
    if (bad !== undefined || ids.length === 0)
      throw new UsageError(`--volume=${volume}: expected volume ids (vol-...), comma-separated.`);
    return { kind: 'volumes', resourceId: ids.join('+'), volumeIds: [...new Set(ids)] };
  }
  const units = await selectedUnits(config, ec2);
  if (units.length === 1) return units[0]!;
  const where = config.file ?? 'the command line';
  if (units.length === 0) {
    throw new UsageError(
      `${where}: nothing selected. Pass --instance or --volume, or set [backup] instance-ids, instance-tags, volume-ids or volume-tags.`,
    );
  }
  throw new UsageError(
    `${where}: the config selects ${units.length} units (${units.map((u) => u.resourceId).join(', ')}); ` +
      'a backup streams one. Pass --instance or --volume (ec2-bpipe list prints one line per unit).',
  );
}
