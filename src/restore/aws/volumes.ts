import type { EC2Client, VolumeType } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { createVolume, liveVolumeTagged } from '../../aws/instances.js';
import { TAKES_IOPS } from '../../aws/metadata.js';
import { RESTORE_TAG, withinTagLimit } from '../../format/tags.js';
import type { RestoreSettings } from '../../config.js';
import { UsageError } from '../../errors.js';
import type { Manifest, VolumeMeta } from '../../format/members.js';
import type { Target } from './preflight.js';
import { idempotencyToken, restoreTags, tagLimitNote } from './tags.js';

/** A restored volume: what the stream said, and the completed snapshot that now holds it. */
export interface RestoredVolume {
  meta: VolumeMeta;
  snapshotId: string;
}

/** The stored type, IOPS and throughput, each only where the type takes it (EBS volume types). */
export function volumeSpec(meta: VolumeMeta): {
  VolumeType?: VolumeType;
  Iops?: number;
  Throughput?: number;
} {
  const type = meta.volumeType ?? undefined;
  return {
    ...(type !== undefined && { VolumeType: type as VolumeType }),
    ...(type !== undefined && TAKES_IOPS.has(type) && meta.iops !== null && { Iops: meta.iops }),
    ...(type === 'gp3' && meta.throughput !== null && { Throughput: meta.throughput }),
  };
}

/** Volume-mode streams (or --volume) with create-volume: a volume from each restored snapshot. */
export async function createVolumes(
  ec2: EC2Client,
  settings: RestoreSettings,
  manifest: Manifest,
  target: Target,
  restored: Map<string, RestoredVolume>,
  log: Logger,
): Promise<{ volumeId: string; source: string; availabilityZone: string }[]> {
  const date = new Date().toISOString();
  const out = [];
  for (const [source, volume] of restored) {
    const zone =
      settings.availabilityZone ??
      (target.crossRegion ? undefined : (volume.meta.availabilityZone ?? undefined));
    if (zone === undefined)
      throw new UsageError(`[restore] create-volume needs availability-zone for ${source}.`);
    // As for a launch: a rerun finds the volume by its token tag; the ClientToken covers a
    // response lost within this run (the same request sent again).
    const token = idempotencyToken(manifest.config, manifest.job, source, target.region, zone);
    const volumeTags = withinTagLimit(
      [...restoreTags(settings, source, date), { Key: RESTORE_TAG.token, Value: token }],
      volume.meta.tags,
    );
    if (volumeTags.dropped.length) log.warn(`${source}: ${tagLimitNote(volumeTags.dropped, source)}`);
    const earlier = await liveVolumeTagged(ec2, RESTORE_TAG.token, token);
    if (earlier !== undefined) log.info(`${source}: created by an earlier run as ${earlier}`);
    const volumeId =
      earlier ??
      (await createVolume(ec2, {
        AvailabilityZone: zone,
        SnapshotId: volume.snapshotId,
        Size: volume.meta.sizeGiB,
        ...volumeSpec(volume.meta),
        ClientToken: token,
        TagSpecifications: [{ ResourceType: 'volume', Tags: volumeTags.tags }],
      }));
    out.push({ volumeId, source, availabilityZone: zone });
  }
  return out;
}
