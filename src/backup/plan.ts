import type { EC2Client, Instance, Volume } from '@aws-sdk/client-ec2';
import { requireEndpoints } from '../aws/clients.js';
import type { EndpointService } from '../aws/endpoints.js';
import { describeInstance, describeVolumes } from '../aws/metadata.js';
import type { Config } from '../config.js';
import { RuntimeFailure, UsageError } from '../errors.js';
import type { Unit } from '../selection.js';

/** One volume of the unit, as it will be streamed. */
export interface PlannedVolume {
  volume: Volume;
  volumeId: string;
  sizeGiB: number;
  deviceName: string | null;
  deleteOnTermination: boolean | null;
}

/** Volumes snapshotted together: those of one instance in one CreateSnapshots call, or one detached volume. */
export interface SnapshotGroup {
  instance?: { instanceId: string; attached: { volumeId: string; root: boolean }[] };
  volumeIds: string[];
}

export interface Plan {
  /** Set in instance mode: its metadata goes into the stream. */
  instance?: Instance;
  /** Root device first, then by device name: the order a restore rebuilds the mappings in. */
  volumes: PlannedVolume[];
  groups: SnapshotGroup[];
}

function planned(
  volume: Volume | undefined,
  id: string,
  region: string,
  deviceName: string | null,
  deleteOnTermination: boolean | null,
): PlannedVolume {
  if (volume?.VolumeId === undefined || volume.Size === undefined) {
    throw new RuntimeFailure(`volume ${id} was not found in ${region}, or EC2 described it without a size`);
  }
  return { volume, volumeId: volume.VolumeId, sizeGiB: volume.Size, deviceName, deleteOnTermination };
}

function attachedVolumes(instance: Instance): { volumeId: string; root: boolean }[] {
  return (instance.BlockDeviceMappings ?? []).flatMap((m) =>
    m.Ebs?.VolumeId === undefined
      ? []
      : [{ volumeId: m.Ebs.VolumeId, root: m.DeviceName === instance.RootDeviceName }],
  );
}

function instanceGroup(instance: Instance, volumeIds: string[]): SnapshotGroup {
  if (instance.InstanceId === undefined) throw new RuntimeFailure('EC2 described an instance without its id');
  return { instance: { instanceId: instance.InstanceId, attached: attachedVolumes(instance) }, volumeIds };
}

function sortByDevice(volumes: PlannedVolume[], root: string | undefined): PlannedVolume[] {
  return [...volumes].sort((a, b) => {
    if (a.deviceName === root) return -1;
    if (b.deviceName === root) return 1;
    return (a.deviceName ?? '').localeCompare(b.deviceName ?? '');
  });
}

/**
 * What a backup of the unit streams: its volumes in device order, and how they are snapshotted.
 * Shared by backup, estimate and the finalizer; changes nothing in AWS.
 */
export async function planUnit(ec2: EC2Client, config: Config, region: string, unit: Unit): Promise<Plan> {
  if (unit.kind === 'instance') {
    const instance = await describeInstance(ec2, unit.instanceId);
    const excluded = new Set(config.backup.excludeDataVolumeIds);
    const attached = attachedVolumes(instance);
    const root = attached.find((v) => v.root);
    if (root !== undefined && excluded.has(root.volumeId)) {
      throw new UsageError(
        `[backup] exclude-data-volume-ids names ${root.volumeId}, the root volume of ${unit.instanceId}; it cannot be excluded.`,
      );
    }
    const kept = (instance.BlockDeviceMappings ?? []).flatMap((m) =>
      m.Ebs?.VolumeId === undefined || excluded.has(m.Ebs.VolumeId)
        ? []
        : [{ mapping: m, volumeId: m.Ebs.VolumeId }],
    );
    const described = await describeVolumes(
      ec2,
      kept.map((k) => k.volumeId),
    );
    const volumes = kept.map(({ mapping, volumeId }) =>
      planned(
        described.get(volumeId),
        volumeId,
        region,
        mapping.DeviceName ?? null,
        mapping.Ebs?.DeleteOnTermination ?? null,
      ),
    );
    return {
      instance,
      volumes: sortByDevice(volumes, instance.RootDeviceName),
      groups: [
        instanceGroup(
          instance,
          volumes.map((v) => v.volumeId),
        ),
      ],
    };
  }
  const described = await describeVolumes(ec2, unit.volumeIds);
  const volumes = unit.volumeIds.map((id) => {
    const volume = described.get(id);
    const attachment = volume?.Attachments?.[0];
    return planned(volume, id, region, attachment?.Device ?? null, attachment?.DeleteOnTermination ?? null);
  });
  // Volumes attached to one instance are snapshotted in one CreateSnapshots call, so they are
  // crash-consistent with each other; detached volumes get a CreateSnapshot each.
  const groups: SnapshotGroup[] = [];
  const byInstance = new Map<string, string[]>();
  for (const v of volumes) {
    const instanceId = v.volume.Attachments?.[0]?.InstanceId;
    if (instanceId === undefined) groups.push({ volumeIds: [v.volumeId] });
    else byInstance.set(instanceId, [...(byInstance.get(instanceId) ?? []), v.volumeId]);
  }
  for (const [instanceId, volumeIds] of byInstance) {
    groups.push(instanceGroup(await describeInstance(ec2, instanceId), volumeIds));
  }
  return { volumes, groups };
}

/**
 * Everything a backup refuses before its first snapshot, in one place: `list` calls it for each
 * unit before it prints the unit's line, so that Bacula never starts a reader that `backup` then
 * refuses (exit 2). The job's Region against the DR copy's, the copy Region's endpoints, then the
 * unit's volumes (planUnit).
 */
export async function acceptedPlan(
  ec2: EC2Client,
  config: Config,
  region: string,
  unit: Unit,
): Promise<Plan> {
  acceptedSettings(config, region);
  return planUnit(ec2, config, region, unit);
}

/** What acceptedPlan refuses from the config alone, before any call to AWS. */
export function acceptedSettings(config: Config, region: string): void {
  const { copyToRegion, copyKmsKeyId } = config.backup;
  if (copyToRegion === region) {
    throw new UsageError(
      `[backup] copy-to-region is the Region this job backs up (${region}): a DR copy goes to another Region.`,
    );
  }
  if (copyToRegion !== undefined) {
    const services: EndpointService[] = ['ec2', ...(copyKmsKeyId !== undefined ? ['kms' as const] : [])];
    requireEndpoints(config.aws, services, copyToRegion, 'a DR copy ([backup] copy-to-region)');
  }
}
