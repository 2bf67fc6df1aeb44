/**
 * The pre-flight of a restore to AWS: every resource the launch or the volume creation will name,
 * stored or overridden, checked in the target Region before the first block is written, and the
 * launch decided setting by setting. A failure is a UsageError (exit 2) that names the resource,
 * where it came from and the fix; nothing has been created then.
 */
import { _InstanceType, type InstanceTypeInfo } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import type { AwsClients } from '../../aws/clients.js';
import { checkKmsKey } from '../../aws/kms.js';
import {
  addressHolder,
  callerAccount,
  elasticIp,
  identityClients,
  instanceProfile,
  instanceType,
  keyPairExists,
  placementGroup,
  securityGroups,
  subnet as describeSubnet,
  type SubnetFacts,
  zoneExists,
  zonesOffering,
} from '../../aws/launch-checks.js';
import type { Config, RestoreSettings } from '../../config.js';
import { UsageError } from '../../errors.js';
import { awaitedLater } from '../../pool.js';
import type { InstanceMeta, Manifest } from '../../format/members.js';
import { line, origin, type SettingLine } from './settings.js';

/** One network interface of the launch (RunInstances NetworkInterfaces). */
export interface InterfaceLaunch {
  deviceIndex: number;
  subnetId: string;
  groupIds: string[];
  /** The addresses to take again (primary first), with --keep-private-ip. */
  privateIps?: string[];
  /** Otherwise how many secondary addresses to ask for. */
  secondaryCount: number;
  description: string;
  deleteOnTermination: boolean;
}

/** Everything the launch will send, decided before the first block. */
export interface LaunchSpec {
  type: { name: _InstanceType; info: InstanceTypeInfo };
  /** The zone the instance lands in, when it is known before the launch. */
  zone: string | undefined;
  /** With stored interfaces: RunInstances NetworkInterfaces; else the instance-level fields. */
  interfaces: InterfaceLaunch[] | undefined;
  subnetId: string | undefined;
  securityGroupIds: string[];
  keyName: string | undefined;
  placement: { groupName?: string; partitionNumber?: number };
  profile: { Arn: string } | { Name: string } | undefined;
  /** RegisterImage EnaSupport. */
  ena: boolean | undefined;
  ebsOptimized: boolean | undefined;
  cpuOptions: { CoreCount: number; ThreadsPerCore: number } | undefined;
  disableApiTermination: boolean;
  shutdownBehavior: 'stop' | 'terminate' | undefined;
  cpuCredits: 'standard' | 'unlimited' | undefined;
  hibernation: boolean;
  enclave: boolean;
  /** Associated after the launch (AssociateAddress without reassociation). */
  elasticIps: { deviceIndex: number; allocationId: string; publicIp: string }[];
  /** Interfaces whose source/destination check is turned off after the launch. */
  sourceDestCheckOff: number[];
  /** Each setting kept, set, adapted or lost: the plan and the log. */
  settings: SettingLine[];
}

export interface Target {
  region: string;
  crossRegion: boolean;
  /** Decided when an instance will be launched. */
  launch?: LaunchSpec;
}

export interface PreflightRequest {
  clients: AwsClients;
  config: Config;
  manifest: Manifest;
  instance: InstanceMeta | undefined;
  region: string;
  /** An instance will be launched from the streams. */
  launching: boolean;
  /** Volumes will be created from the restored snapshots. */
  creatingVolumes: boolean;
  log: Logger;
}

/** A stored setting as the SDK's enum type, or undefined when this SDK does not know the value. */
export function known<T extends string>(values: Record<string, T>, value: string | null): T | undefined {
  return Object.values(values).find((v) => v === value);
}

/** The instance type to launch; one this SDK does not know cannot be sent, and the user can choose another. */
export function sdkInstanceType(value: string, from: string): _InstanceType {
  const type = known(_InstanceType, value);
  if (type === undefined) {
    throw new UsageError(
      `instance type ${value} (${from}) is not known to this ec2-bpipe; choose one with --instance-type.`,
    );
  }
  return type;
}

export async function preflight(request: PreflightRequest): Promise<Target> {
  const { clients, config, manifest, instance, region } = request;
  const settings = config.restore;
  const crossRegion = region !== manifest.region;
  const missing: string[] = [];
  const launching = request.launching && instance !== undefined;
  if (crossRegion && launching && settings.subnetId === undefined) missing.push('subnet-id');
  if (crossRegion && launching && settings.securityGroupIds.length === 0) missing.push('security-group-ids');
  if (crossRegion && manifest.encryptedVolumes.length > 0 && settings.kmsKeyId === undefined) {
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
    await checkKmsKey(clients.kms, settings.kmsKeyId, region, origin(config.given, 'kms-key-id', ''));
  if (request.creatingVolumes) await checkVolumeZone(clients, config, manifest, region, crossRegion);
  // RegisterImage takes UefiData of at most 64,000 characters (EC2 API reference): a longer store
  // would fail the AMI after every block was written.
  const uefiLength = instance?.uefiData?.length ?? 0;
  if (launching && uefiLength > UEFI_DATA_MAX) {
    throw new UsageError(
      `the UEFI variable store of ${manifest.resourceId} is ${uefiLength} characters; RegisterImage takes ` +
        `${UEFI_DATA_MAX}. Restore its snapshots with --no-launch and register the AMI without it.`,
    );
  }
  const target: Target = { region, crossRegion };
  if (launching) target.launch = await decideLaunch(request, instance, crossRegion);
  return target;
}

/** RegisterImage, UefiData: "Maximum length of 64000" (EC2 API reference). */
const UEFI_DATA_MAX = 64_000;

/** The zone --create-volume makes volumes in: given, or (same Region) each volume's own. */
async function checkVolumeZone(
  clients: AwsClients,
  config: Config,
  manifest: Manifest,
  region: string,
  crossRegion: boolean,
): Promise<void> {
  const zone = config.restore.availabilityZone;
  if (zone === undefined) {
    if (crossRegion)
      throw new UsageError(
        `[restore] create-volume in another region (${region}) needs availability-zone: the volumes' own zones are in ${manifest.region}.`,
      );
    return;
  }
  if (!(await zoneExists(clients.ec2, zone))) {
    throw new UsageError(
      `availability zone ${zone} (${origin(config.given, 'availability-zone', manifest.resourceId)}) does not exist in ${region}; choose one of its zones.`,
    );
  }
}

async function decideLaunch(
  request: PreflightRequest,
  meta: InstanceMeta,
  crossRegion: boolean,
): Promise<LaunchSpec> {
  const { clients, config, region } = request;
  const { ec2 } = clients;
  const settings = config.restore;
  const source = meta.instanceId;
  const from = (key: string): string => origin(config.given, key, source);
  const lines: SettingLine[] = [];
  const stored = !crossRegion;

  // Instance type: the one given, else the source's.
  const typeName = settings.instanceType ?? meta.instanceType;
  if (typeName === null) {
    throw new UsageError(`the stream of ${source} names no instance type; give one with --instance-type.`);
  }
  const typeFrom = from('instance-type');
  const typed = sdkInstanceType(typeName, typeFrom);
  const subnetId = settings.subnetId ?? (stored ? (meta.subnetId ?? undefined) : undefined);
  const groupIds =
    settings.securityGroupIds.length > 0 ? settings.securityGroupIds : stored ? meta.securityGroupIds : [];
  const keyName = settings.keyName ?? (stored ? (meta.keyName ?? undefined) : undefined);
  // Every look-up the checks below need, sent at once: each is a round trip on the recovery's
  // critical path. The checks still run, and refuse, in their order.
  const lookups = {
    info: awaitedLater(instanceType(ec2, typed)),
    subnet: subnetId === undefined ? undefined : awaitedLater(describeSubnet(ec2, subnetId)),
    groups: groupIds.length === 0 ? undefined : awaitedLater(securityGroups(ec2, groupIds)),
    keyPair: keyName === undefined ? undefined : awaitedLater(keyPairExists(ec2, keyName)),
    offeredIn: awaitedLater(zonesOffering(ec2, typeName)),
  };
  const info = await lookups.info;
  if (info === undefined) {
    throw new UsageError(
      `instance type ${typeName} (${typeFrom}) does not exist in ${region}; choose another with --instance-type.`,
    );
  }
  lines.push(
    settings.instanceType !== undefined && settings.instanceType !== meta.instanceType
      ? line('instance type', typeName, 'set', typeFrom)
      : line('instance type', typeName, 'kept'),
  );
  checkArchitecture(info, meta, typeName, typeFrom);

  // Subnet, and with it the VPC and the zone.
  let subnet: SubnetFacts | undefined;
  if (subnetId !== undefined) {
    subnet = await lookups.subnet;
    if (subnet === undefined) {
      throw new UsageError(
        `subnet ${subnetId} (${from('subnet-id')}) does not exist in ${region}; give an existing one with --subnet-id.`,
      );
    }
    lines.push(
      settings.subnetId !== undefined && settings.subnetId !== meta.subnetId
        ? line('subnet', `${subnetId} (${subnet.availabilityZone})`, 'set', from('subnet-id'))
        : line('subnet', `${subnetId} (${subnet.availabilityZone})`, 'kept'),
    );
  }
  const zone =
    subnet?.availabilityZone ?? (stored ? (meta.placement.availabilityZone ?? undefined) : undefined);

  // Security groups.
  if (groupIds.length > 0) {
    const groupsFrom = from('security-group-ids');
    const groups = await lookups.groups;
    if (groups === undefined) {
      throw new UsageError(
        `security groups ${groupIds.join(', ')} (${groupsFrom}): not all exist in ${region}; give existing ones with --security-group-ids.`,
      );
    }
    const foreign = groups.filter((g) => subnet !== undefined && g.VpcId !== subnet.vpcId);
    if (subnet !== undefined && foreign.length > 0) {
      throw new UsageError(
        `security groups ${foreign.map((g) => g.GroupId).join(', ')} (${groupsFrom}) are not in ${subnet.vpcId}, the VPC of subnet ${subnet.id}; give groups of that VPC with --security-group-ids.`,
      );
    }
    lines.push(
      settings.securityGroupIds.length > 0
        ? line('security groups', groupIds.join(','), 'set', groupsFrom)
        : line('security groups', groupIds.join(','), 'kept'),
    );
  }

  // Key pair.
  if (keyName !== undefined) {
    if (!(await lookups.keyPair)) {
      throw new UsageError(
        `key pair ${keyName} (${from('key-name')}) does not exist in ${region}; import it there, or give another with --key-name.`,
      );
    }
    lines.push(
      settings.keyName !== undefined
        ? line('key pair', keyName, 'set', from('key-name'))
        : line('key pair', keyName, 'kept'),
    );
  } else if (meta.keyName !== null) {
    lines.push(
      line(
        'key pair',
        meta.keyName,
        'lost',
        `a key pair of ${request.manifest.region}; give one of ${region} with --key-name`,
      ),
    );
  }

  // Placement group and partition.
  const placement = await decidePlacement(request, meta, stored, lines);

  // Offered in the zone: DescribeInstanceTypeOfferings by zone.
  const offeredIn = await lookups.offeredIn;
  if (zone !== undefined && !offeredIn.includes(zone)) {
    throw new UsageError(
      `instance type ${typeName} (${typeFrom}) is not offered in ${zone} (the zone of ${subnet !== undefined ? `subnet ${subnet.id}` : 'the source'}); ` +
        (offeredIn.length > 0
          ? `give a --subnet-id in ${offeredIn.join(', ')}, or another --instance-type.`
          : `${region} offers it nowhere; give another --instance-type.`),
    );
  }

  const ena = decideEna(info, meta, settings, typeName, typeFrom, lines);
  const ebsOptimized = decideEbsOptimized(info, meta, typeName, lines);
  const cpuOptions = decideCpuOptions(info, meta, typeName, lines);
  // The profile (IAM) and the network (EC2) are checked side by side; each says its lines apart,
  // and they are said, and refuse, in this order.
  const profileLines: SettingLine[] = [];
  const networkLines: SettingLine[] = [];
  const deciding = {
    profile: awaitedLater(decideProfile(request, meta, profileLines)),
    network: awaitedLater(decideNetwork(request, meta, info, subnet, groupIds, stored, networkLines)),
  };
  const profile = await deciding.profile;
  const network = await deciding.network;
  lines.push(...profileLines, ...networkLines);
  const behaviour = decideAttributes(request, meta, info, typeName, lines);
  if (meta.metadataOptions !== null)
    lines.push(line('instance metadata options', JSON.stringify(meta.metadataOptions), 'kept'));
  if (meta.userData !== null)
    lines.push(line('user data', `${Buffer.from(meta.userData, 'base64').length} bytes`, 'kept'));
  return {
    type: { name: typed, info },
    zone,
    ...network,
    keyName,
    placement,
    profile,
    ena,
    ebsOptimized,
    cpuOptions,
    ...behaviour,
    settings: lines,
  };
}

function checkArchitecture(
  info: InstanceTypeInfo,
  meta: InstanceMeta,
  typeName: string,
  typeFrom: string,
): void {
  const architectures: string[] = info.ProcessorInfo?.SupportedArchitectures ?? [];
  if (meta.architecture !== null && !architectures.includes(meta.architecture)) {
    throw new UsageError(
      `instance type ${typeName} (${typeFrom}) runs ${architectures.join(', ')}, but ${meta.instanceId} was ${meta.architecture}; choose a ${meta.architecture} type with --instance-type.`,
    );
  }
  const bootModes: string[] = info.SupportedBootModes ?? [];
  // uefi-preferred boots UEFI where the type can, else legacy BIOS: any type fits it.
  if (meta.bootMode !== null && meta.bootMode !== 'uefi-preferred' && !bootModes.includes(meta.bootMode)) {
    throw new UsageError(
      `instance type ${typeName} (${typeFrom}) boots ${bootModes.join(', ')}, but ${meta.instanceId} booted ${meta.bootMode}; choose another type with --instance-type.`,
    );
  }
}

async function decidePlacement(
  request: PreflightRequest,
  meta: InstanceMeta,
  stored: boolean,
  lines: SettingLine[],
): Promise<{ groupName?: string; partitionNumber?: number }> {
  const { config, region } = request;
  const settings = config.restore;
  const from = (key: string): string => origin(config.given, key, meta.instanceId);
  const groupName = settings.placementGroup ?? (stored ? (meta.placement.groupName ?? undefined) : undefined);
  if (groupName === undefined) {
    if (meta.placement.groupName !== null)
      lines.push(
        line(
          'placement group',
          meta.placement.groupName,
          'lost',
          `a group of ${request.manifest.region}; give one of ${region} with --placement-group`,
        ),
      );
    return {};
  }
  const group = await placementGroup(request.clients.ec2, groupName);
  if (group === undefined) {
    throw new UsageError(
      `placement group ${groupName} (${from('placement-group')}) does not exist in ${region}; create it, or give another with --placement-group.`,
    );
  }
  const partition =
    settings.partitionNumber ??
    (groupName === meta.placement.groupName ? (meta.placement.partitionNumber ?? undefined) : undefined);
  if (partition !== undefined) {
    // Placement groups (EC2 user guide): only a partition group has partitions, numbered from 1
    // to its partition count.
    if (group.strategy !== 'partition' || partition > (group.partitionCount ?? 0)) {
      throw new UsageError(
        `partition ${partition} (${from('partition-number')}) does not exist in placement group ${groupName}, ` +
          (group.strategy === 'partition'
            ? `which has ${group.partitionCount ?? 0} partitions; give one from 1 to ${group.partitionCount ?? 0} with --partition-number.`
            : `a ${group.strategy ?? 'non-partition'} group; give a partition group, or no --partition-number.`),
      );
    }
  }
  lines.push(
    settings.placementGroup !== undefined
      ? line(
          'placement group',
          `${groupName}${partition !== undefined ? ` partition ${partition}` : ''}`,
          'set',
          from('placement-group'),
        )
      : line(
          'placement group',
          `${groupName}${partition !== undefined ? ` partition ${partition}` : ''}`,
          'kept',
        ),
  );
  return { groupName, ...(partition !== undefined && { partitionNumber: partition }) };
}

/**
 * ENA ("Enhanced networking with ENA", EC2 user guide): a type that requires it runs only an AMI
 * registered with it, and only an OS with the ENA driver boots there; a type without ENA cannot
 * take such an AMI.
 */
function decideEna(
  info: InstanceTypeInfo,
  meta: InstanceMeta,
  settings: RestoreSettings,
  typeName: string,
  typeFrom: string,
  lines: SettingLine[],
): boolean | undefined {
  const support = info.NetworkInfo?.EnaSupport ?? 'supported';
  const wanted = settings.enaSupport ?? meta.enaSupport ?? undefined;
  if (support === 'required' && wanted !== true) {
    throw new UsageError(
      `instance type ${typeName} (${typeFrom}) requires ENA, and ${meta.instanceId} ran without it: its OS may lack the ENA driver. ` +
        'Choose a type that does not require ENA (t2, m4) with --instance-type, or, if the OS has the driver, give --ena-support.',
    );
  }
  if (support === 'unsupported' && wanted === true) {
    lines.push(line('ENA', 'on', 'adapted', `${typeName} has no ENA: registered without it`));
    return false;
  }
  if (wanted === undefined) return undefined;
  if (settings.enaSupport !== undefined && settings.enaSupport !== meta.enaSupport)
    lines.push(line('ENA', settings.enaSupport ? 'on' : 'off', 'set', '--ena-support'));
  else lines.push(line('ENA', wanted ? 'on' : 'off', 'kept'));
  return wanted;
}

function decideEbsOptimized(
  info: InstanceTypeInfo,
  meta: InstanceMeta,
  typeName: string,
  lines: SettingLine[],
): boolean | undefined {
  if (meta.ebsOptimized === null) return undefined;
  if (meta.ebsOptimized && info.EbsInfo?.EbsOptimizedSupport === 'unsupported') {
    lines.push(line('EBS optimization', 'on', 'adapted', `${typeName} does not support it: off`));
    return false;
  }
  lines.push(line('EBS optimization', meta.ebsOptimized ? 'on' : 'off', 'kept'));
  return meta.ebsOptimized;
}

/**
 * CPU options ("Supported CPU options", EC2 user guide) belong to a type: kept on the same type;
 * on another, SMT off (one thread per core, per-core licences) is kept with that type's default
 * core count where it takes one thread per core; anything else gives way to the type's defaults.
 */
function decideCpuOptions(
  info: InstanceTypeInfo,
  meta: InstanceMeta,
  typeName: string,
  lines: SettingLine[],
): { CoreCount: number; ThreadsPerCore: number } | undefined {
  const cpu = meta.cpuOptions;
  if (cpu === null || cpu.coreCount === null || cpu.threadsPerCore === null) return undefined;
  const shown = `${cpu.coreCount} cores x ${cpu.threadsPerCore} threads`;
  if (info.BareMetal === true) {
    lines.push(line('CPU options', shown, 'lost', `${typeName} is bare metal and takes no CPU options`));
    return undefined;
  }
  const v = info.VCpuInfo;
  const validCores = v?.ValidCores ?? [];
  const validThreads = v?.ValidThreadsPerCore ?? [];
  if (
    typeName === meta.instanceType ||
    (validCores.includes(cpu.coreCount) && validThreads.includes(cpu.threadsPerCore))
  ) {
    lines.push(line('CPU options', shown, 'kept'));
    return { CoreCount: cpu.coreCount, ThreadsPerCore: cpu.threadsPerCore };
  }
  const defaultCores = v?.DefaultCores;
  if (
    cpu.threadsPerCore === 1 &&
    validThreads.includes(1) &&
    defaultCores !== undefined &&
    validCores.includes(defaultCores)
  ) {
    lines.push(
      line(
        'CPU options',
        `${defaultCores} cores x 1 thread`,
        'adapted',
        `SMT off kept; ${shown} is not valid for ${typeName}, ${defaultCores} cores is its default`,
      ),
    );
    return { CoreCount: defaultCores, ThreadsPerCore: 1 };
  }
  lines.push(
    line(
      'CPU options',
      shown,
      'lost',
      `not valid for ${typeName}: its defaults apply (${v?.DefaultCores ?? '?'} cores x ${v?.DefaultThreadsPerCore ?? '?'} threads)`,
    ),
  );
  return undefined;
}

/**
 * The instance profile: `none`, a name, or an ARN; the stored ARN otherwise. A profile of
 * another account cannot be passed; one that does not exist fails RunInstances. Checked with
 * GetInstanceProfile where the caller may; iam:PassRole only RunInstances can tell (doctor tries it).
 */
async function decideProfile(
  request: PreflightRequest,
  meta: InstanceMeta,
  lines: SettingLine[],
): Promise<{ Arn: string } | { Name: string } | undefined> {
  const { config } = request;
  const wanted = config.restore.iamInstanceProfile ?? meta.iamInstanceProfileArn ?? undefined;
  const profileFrom = origin(config.given, 'iam-instance-profile', meta.instanceId);
  if (wanted === undefined) return undefined;
  if (wanted === 'none') {
    if (meta.iamInstanceProfileArn !== null)
      lines.push(line('instance profile', meta.iamInstanceProfileArn, 'lost', `dropped by ${profileFrom}`));
    return undefined;
  }
  const isArn = wanted.startsWith('arn:');
  const name = isArn ? (wanted.split('/').pop() ?? wanted) : wanted;
  const identity = identityClients(config.aws, request.clients);
  try {
    if (isArn) {
      const account = wanted.split(':')[4];
      const here = await callerAccount(identity.sts);
      if (account !== here) {
        throw new UsageError(
          `instance profile ${wanted} (${profileFrom}) belongs to account ${account ?? '?'}, and this restore runs in account ${here}: ` +
            'give --iam-instance-profile with a profile of this account, or --iam-instance-profile=none.',
        );
      }
    }
    const found = await instanceProfile(identity.iam, name);
    if (found.state === 'missing') {
      throw new UsageError(
        `instance profile ${name} (${profileFrom}) does not exist in this account; create it, or give another with --iam-instance-profile (or none).`,
      );
    }
    if (found.state === 'unknown') {
      request.log.warn(`instance profile ${name}: cannot check (${found.why}); RunInstances will`);
    }
  } finally {
    identity.destroy();
  }
  lines.push(
    config.restore.iamInstanceProfile !== undefined && wanted !== meta.iamInstanceProfileArn
      ? line('instance profile', wanted, 'set', profileFrom)
      : line('instance profile', wanted, 'kept'),
  );
  return isArn ? { Arn: wanted } : { Name: wanted };
}

/**
 * The network identity: the interfaces by device index, their private addresses, groups,
 * source/destination check and Elastic IPs. A secondary interface comes back where the target
 * allows it (its subnet exists, in the instance's VPC and zone, within the type's interfaces);
 * otherwise it is listed as lost.
 */
async function decideNetwork(
  request: PreflightRequest,
  meta: InstanceMeta,
  info: InstanceTypeInfo,
  primarySubnet: SubnetFacts | undefined,
  primaryGroups: string[],
  stored: boolean,
  lines: SettingLine[],
): Promise<
  Pick<LaunchSpec, 'interfaces' | 'subnetId' | 'securityGroupIds' | 'elasticIps' | 'sourceDestCheckOff'>
> {
  const { config, clients } = request;
  const keep = config.restore.keepPrivateIp;
  const keepFrom = origin(config.given, 'keep-private-ip', meta.instanceId);
  const recorded = meta.interfaces ?? [];
  if (recorded.length === 0 || primarySubnet === undefined) {
    if (keep)
      throw new UsageError(
        `--keep-private-ip: the stream of ${meta.instanceId} records no network interfaces (written before 0.3, or without a subnet); restore without it.`,
      );
    return {
      interfaces: undefined,
      subnetId: primarySubnet?.id,
      securityGroupIds: primaryGroups,
      elasticIps: [],
      sourceDestCheckOff: [],
    };
  }
  const maxInterfaces = info.NetworkInfo?.MaximumNetworkInterfaces ?? 1;
  const perInterface = info.NetworkInfo?.Ipv4AddressesPerInterface ?? 1;
  const interfaces: InterfaceLaunch[] = [];
  const elasticIps: LaunchSpec['elasticIps'] = [];
  const sourceDestCheckOff: number[] = [];
  for (const eni of recorded) {
    const name = `eth${eni.deviceIndex} (${eni.privateIps[0] ?? '?'})`;
    const primary = eni.deviceIndex === 0;
    let subnet = primary ? primarySubnet : undefined;
    if (!primary) {
      const why = !stored
        ? `its subnet ${eni.subnetId} is in ${request.manifest.region}`
        : interfaces.length >= maxInterfaces
          ? `${info.InstanceType ?? 'the type'} takes ${maxInterfaces} network interfaces`
          : undefined;
      if (why !== undefined) {
        lines.push(line('network interface', name, 'lost', why));
        continue;
      }
      subnet = await describeSubnet(clients.ec2, eni.subnetId);
      const reason =
        subnet === undefined
          ? `its subnet ${eni.subnetId} no longer exists`
          : subnet.vpcId !== primarySubnet.vpcId
            ? `its subnet ${eni.subnetId} is in ${subnet.vpcId}, not in ${primarySubnet.vpcId} of the instance`
            : subnet.availabilityZone !== primarySubnet.availabilityZone
              ? `its subnet ${eni.subnetId} is in ${subnet.availabilityZone}, not in ${primarySubnet.availabilityZone} of the instance`
              : undefined;
      if (reason !== undefined) {
        lines.push(line('network interface', name, 'lost', reason));
        continue;
      }
    }
    if (subnet === undefined) continue;
    let groupIds = primary ? primaryGroups : eni.securityGroupIds;
    if (!primary && groupIds.length > 0 && (await securityGroups(clients.ec2, groupIds)) === undefined) {
      lines.push(
        line(
          'security groups',
          `${groupIds.join(',')} of ${name}`,
          'lost',
          'not all exist any more: the VPC default group applies',
        ),
      );
      groupIds = [];
    }
    const addresses = eni.privateIps.slice(0, perInterface);
    if (addresses.length < eni.privateIps.length) {
      lines.push(
        line(
          'private addresses',
          `${eni.privateIps.slice(perInterface).join(',')} of ${name}`,
          'lost',
          `${info.InstanceType ?? 'the type'} takes ${perInterface} per interface`,
        ),
      );
    }
    const sameSubnet = subnet.id === eni.subnetId;
    if (keep) {
      if (!sameSubnet) {
        throw new UsageError(
          `${keepFrom}: ${name} held ${addresses.join(', ')} in subnet ${eni.subnetId}, and the restore launches it in ${subnet.id}; ` +
            'restore into the stored subnet, or without --keep-private-ip.',
        );
      }
      for (const address of addresses) await refuseTaken(request, meta, subnet.id, address, keepFrom);
      lines.push(line('private addresses', `${addresses.join(',')} on ${name}`, 'kept'));
    } else {
      lines.push(
        line(
          'private addresses',
          `${addresses.join(',')} on ${name}`,
          'adapted',
          `new addresses in ${subnet.id}${sameSubnet ? '; --keep-private-ip keeps them' : ''}`,
        ),
      );
    }
    interfaces.push({
      deviceIndex: eni.deviceIndex,
      subnetId: subnet.id,
      groupIds,
      ...(keep && { privateIps: addresses }),
      secondaryCount: keep ? 0 : addresses.length - 1,
      description: eni.description,
      deleteOnTermination: eni.deleteOnTermination ?? primary,
    });
    if (!eni.sourceDestCheck) {
      sourceDestCheckOff.push(eni.deviceIndex);
      lines.push(line('source/destination check', `off on ${name}`, 'kept'));
    }
    if (eni.elasticIp !== null) {
      const lost = (why: string): void =>
        void lines.push(line('Elastic IP', `${eni.elasticIp?.publicIp ?? '?'} on ${name}`, 'lost', why));
      if (!stored) {
        lost(`an address of ${request.manifest.region}`);
        continue;
      }
      const address = await elasticIp(clients.ec2, eni.elasticIp.allocationId);
      if (address === undefined) lost(`${eni.elasticIp.allocationId} was released`);
      else if (address.associatedWith !== undefined)
        lost(`still associated with ${address.associatedWith}; associate it by hand once that is retired`);
      else {
        elasticIps.push({ deviceIndex: eni.deviceIndex, ...eni.elasticIp });
        lines.push(line('Elastic IP', `${eni.elasticIp.publicIp} on ${name}`, 'kept'));
      }
    }
  }
  return { interfaces, subnetId: undefined, securityGroupIds: [], elasticIps, sourceDestCheckOff };
}

/** A private address to take again must be free in its subnet (RunInstances: InvalidIPAddress.InUse). */
async function refuseTaken(
  request: PreflightRequest,
  meta: InstanceMeta,
  subnetId: string,
  address: string,
  keepFrom: string,
): Promise<void> {
  const holder = await addressHolder(request.clients.ec2, subnetId, address);
  if (holder === undefined) return;
  // A rerun finds the instance an earlier run of this restore launched holding it.
  if (holder.restoredFrom === meta.instanceId) {
    request.log.info(
      `${address} is held by ${holder.instanceId ?? holder.interfaceId}, restored from ${meta.instanceId} by an earlier run`,
    );
    return;
  }
  throw new UsageError(
    `${keepFrom}: private address ${address} of ${meta.instanceId} is in use in subnet ${subnetId} by ${holder.interfaceId}` +
      `${holder.instanceId !== undefined ? ` (instance ${holder.instanceId})` : ''}: terminate that first, or restore without --keep-private-ip.`,
  );
}

/**
 * Termination protection and shutdown behaviour are kept as they were; CPU credits need a
 * burstable type; hibernation a type that supports it and an encrypted root volume ("Hibernation
 * prerequisites"); Nitro Enclaves a type that supports them.
 */
function decideAttributes(
  request: PreflightRequest,
  meta: InstanceMeta,
  info: InstanceTypeInfo,
  typeName: string,
  lines: SettingLine[],
): Pick<LaunchSpec, 'disableApiTermination' | 'shutdownBehavior' | 'cpuCredits' | 'hibernation' | 'enclave'> {
  const a = meta.attributes;
  if (a === undefined) {
    lines.push(
      line(
        'termination protection, shutdown behaviour, CPU credits, hibernation, enclaves',
        'unknown',
        'lost',
        'the stream was written before 0.3 recorded them',
      ),
    );
    return {
      disableApiTermination: false,
      shutdownBehavior: undefined,
      cpuCredits: undefined,
      hibernation: false,
      enclave: false,
    };
  }
  const disableApiTermination = a.disableApiTermination === true;
  if (disableApiTermination) lines.push(line('termination protection', 'on', 'kept'));
  const shutdownBehavior = a.shutdownBehavior ?? undefined;
  if (shutdownBehavior === 'terminate') lines.push(line('shutdown behaviour', 'terminate', 'kept'));
  let cpuCredits = a.cpuCredits ?? undefined;
  if (cpuCredits !== undefined) {
    if (info.BurstablePerformanceSupported === true) lines.push(line('CPU credits', cpuCredits, 'kept'));
    else {
      lines.push(line('CPU credits', cpuCredits, 'lost', `${typeName} is not a burstable type`));
      cpuCredits = undefined;
    }
  }
  let hibernation = a.hibernation === true;
  if (hibernation) {
    const root = meta.blockDeviceMappings.find((m) => m.deviceName === meta.rootDeviceName)?.volumeId;
    const encrypted = root !== undefined && request.manifest.encryptedVolumes.includes(root);
    const why =
      info.HibernationSupported !== true
        ? `${typeName} does not support hibernation`
        : !encrypted && request.config.restore.kmsKeyId === undefined
          ? 'the root volume is not encrypted'
          : undefined;
    if (why === undefined) lines.push(line('hibernation', 'on', 'kept'));
    else {
      lines.push(line('hibernation', 'on', 'lost', why));
      hibernation = false;
    }
  }
  let enclave = a.enclave === true;
  if (enclave) {
    if (info.NitroEnclavesSupport === 'supported') lines.push(line('Nitro Enclaves', 'on', 'kept'));
    else {
      lines.push(line('Nitro Enclaves', 'on', 'lost', `${typeName} does not support them`));
      enclave = false;
    }
  }
  return { disableApiTermination, shutdownBehavior, cpuCredits, hibernation, enclave };
}
