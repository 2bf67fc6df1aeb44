import type { EC2Client, Filter } from '@aws-sdk/client-ec2';
import { eachInstance, eachVolume } from './aws/inventory.js';
import type { Config, Tags } from './config.js';
import { UsageError } from './errors.js';
import { INSTANCE_ID, VOLUME_ID } from './ids.js';
import { answered } from './aws/answer.js';

/** What one backup stream holds: an instance with its volumes, or a set of volumes. */
export type Unit =
  | { kind: 'instance'; resourceId: string; instanceId: string }
  | { kind: 'volumes'; resourceId: string; volumeIds: string[] };

export function tagFilters(tags: Tags): Filter[] {
  return Object.entries(tags).map(([key, value]) => ({ Name: `tag:${key}`, Values: [value] }));
}

/** The unit named on the command line: --instance or --volume (comma-separated ids). */
export interface UnitFlags {
  instance?: string;
  volume?: string;
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
    for await (const i of eachInstance(ec2, { Filters: filters, MaxResults: 1000 }))
      instanceIds.add(answered(i.InstanceId, 'an instance id in DescribeInstances'));
  }
  const volumeIds = new Set(backup.volumeIds);
  if (Object.keys(backup.volumeTags).length) {
    for await (const v of eachVolume(ec2, { Filters: tagFilters(backup.volumeTags), MaxResults: 500 }))
      volumeIds.add(answered(v.VolumeId, 'a volume id in DescribeVolumes'));
  }
  return [
    ...[...instanceIds].sort().map((id): Unit => ({ kind: 'instance', resourceId: id, instanceId: id })),
    ...(await volumeUnits(ec2, [...volumeIds])).map((ids) => volumesUnit(ids)),
  ];
}

/**
 * A volumes unit: its volumes sorted, and a resource id that joins them with `+` (the stream's
 * manifest must say exactly that, docs/FORMAT.md), so `--volume=b,a` and `--volume=a,b` are one
 * unit with one path under Bacula.
 */
export function volumesUnit(volumeIds: string[]): Unit {
  const ids = [...new Set(volumeIds)].sort();
  return { kind: 'volumes', resourceId: ids.join('+'), volumeIds: ids };
}

/**
 * Selected volumes attached to one instance make one unit, so that one CreateSnapshots call takes
 * them together (crash-consistent, as the README promises) in one Bacula job; a detached volume
 * is a unit of its own. A volume DescribeVolumes does not know stays a unit of its own: its
 * backup says what is wrong with it.
 */
async function volumeUnits(ec2: EC2Client, volumeIds: string[]): Promise<string[][]> {
  if (volumeIds.length === 0) return [];
  const byInstance = new Map<string, string[]>();
  const alone = new Set(volumeIds);
  // A filter, not VolumeIds: an unknown id is left out of the answer instead of failing it.
  for await (const volume of eachVolume(ec2, {
    Filters: [{ Name: 'volume-id', Values: volumeIds }],
    MaxResults: 500,
  })) {
    const instanceId = volume.Attachments?.[0]?.InstanceId;
    const volumeId = volume.VolumeId;
    if (instanceId === undefined || volumeId === undefined || !alone.has(volumeId)) continue;
    alone.delete(volumeId);
    byInstance.set(instanceId, [...(byInstance.get(instanceId) ?? []), volumeId]);
  }
  const units = [...byInstance.values(), ...[...alone].map((id) => [id])];
  return units.map((ids) => [...ids].sort()).sort((a, b) => (a[0] ?? '').localeCompare(b[0] ?? ''));
}

/** The unit a `backup` or `estimate` invocation streams: from the flags, else the config's only unit. */
export async function resolveUnit(config: Config, ec2: EC2Client, options: UnitFlags): Promise<Unit> {
  const { instance, volume } = options;
  if (instance !== undefined && volume !== undefined)
    throw new UsageError('Give --instance or --volume, not both.');
  if (instance !== undefined) {
    if (!INSTANCE_ID.test(instance))
      throw new UsageError(`--instance=${instance}: expected an instance id (i-...).`);
    const unit: Unit = { kind: 'instance', resourceId: instance, instanceId: instance };
    await refuseOverlap(config, ec2, [...(await selectedUnits(config, ec2)), unit]);
    return unit;
  }
  if (volume !== undefined) {
    const ids = volume
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const bad = ids.find((id) => !VOLUME_ID.test(id));
    if (bad !== undefined || ids.length === 0)
      throw new UsageError(`--volume=${volume}: expected volume ids (vol-...), comma-separated.`);
    const unit = volumesUnit(ids);
    await refuseOverlap(config, ec2, [...(await selectedUnits(config, ec2)), unit]);
    return unit;
  }
  const units = await selectedUnits(config, ec2);
  await refuseOverlap(config, ec2, units);
  const only = units[0];
  if (units.length === 1 && only !== undefined) return only;
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

const describeUnit = (unit: Unit): string =>
  unit.kind === 'instance' ? `instance ${unit.instanceId}` : `volumes ${unit.volumeIds.join(', ')}`;

/**
 * A volume may belong to one unit of a config: chains and retention are keyed by config and
 * volume, so a volume in two units would be streamed twice per job, and one unit's retention
 * would delete the other's snapshots. Refuses, naming the volume and both units.
 */
export async function refuseOverlap(config: Config, ec2: EC2Client, units: Unit[]): Promise<void> {
  const owner = new Map<string, Unit>();
  const distinct = new Map(units.map((u) => [`${u.kind}:${u.resourceId}`, u]));
  const claim = (volumeId: string, unit: Unit): void => {
    const other = owner.get(volumeId);
    if (other !== undefined && other !== unit) {
      throw new UsageError(
        `${config.file ?? 'the command line'}: volume ${volumeId} belongs to two units, ${describeUnit(other)} and ${describeUnit(unit)}. ` +
          'A volume may belong to one unit of a config (its chain and retention are keyed by config and volume): ' +
          'take it out of [backup] volume-ids or volume-tags, or add it to exclude-data-volume-ids.',
      );
    }
    owner.set(volumeId, unit);
  };
  const instanceUnits = [...distinct.values()].filter((u) => u.kind === 'instance');
  const excluded = new Set(config.backup.excludeDataVolumeIds);
  if (instanceUnits.length) {
    const byId = new Map(instanceUnits.map((u) => [u.resourceId, u]));
    // A missing instance fails here with EC2's InvalidInstanceID.NotFound: the failure line names
    // the action, the Region and the id, and says to check the Region (aws/failure.ts).
    for await (const instance of eachInstance(ec2, { InstanceIds: [...byId.keys()] })) {
      const unit = instance.InstanceId === undefined ? undefined : byId.get(instance.InstanceId);
      if (unit === undefined) continue;
      for (const mapping of instance.BlockDeviceMappings ?? []) {
        const volumeId = mapping.Ebs?.VolumeId;
        const root = mapping.DeviceName === instance.RootDeviceName;
        if (volumeId !== undefined && (root || !excluded.has(volumeId))) claim(volumeId, unit);
      }
    }
  }
  for (const unit of distinct.values()) {
    if (unit.kind === 'volumes') for (const volumeId of unit.volumeIds) claim(volumeId, unit);
  }
}
