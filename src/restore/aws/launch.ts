/**
 * The launch itself: the instance, from the AMI of image.ts, as the pre-flight decided, then what
 * RunInstances cannot take (source/destination checks, Elastic IPs), a check that every restored
 * volume is attached where it belongs, and the AMI dropped unless kept.
 */
import type { EC2Client, Image, Instance } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import {
  associateAddress,
  imagesTagged,
  instancesTagged,
  instancesWithToken,
  runInstance,
  sourceDestCheckOff,
  volumeSnapshots,
  waitForImage,
  waitForRunning,
} from '../../aws/instances.js';
import { tagResources } from '../../aws/snapshots.js';
import { RESTORE_TAG, withinTagLimit } from '../../format/tags.js';
import type { RestoreSettings } from '../../config.js';
import { messageOf, RuntimeFailure } from '../../errors.js';
import { awaitedLater } from '../../pool.js';
import type { InstanceMeta, Manifest } from '../../format/members.js';
import { dropImage, launchImage } from './image.js';
import { registerImageInput, restoredMappings, runInstancesInput } from './launch-input.js';
import { billingLoss } from './plan.js';
import type { LaunchSpec, Target } from './preflight.js';
import { describeLine } from './settings.js';
import { idempotencyToken, restoreTags, tagLimitNote } from './tags.js';
import type { RestoredVolume } from './volumes.js';

export interface LaunchResult {
  instanceId: string;
  availabilityZone: string;
  imageId: string;
  imageKept: boolean;
  volumes: { volumeId: string; source: string; device: string }[];
}

/**
 * The token of one launch: the source instance, head job and region, the restored snapshots and
 * everything the pre-flight decided for RunInstances. A rerun after a crash finds what the first
 * run made (the instance by its client token, the AMI by its tag) instead of making more; a
 * restore with other overrides is another launch (docs/DESIGN.md §5). What happens after the
 * launch (Elastic IPs, source/destination checks) is left out: it is redone on a rerun.
 */
function launchToken({ settings, manifest, meta, target, spec, restored }: LaunchRequest): string {
  const { settings: _lines, elasticIps: _ips, sourceDestCheckOff: _checks, type, ...launch } = spec;
  return idempotencyToken(
    manifest.config,
    manifest.job,
    meta.instanceId,
    target.region,
    JSON.stringify({
      snapshots: restoredMappings(meta, restored)
        .map((m) => m.volume.snapshotId)
        .sort(),
      type: type.name,
      launch,
      keepImage: settings.keepImage,
      tags: settings.tags,
    }),
  );
}

/** What EC2 answers when the zone cannot run the type now, with what to do ("Troubleshoot instance launch issues"). */
function launchAnswer(err: unknown, spec: LaunchSpec): string | undefined {
  if (!(err instanceof Error)) return undefined;
  if (err.name === 'InsufficientInstanceCapacity' || err.name === 'Unsupported') {
    return (
      `${spec.zone ?? 'the zone'} cannot run ${spec.type.name} now (${err.name}). Run the same restore again later, or with ` +
      '--instance-type of another type or --subnet-id in another zone, which reuses the restored snapshots'
    );
  }
  return undefined;
}

/** One launch: the head's stream, its instance as stored, where it goes, and the restored snapshots. */
export interface LaunchRequest {
  settings: RestoreSettings;
  manifest: Manifest;
  meta: InstanceMeta;
  target: Target;
  spec: LaunchSpec;
  restored: Map<string, RestoredVolume>;
}

export async function launchInstance(
  ec2: EC2Client,
  request: LaunchRequest,
  log: Logger,
): Promise<LaunchResult> {
  const { settings, manifest, meta, spec, restored } = request;
  const date = new Date().toISOString();
  const mappings = restoredMappings(meta, restored);
  const { token, earlier, images } = await launchState(ec2, launchToken(request), meta.instanceId);
  for (const setting of spec.settings) {
    if (setting.outcome === 'adapted' || setting.outcome === 'lost')
      log.warn(`${meta.instanceId}: ${describeLine(setting)}`);
  }
  const billing = billingLoss(meta);
  if (billing !== undefined) log.warn(`${meta.instanceId}: ${billing}`);
  const instanceTags = withinTagLimit(restoreTags(settings, meta.instanceId, date), meta.tags);
  if (instanceTags.dropped.length)
    log.warn(`${meta.instanceId}: ${tagLimitNote(instanceTags.dropped, meta.instanceId)}`);
  if (earlier !== undefined) {
    log.info(
      `${meta.instanceId}: job ${manifest.job} was launched by an earlier run as ${earlier.InstanceId}; not launching again`,
    );
  }
  const { imageId: image, registeredHere } = await launchImage(
    ec2,
    token,
    earlier,
    log,
    meta.instanceId,
    () => ({
      input: registerImageInput(settings, manifest.job, meta, spec, restored, date, token),
      what: `${mappings.length} restored snapshot(s)`,
    }),
    images,
  );
  let keep = settings.keepImage;
  /**
   * The AMI's removal, started as soon as RunInstances took it, while the instance starts; the
   * `finally` below waits for it (and reports its failure) either way.
   */
  let dropping: Promise<void> | undefined;
  const drop = (): Promise<void> => (dropping ??= dropImage(ec2, image, token, registeredHere, log));
  try {
    let instanceId = earlier?.InstanceId;
    if (instanceId === undefined) {
      await waitForImage(ec2, image);
      instanceId = await runInstance(ec2, runInstancesInput(settings, meta, spec, image, date, token));
      log.info(`launched ${instanceId}, waiting for it to run`);
      // An instance needs its AMI only to be launched ("Deregister an AMI", EC2 user guide:
      // deregistering does not affect instances already launched from it).
      if (!keep) void awaitedLater(drop());
    }
    const launched = instanceId;
    const running = await waitForRunning(ec2, launched);
    await restoreNetwork(ec2, meta, spec, running, log);
    const volumes = await checkVolumes(ec2, meta, mappings, running);
    // Each volume its own tags, side by side: the instance is up, and waits only for this.
    await Promise.all(
      volumes.map((volume) => {
        const source = mappings.find((m) => m.volumeId === volume.source);
        const { tags, dropped } = withinTagLimit(
          restoreTags(settings, volume.source, date),
          source?.volume.meta.tags ?? [],
        );
        if (dropped.length) log.warn(`${volume.volumeId}: ${tagLimitNote(dropped, volume.source)}`);
        return tagResources(ec2, [volume.volumeId], tags);
      }),
    );
    return {
      instanceId: launched,
      availabilityZone: running.Placement?.AvailabilityZone ?? '',
      imageId: image,
      imageKept: keep,
      volumes,
    };
  } catch (err) {
    keep = false;
    const snapshots = [...restored.values()].map((v) => v.snapshotId).join(', ');
    const answer = launchAnswer(err, spec);
    throw new RuntimeFailure(
      `launching ${meta.instanceId} failed (${messageOf(err)}). ${answer !== undefined ? `${answer}. ` : ''}AMI ${image} was deregistered; the restored snapshots are kept: ${snapshots}.`,
      { cause: err },
    );
  } finally {
    if (!keep) await drop();
  }
}

/**
 * What RunInstances cannot take: source/destination checks off (ModifyNetworkInterfaceAttribute)
 * and Elastic IPs (AssociateAddress). "Reassociation is automatic" unless AllowReassociation is
 * false (AssociateAddress, EC2 API reference): false, so that an address taken meanwhile by
 * another instance stays where it is, and is named.
 */
async function restoreNetwork(
  ec2: EC2Client,
  meta: InstanceMeta,
  spec: LaunchSpec,
  running: Instance,
  log: Logger,
): Promise<void> {
  const interfaceAt = (deviceIndex: number): string | undefined =>
    running.NetworkInterfaces?.find((n) => n.Attachment?.DeviceIndex === deviceIndex)?.NetworkInterfaceId;
  for (const deviceIndex of spec.sourceDestCheckOff) {
    const id = interfaceAt(deviceIndex);
    if (id === undefined)
      throw new RuntimeFailure(`the new instance has no network interface eth${deviceIndex}`);
    await sourceDestCheckOff(ec2, id);
  }
  for (const address of spec.elasticIps) {
    const id = interfaceAt(address.deviceIndex);
    if (id === undefined)
      throw new RuntimeFailure(`the new instance has no network interface eth${address.deviceIndex}`);
    if ((await associateAddress(ec2, address.allocationId, id)) === 'associated') {
      log.info(`${meta.instanceId}: Elastic IP ${address.publicIp} associated with ${id}`);
    } else {
      log.warn(
        `${meta.instanceId}: Elastic IP ${address.publicIp} was associated elsewhere meanwhile; not moved. Associate it by hand.`,
      );
    }
  }
}

/**
 * Every restored snapshot must be a volume of the new instance at its device: an AMI mapping
 * that did not become a volume would be a restore that reports success with a disk missing.
 */
async function checkVolumes(
  ec2: EC2Client,
  meta: InstanceMeta,
  mappings: ReturnType<typeof restoredMappings>,
  running: Instance,
): Promise<LaunchResult['volumes']> {
  const attached = new Map(
    (running.BlockDeviceMappings ?? []).flatMap((m) =>
      m.DeviceName === undefined || m.Ebs?.VolumeId === undefined
        ? []
        : [[m.DeviceName, m.Ebs.VolumeId] as const],
    ),
  );
  const fromSnapshot = await volumeSnapshots(ec2, [...attached.values()]);
  const volumes: LaunchResult['volumes'] = [];
  const missing: string[] = [];
  for (const m of mappings) {
    const volumeId = attached.get(m.deviceName);
    if (volumeId === undefined || fromSnapshot.get(volumeId) !== m.volume.snapshotId) {
      missing.push(`${m.deviceName} (${m.volume.snapshotId}, source ${m.volumeId})`);
      continue;
    }
    volumes.push({ volumeId, source: m.volumeId, device: m.deviceName });
  }
  if (missing.length) {
    throw new RuntimeFailure(
      `instance ${running.InstanceId ?? '?'} of ${meta.instanceId} runs without the restored volume(s) ${missing.join(', ')}; ` +
        'it is left running for inspection: attach the volumes by hand (CreateVolume from the snapshot), or terminate it and restore again',
    );
  }
  return volumes;
}

/**
 * The token of this launch now, and the instance an earlier run launched with it (a rerun after
 * a crash takes that instance instead of launching another). An instance launched earlier with the same token and since
 * terminated (the operator ended a restore to make it again) still holds the token: EC2 keeps
 * it, and a new RunInstances with it and another AMI is IdempotentParameterMismatch. Each ended
 * launch moves the token on, so the same restore made again launches anew.
 *
 * The walk along the tokens takes one call, not one per ended launch: every instance a restore
 * launched from `source` carries its `ec2-bpipe:source` tag (one RunInstances per token, so all
 * of a token's instances carry it alike), looked up beside the first token's own look-up. The
 * token the walk ends on is looked up by client token before it is used, as is any token whose
 * instances the tag did not find (a tag removed by hand).
 */
async function launchState(
  ec2: EC2Client,
  token: string,
  source: string,
): Promise<{
  token: string;
  earlier?: Instance;
  /** The AMIs tagged with `token`, when there is no `earlier` (whose own AMI is the launch's). */
  images: Promise<Image[]>;
}> {
  // The AMIs an earlier run registered with a token are looked up with that token's instances,
  // side by side: each a round trip before the launch.
  const imagesOf = (t: string): Promise<Image[]> => awaitedLater(imagesTagged(ec2, RESTORE_TAG.token, t));
  let images = imagesOf(token);
  const [restoredFrom, first] = await Promise.all([
    instancesTagged(ec2, RESTORE_TAG.source, source),
    instancesWithToken(ec2, token),
  ]);
  const ended = (i: Instance): boolean => ['shutting-down', 'terminated'].includes(i.State?.Name ?? '');
  let launched = first;
  for (let current = token; ;) {
    // The instance an earlier run launched with this token and that has not ended: this launch's.
    const earlier = launched.find((i) => !ended(i));
    if (earlier !== undefined) return { token: current, earlier, images };
    if (launched.length === 0) return { token: current, images };
    current = idempotencyToken(current, ...launched.map((i) => i.InstanceId ?? '').sort());
    const next = current;
    launched = restoredFrom.filter((i) => i.ClientToken === next);
    if (launched.length === 0) {
      images = imagesOf(next);
      launched = await instancesWithToken(ec2, next);
    }
  }
}
