import { createHash } from 'node:crypto';
import {
  _InstanceType,
  ArchitectureValues,
  BootModeValues,
  HttpTokensState,
  InstanceMetadataEndpointState,
  InstanceMetadataProtocolState,
  InstanceMetadataTagsState,
  Tenancy,
  TpmSupportValues,
  CreateTagsCommand,
  CreateVolumeCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInstanceTypesCommand,
  type InstanceTypeInfo,
  DescribeVolumesCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribePlacementGroupsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  type EC2Client,
  type Instance,
  RegisterImageCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
  type SecurityGroup,
  type Tag,
  type VolumeType,
} from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import type { InstanceMeta } from '../stream/schema.js';
import { pollUntil } from '../retry.js';
import type { RestoreSettings } from '../config.js';
import { messageOf, RuntimeFailure, UsageError } from '../errors.js';
import type { Manifest, VolumeMeta } from '../stream/schema.js';
import { RESTORE_TAG, tagValue, withinTagLimit } from '../aws/tags.js';
import { answered } from '../aws/answer.js';
import { TAKES_IOPS } from '../aws/metadata.js';
import { checkKmsKey } from '../aws/kms.js';
import type { KMSClient } from '@aws-sdk/client-kms';

/**
 * The instance type a launch will use must exist in the region and run the stream's architecture
 * and boot mode; checked before anything is created. What the type cannot take (CPU options on
 * bare metal, ENA, EBS optimization) is dropped, and said.
 */
async function checkInstanceType(
  ec2: EC2Client,
  settings: RestoreSettings,
  meta: InstanceMeta,
  region: string,
): Promise<LaunchType | undefined> {
  const name = settings.instanceType ?? meta.instanceType;
  if (name === null) return undefined;
  // A name this SDK does not know is refused by instanceType() already, exit 2.
  const typed = instanceType(name);
  let info: InstanceTypeInfo | undefined;
  try {
    const answer = await ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: typed ? [typed] : [] }));
    info = answer.InstanceTypes?.find((t) => t.InstanceType === typed);
  } catch (err) {
    // DescribeInstanceTypes (EC2 API reference): a type not offered in the region is InvalidInstanceType.
    if (!(err instanceof Error && err.name === 'InvalidInstanceType')) throw err;
  }
  if (info === undefined) {
    throw new UsageError(
      `instance type ${name} does not exist in ${region}; choose another with --instance-type.`,
    );
  }
  const architectures: string[] = info.ProcessorInfo?.SupportedArchitectures ?? [];
  if (meta.architecture !== null && !architectures.includes(meta.architecture)) {
    throw new UsageError(
      `instance type ${name} runs ${architectures.join(', ')}, but ${meta.instanceId} was ${meta.architecture}; choose a ${meta.architecture} type with --instance-type.`,
    );
  }
  const bootModes: string[] = info.SupportedBootModes ?? [];
  // uefi-preferred boots UEFI where the type can, else legacy BIOS: any type fits it.
  if (meta.bootMode !== null && meta.bootMode !== 'uefi-preferred' && !bootModes.includes(meta.bootMode)) {
    throw new UsageError(
      `instance type ${name} boots ${bootModes.join(', ')}, but ${meta.instanceId} booted ${meta.bootMode}; choose another type with --instance-type.`,
    );
  }
  const type: LaunchType = {
    name,
    bareMetal: info.BareMetal === true,
    ena: info.NetworkInfo?.EnaSupport !== 'unsupported',
    ebsOptimized: info.EbsInfo?.EbsOptimizedSupport !== 'unsupported',
    adapted: [],
  };
  if (type.bareMetal && meta.cpuOptions !== null)
    type.adapted.push(`CPU options dropped: ${name} is bare metal`);
  if (!type.ena && meta.enaSupport === true) type.adapted.push(`ENA support dropped: ${name} has no ENA`);
  if (!type.ebsOptimized && meta.ebsOptimized === true) {
    type.adapted.push(`EBS optimization dropped: ${name} does not support it`);
  }
  return type;
}

/**
 * A stored setting as the SDK's enum type, or undefined when this SDK does not know the value
 * (the stream may come from a newer AWS): the setting is then left to AWS's default.
 */
function known<T extends string>(values: Record<string, T>, value: string | null): T | undefined {
  return Object.values(values).find((v) => v === value);
}

/** The instance type to launch; one this SDK does not know cannot be sent, and the user can choose another. */
function instanceType(value: string | null): _InstanceType | undefined {
  if (value === null) return undefined;
  const type = known(_InstanceType, value);
  if (type === undefined) {
    throw new UsageError(
      `instance type ${value} is not known to this ec2-bpipe; choose one with --instance-type.`,
    );
  }
  return type;
}

/**
 * An AMI registered from snapshots carries no billing product ("Understand AMI billing
 * information", EC2 user guide): a Windows, RHEL or SLES instance restored that way runs as plain
 * Linux/UNIX, without the license AWS sold with it. Said before the launch, with what to do.
 */
function billingLoss(meta: InstanceMeta): string | undefined {
  if (
    meta.usageOperation === undefined ||
    meta.usageOperation === null ||
    meta.usageOperation === 'RunInstances'
  )
    return undefined;
  const platform = meta.platformDetails ?? 'a licensed platform';
  return (
    `the source ran ${platform} (billing code ${meta.usageOperation}), and an instance launched from snapshots loses ` +
    'that billing product and its license. To keep it, launch from the vendor AMI and replace its root volume with the ' +
    'restored snapshot (EC2 "Replace root volume"), after restore --no-launch.'
  );
}

function tagLimitNote(dropped: string[], source: string): string {
  return `EC2 takes 50 tags per resource; ${dropped.length} original tag(s) of ${source} were left out to keep the restore tags: ${dropped.join(', ')}`;
}

/** Tags on everything a restore creates: the restore flag, an RFC 3339 date, the original id, and the user's tags. */
export function restoreTags(settings: RestoreSettings, source: string, date: string): Tag[] {
  return [
    ...Object.entries(settings.tags).map(([Key, Value]) => ({ Key, Value })),
    { Key: RESTORE_TAG.restored, Value: 'true' },
    { Key: RESTORE_TAG.date, Value: date },
    { Key: RESTORE_TAG.source, Value: source },
  ];
}

/** A restored volume: what the stream said, and the completed snapshot that now holds it. */
export interface RestoredVolume {
  meta: VolumeMeta;
  snapshotId: string;
}

export interface Target {
  region: string;
  crossRegion: boolean;
  /** Subnet the instance lands in, with its VPC and zone, when one is known. */
  subnet?: { id: string; vpcId: string; availabilityZone: string };
  /** What the instance type to launch supports, as DescribeInstanceTypes says, when launching. */
  type?: LaunchType;
}

/** The launch settings the target type decides (DescribeInstanceTypes), and what was changed for it. */
export interface LaunchType {
  name: string;
  bareMetal: boolean;
  ena: boolean;
  ebsOptimized: boolean;
  /** One line per setting adapted to the type, for the log. */
  adapted: string[];
}

/**
 * The EC2 error codes (the SDK's error names) that say an override names nothing in the region:
 * EC2 API reference, "Error codes for the Amazon EC2 API".
 */
const NOT_FOUND_CODES = new Set([
  'InvalidSubnetID.NotFound',
  'InvalidSubnetID.Malformed',
  'InvalidGroup.NotFound',
  'InvalidGroupId.Malformed',
  'InvalidKeyPair.NotFound',
  'InvalidPlacementGroup.Unknown',
]);

function notFound(err: unknown): boolean {
  return err instanceof Error && NOT_FOUND_CODES.has(err.name);
}

/**
 * Checks the restore settings against the target region before anything is created: what a
 * cross-region restore needs, and that the subnet, groups, key and placement group exist there.
 */
export async function validateTarget(
  clients: { ec2: EC2Client; kms: KMSClient },
  settings: RestoreSettings,
  manifest: Manifest,
  instance: InstanceMeta | undefined,
  region: string,
  launch: boolean,
): Promise<Target> {
  const { ec2 } = clients;
  const crossRegion = region !== manifest.region;
  const missing: string[] = [];
  // Subnet and groups are needed only for an instance that will be launched.
  const launching = launch && manifest.kind === 'instance';
  if (crossRegion && launching && settings.subnetId === undefined) missing.push('subnet-id');
  if (crossRegion && launching && settings.securityGroupIds.length === 0) {
    missing.push('security-group-ids');
  }
  if (crossRegion && (manifest.encryptedVolumes ?? []).length > 0 && settings.kmsKeyId === undefined) {
    missing.push(`kms-key-id (for encrypted ${manifest.encryptedVolumes.join(', ')})`);
  }
  if (missing.length) {
    throw new UsageError(
      `restoring ${manifest.resourceId} from ${manifest.region} to ${region} needs [restore] ${missing.join(', ')} ` +
        '(or the matching flags): the originals do not exist in the target region.',
    );
  }
  if (settings.kmsKeyId !== undefined && settings.kmsKeyId.split(':')[3] !== region) {
    throw new UsageError(`[restore] kms-key-id ${settings.kmsKeyId} is not a key of ${region}.`);
  }
  if (settings.kmsKeyId !== undefined)
    await checkKmsKey(clients.kms, settings.kmsKeyId, region, '[restore] kms-key-id');
  if (
    manifest.kind === 'volumes' &&
    settings.createVolume &&
    settings.availabilityZone === undefined &&
    crossRegion
  ) {
    throw new UsageError(`[restore] create-volume in another region needs availability-zone.`);
  }
  const target: Target = { region, crossRegion };
  const zone = manifest.kind === 'volumes' && settings.createVolume ? settings.availabilityZone : undefined;
  if (zone !== undefined) {
    // DescribeAvailabilityZones with a zone-name filter: an unknown zone is an empty answer.
    const { AvailabilityZones = [] } = await ec2.send(
      new DescribeAvailabilityZonesCommand({ Filters: [{ Name: 'zone-name', Values: [zone] }] }),
    );
    if (AvailabilityZones.length === 0) {
      throw new UsageError(
        `availability zone ${zone} does not exist in ${region}; check [restore] availability-zone.`,
      );
    }
  }
  const subnetId = settings.subnetId ?? (crossRegion ? undefined : (instance?.subnetId ?? undefined));
  // Only what the chosen operation uses is checked: --no-launch launches nothing, so a subnet,
  // group, key pair or placement group that no longer exists does not stop it.
  if (subnetId !== undefined && launching) {
    try {
      const { Subnets = [] } = await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }));
      const subnet = answered(Subnets[0], `subnet ${subnetId} in DescribeSubnets`);
      target.subnet = {
        id: subnetId,
        vpcId: answered(subnet.VpcId, `the VPC of ${subnetId}`),
        availabilityZone: answered(subnet.AvailabilityZone, `the zone of ${subnetId}`),
      };
    } catch (err) {
      if (!notFound(err)) throw err;
      throw new UsageError(`subnet ${subnetId} does not exist in ${region}; check [restore] subnet-id.`);
    }
  }
  if (settings.securityGroupIds.length && launching) {
    let groups: SecurityGroup[];
    try {
      ({ SecurityGroups: groups = [] } = await ec2.send(
        new DescribeSecurityGroupsCommand({ GroupIds: settings.securityGroupIds }),
      ));
    } catch (err) {
      if (!notFound(err)) throw err;
      throw new UsageError(
        `security groups ${settings.securityGroupIds.join(', ')}: not all exist in ${region} (${messageOf(err)}).`,
      );
    }
    const subnet = target.subnet;
    const foreign = groups.filter((g) => subnet && g.VpcId !== subnet.vpcId);
    if (subnet && foreign.length) {
      throw new UsageError(
        `security groups ${foreign.map((g) => g.GroupId).join(', ')} are not in ${subnet.vpcId}, the VPC of subnet ${subnet.id}.`,
      );
    }
  }
  if (launching && instance !== undefined)
    target.type = await checkInstanceType(ec2, settings, instance, region);
  if (settings.keyName !== undefined && launching) {
    try {
      await ec2.send(new DescribeKeyPairsCommand({ KeyNames: [settings.keyName] }));
    } catch (err) {
      if (!notFound(err)) throw err;
      throw new UsageError(
        `key pair ${settings.keyName} does not exist in ${region}; check [restore] key-name.`,
      );
    }
  }
  if (settings.placementGroup !== undefined && launching) {
    try {
      await ec2.send(new DescribePlacementGroupsCommand({ GroupNames: [settings.placementGroup] }));
    } catch (err) {
      if (!notFound(err)) throw err;
      throw new UsageError(
        `placement group ${settings.placementGroup} does not exist in ${region}; check [restore] placement-group.`,
      );
    }
  }
  return target;
}

function volumeSpec(meta: VolumeMeta): { VolumeType?: VolumeType; Iops?: number; Throughput?: number } {
  const type = meta.volumeType ?? undefined;
  return {
    ...(type !== undefined && { VolumeType: type as VolumeType }),
    ...(type !== undefined && TAKES_IOPS.has(type) && meta.iops !== null && { Iops: meta.iops }),
    ...(type === 'gp3' && meta.throughput !== null && { Throughput: meta.throughput }),
  };
}

export interface LaunchResult {
  instanceId: string;
  availabilityZone: string;
  imageId: string;
  imageKept: boolean;
  volumes: { volumeId: string; source: string; device: string }[];
}

/** A deterministic token, so a retried restore does not launch a second instance. */
export function idempotencyToken(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 64);
}

/**
 * Registers an AMI from the restored snapshots, launches the instance as it was (with the
 * overrides), tags its volumes, and deregisters the AMI unless it is to be kept.
 */
export async function launchInstance(
  ec2: EC2Client,
  settings: RestoreSettings,
  manifest: Manifest,
  meta: InstanceMeta,
  target: Target,
  restored: Map<string, RestoredVolume>,
  log: Logger,
): Promise<LaunchResult> {
  const date = new Date().toISOString();
  // The mappings whose volume was restored, each with its restored snapshot.
  const mappings = meta.blockDeviceMappings.flatMap((m) => {
    const volume = restored.get(m.volumeId);
    return volume === undefined ? [] : [{ ...m, volume }];
  });
  const rootDevice = meta.rootDeviceName ?? mappings[0]?.deviceName;
  if (!mappings.some((m) => m.deviceName === rootDevice)) {
    throw new RuntimeFailure(
      `the stream of ${meta.instanceId} holds no root volume (${rootDevice}); it cannot be launched. Use --no-launch.`,
    );
  }
  // One token per launch: the source instance, head job and region, the restored snapshots and
  // the settings that shape the instance. A rerun after a crash finds what the first run made (the
  // instance by its client token, the AMI by its tag) instead of making more; a restore with other
  // overrides is another launch (docs/DESIGN.md §5).
  const token = idempotencyToken(
    manifest.config,
    manifest.job,
    meta.instanceId,
    target.region,
    JSON.stringify({
      snapshots: mappings.map((m) => m.volume.snapshotId).sort(),
      instanceType: settings.instanceType,
      subnetId: settings.subnetId,
      securityGroupIds: settings.securityGroupIds,
      keyName: settings.keyName,
      placementGroup: settings.placementGroup,
      partitionNumber: settings.partitionNumber,
      keepImage: settings.keepImage,
      tags: settings.tags,
    }),
  );
  for (const line of target.type?.adapted ?? []) log.warn(`${meta.instanceId}: ${line}`);
  const billing = billingLoss(meta);
  if (billing !== undefined) log.warn(`${meta.instanceId}: ${billing}`);
  const instanceTags = withinTagLimit(restoreTags(settings, meta.instanceId, date), meta.tags);
  if (instanceTags.dropped.length)
    log.warn(`${meta.instanceId}: ${tagLimitNote(instanceTags.dropped, meta.instanceId)}`);
  const earlier = await launchedBefore(ec2, token);
  const madeBefore = earlier === undefined ? await imageMadeBefore(ec2, token) : undefined;
  let imageId: string;
  if (earlier !== undefined) {
    imageId = answered(earlier.ImageId, `the image of ${earlier.InstanceId ?? 'the earlier instance'}`);
    log.info(
      `${meta.instanceId}: job ${manifest.job} was launched by an earlier run as ${earlier.InstanceId}; not launching again`,
    );
  } else if (madeBefore !== undefined) {
    imageId = madeBefore;
    log.info(`${meta.instanceId}: using ${imageId}, registered by an earlier run`);
  } else {
    const image = await ec2.send(
      new RegisterImageCommand({
        Name: `ec2-bpipe-${meta.instanceId}-${manifest.job}-${Date.now()}`.slice(0, 128),
        Description: `ec2-bpipe restore of ${meta.instanceId}, job ${manifest.job}`,
        Architecture: known(ArchitectureValues, meta.architecture) ?? 'x86_64',
        RootDeviceName: rootDevice,
        VirtualizationType: meta.virtualizationType ?? 'hvm',
        BootMode: known(BootModeValues, meta.bootMode),
        TpmSupport: known(TpmSupportValues, meta.tpmSupport),
        ...(meta.uefiData && { UefiData: meta.uefiData }),
        ...(meta.enaSupport !== null && { EnaSupport: meta.enaSupport && (target.type?.ena ?? true) }),
        ...(meta.sriovNetSupport !== null && { SriovNetSupport: meta.sriovNetSupport }),
        BlockDeviceMappings: mappings.map(({ volume, ...m }) => ({
          DeviceName: m.deviceName,
          Ebs: {
            SnapshotId: volume.snapshotId,
            VolumeSize: volume.meta.sizeGiB,
            DeleteOnTermination: m.deleteOnTermination ?? true,
            ...volumeSpec(volume.meta),
          },
        })),
        TagSpecifications: [
          {
            ResourceType: 'image',
            Tags: [...restoreTags(settings, meta.instanceId, date), { Key: RESTORE_TAG.token, Value: token }],
          },
        ],
      }),
    );
    imageId = answered(image.ImageId, 'the image id in RegisterImage');
    log.info(`registered ${imageId} from ${mappings.length} restored snapshot(s)`);
  }
  const image = imageId;
  let keep = settings.keepImage;
  try {
    let instanceId = earlier?.InstanceId;
    if (instanceId === undefined) {
      await pollUntil(`image ${image} becoming available`, 1800, async () => {
        const { Images = [] } = await ec2.send(new DescribeImagesCommand({ ImageIds: [image] }));
        if (Images[0]?.State === 'failed')
          throw new RuntimeFailure(`image ${image} failed: ${Images[0].StateReason?.Message ?? ''}`);
        return Images[0]?.State === 'available' ? true : undefined;
      });
      const input = runInstancesInput(settings, manifest, meta, target, image, date, token);
      const run = await ec2.send(new RunInstancesCommand(input));
      instanceId = answered(run.Instances?.[0]?.InstanceId, 'the instance id in RunInstances');
      log.info(`launched ${instanceId}, waiting for it to run`);
    }
    const launched = instanceId;
    const running: Instance = await pollUntil(`instance ${launched} running`, 1800, async () => {
      const { Reservations = [] } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [launched] }));
      const instance = Reservations[0]?.Instances?.[0];
      const state = instance?.State?.Name;
      if (state === 'terminated' || state === 'shutting-down') {
        throw new RuntimeFailure(
          `instance ${launched} ended (${instance?.StateReason?.Message ?? state}) right after launch`,
        );
      }
      return state === 'running' ? instance : undefined;
    });
    const volumes: LaunchResult['volumes'] = [];
    for (const mapping of running.BlockDeviceMappings ?? []) {
      const source = mappings.find((m) => m.deviceName === mapping.DeviceName);
      const volumeId = mapping.Ebs?.VolumeId;
      if (!source || !volumeId) continue;
      const { tags, dropped } = withinTagLimit(
        restoreTags(settings, source.volumeId, date),
        source.volume.meta.tags,
      );
      if (dropped.length) log.warn(`${volumeId}: ${tagLimitNote(dropped, source.volumeId)}`);
      await ec2.send(new CreateTagsCommand({ Resources: [volumeId], Tags: tags }));
      volumes.push({ volumeId, source: source.volumeId, device: source.deviceName });
    }
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
    throw new RuntimeFailure(
      `launching ${meta.instanceId} failed (${messageOf(err)}). AMI ${image} was deregistered; the restored snapshots are kept: ${snapshots}.`,
      { cause: err },
    );
  } finally {
    // Only an AMI this launch registered (it carries the token) is ever deregistered.
    if (!keep && (await imageCarriesToken(ec2, image, token))) {
      await ec2.send(new DeregisterImageCommand({ ImageId: image })).catch((e: unknown) => {
        log.error(`could not deregister ${image}: ${messageOf(e)}; deregister it by hand`);
      });
    }
  }
}

/** The instance an earlier run launched with this token, unless it has ended since. */
async function launchedBefore(ec2: EC2Client, token: string): Promise<Instance | undefined> {
  const { Reservations = [] } = await ec2.send(
    new DescribeInstancesCommand({ Filters: [{ Name: 'client-token', Values: [token] }] }),
  );
  return Reservations.flatMap((r) => r.Instances ?? []).find(
    (i) => i.ClientToken === token && !['shutting-down', 'terminated'].includes(i.State?.Name ?? ''),
  );
}

/** The AMI an earlier run registered for this launch and did not get to use or deregister. */
async function imageMadeBefore(ec2: EC2Client, token: string): Promise<string | undefined> {
  const { Images = [] } = await ec2.send(
    new DescribeImagesCommand({
      Owners: ['self'],
      Filters: [{ Name: `tag:${RESTORE_TAG.token}`, Values: [token] }],
    }),
  );
  return Images.find((i) => i.State === 'available' || i.State === 'pending')?.ImageId;
}

async function imageCarriesToken(ec2: EC2Client, imageId: string, token: string): Promise<boolean> {
  try {
    const { Images = [] } = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return tagValue(Images[0]?.Tags, RESTORE_TAG.token) === token;
  } catch {
    return false;
  }
}

function runInstancesInput(
  settings: RestoreSettings,
  manifest: Manifest,
  meta: InstanceMeta,
  target: Target,
  imageId: string,
  date: string,
  token: string,
): RunInstancesCommandInput {
  const same = !target.crossRegion;
  const typeOverridden = settings.instanceType !== undefined && settings.instanceType !== meta.instanceType;
  const groupName = settings.placementGroup ?? (same ? meta.placement.groupName : null) ?? undefined;
  const partition =
    settings.partitionNumber ??
    (groupName === meta.placement.groupName ? meta.placement.partitionNumber : null);
  const m = meta.metadataOptions;
  const securityGroups = settings.securityGroupIds.length
    ? settings.securityGroupIds
    : same
      ? meta.securityGroupIds
      : [];
  const keyName = settings.keyName ?? (same ? meta.keyName : null);
  return {
    ImageId: imageId,
    MinCount: 1,
    MaxCount: 1,
    InstanceType: instanceType(settings.instanceType ?? meta.instanceType),
    ClientToken: token,
    Placement: {
      // The subnet decides the zone; only without one does the stored zone apply.
      ...(target.subnet === undefined &&
        same &&
        meta.placement.availabilityZone !== null && {
          AvailabilityZone: meta.placement.availabilityZone,
        }),
      ...(groupName !== undefined && { GroupName: groupName }),
      ...(groupName !== undefined &&
        partition !== null &&
        partition !== undefined && { PartitionNumber: partition }),
      Tenancy: known(Tenancy, meta.placement.tenancy),
    },
    ...(target.subnet !== undefined && { SubnetId: target.subnet.id }),
    ...(securityGroups.length > 0 && { SecurityGroupIds: securityGroups }),
    ...(keyName !== null && { KeyName: keyName }),
    ...(meta.iamInstanceProfileArn !== null && { IamInstanceProfile: { Arn: meta.iamInstanceProfileArn } }),
    ...(m !== null && {
      MetadataOptions: {
        HttpTokens: known(HttpTokensState, m.httpTokens),
        ...(m.httpPutResponseHopLimit !== null && { HttpPutResponseHopLimit: m.httpPutResponseHopLimit }),
        HttpEndpoint: known(InstanceMetadataEndpointState, m.httpEndpoint),
        HttpProtocolIpv6: known(InstanceMetadataProtocolState, m.httpProtocolIpv6),
        InstanceMetadataTags: known(InstanceMetadataTagsState, m.instanceMetadataTags),
      },
    }),
    ...(meta.userData !== null && { UserData: meta.userData }),
    // CPU options belong to the original type; another type may not accept them.
    ...(!typeOverridden &&
      !(target.type?.bareMetal ?? false) &&
      meta.cpuOptions !== null && {
        CpuOptions: {
          ...(meta.cpuOptions.coreCount !== null && { CoreCount: meta.cpuOptions.coreCount }),
          ...(meta.cpuOptions.threadsPerCore !== null && { ThreadsPerCore: meta.cpuOptions.threadsPerCore }),
        },
      }),
    ...(meta.ebsOptimized !== null && {
      EbsOptimized: meta.ebsOptimized && (target.type?.ebsOptimized ?? true),
    }),
    TagSpecifications: [
      {
        ResourceType: 'instance',
        Tags: withinTagLimit(restoreTags(settings, meta.instanceId, date), meta.tags).tags,
      },
    ],
  };
}

/**
 * What `restore --dry-run` says a launch would do: the image and the instance, with the settings
 * each gets after the overrides and the adaptations to the target type, and what would be lost.
 * Calls nothing.
 */
export function launchPlan(
  settings: RestoreSettings,
  manifest: Manifest,
  meta: InstanceMeta,
  target: Target,
  restored: Map<string, RestoredVolume>,
): string[] {
  const input = runInstancesInput(
    settings,
    manifest,
    meta,
    target,
    '(the image above)',
    new Date().toISOString(),
    '',
  );
  const lines = [
    `image: from the restored snapshots of ${meta.instanceId}, architecture ${meta.architecture ?? '?'}, ` +
      `boot mode ${meta.bootMode ?? 'default'}, root ${meta.rootDeviceName ?? '?'}, ENA ${String(target.type?.ena ?? meta.enaSupport ?? false)}` +
      `${meta.uefiData !== null && meta.uefiData !== undefined ? ', with its UEFI variable store' : ''}` +
      `${settings.keepImage ? ', kept after the launch' : ', deregistered after the launch'}`,
    `instance: type ${input.InstanceType ?? '?'}, subnet ${input.SubnetId ?? 'default'}, ` +
      `security groups ${input.SecurityGroupIds?.join(',') ?? 'default'}, key ${input.KeyName ?? 'none'}, ` +
      `zone ${target.subnet?.availabilityZone ?? input.Placement?.AvailabilityZone ?? 'any'}` +
      `${input.Placement?.GroupName !== undefined ? `, placement group ${input.Placement.GroupName}` : ''}` +
      `${input.EbsOptimized !== undefined ? `, EBS-optimized ${String(input.EbsOptimized)}` : ''}` +
      `${input.CpuOptions !== undefined ? `, CPU options ${JSON.stringify(input.CpuOptions)}` : ''}` +
      `, ${input.TagSpecifications?.[0]?.Tags?.length ?? 0} tags`,
    ...(target.type?.adapted ?? []).map((line) => `adapted: ${line}`),
  ];
  for (const mapping of meta.blockDeviceMappings) {
    const volume = restored.get(mapping.volumeId);
    if (volume !== undefined)
      lines.push(`volume: ${mapping.deviceName} from ${volume.snapshotId} (source ${mapping.volumeId})`);
  }
  const billing = billingLoss(meta);
  if (billing !== undefined) lines.push(`warning: ${billing}`);
  return lines;
}

/** Volume-mode streams with create-volume: a volume from each restored snapshot. */
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
    const { Volumes = [] } = await ec2.send(
      new DescribeVolumesCommand({ Filters: [{ Name: `tag:${RESTORE_TAG.token}`, Values: [token] }] }),
    );
    const earlier = Volumes.find((v) => v.State !== 'deleting' && v.State !== 'deleted')?.VolumeId;
    if (earlier !== undefined) log.info(`${source}: created by an earlier run as ${earlier}`);
    const volumeId =
      earlier ??
      answered(
        (
          await ec2.send(
            new CreateVolumeCommand({
              AvailabilityZone: zone,
              SnapshotId: volume.snapshotId,
              Size: volume.meta.sizeGiB,
              ...volumeSpec(volume.meta),
              ClientToken: token,
              TagSpecifications: [{ ResourceType: 'volume', Tags: volumeTags.tags }],
            }),
          )
        ).VolumeId,
        'the volume id in CreateVolume',
      );
    out.push({ volumeId, source, availabilityZone: zone });
  }
  return out;
}
