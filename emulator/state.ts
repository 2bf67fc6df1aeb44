import { randomBytes } from 'node:crypto';
import type { Image, Instance, SecurityGroup, Snapshot, Subnet, Tag, Volume } from '@aws-sdk/client-ec2';
import { Block, BLOCK_SIZE, GIB } from './blocks.js';

export const ACCOUNT_ID = '123456789012';

/** An AWS-shaped error: `code` is the EC2 error code or the EBS/STS exception name. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export interface EmulatorOptions {
  /** How long a new snapshot (or image, or instance) stays pending. */
  pendingMs: number;
  /**
   * A fault of a service that is not EBS as documented: ListSnapshotBlocks and ListChangedBlocks
   * answer this BlockSize (0 = 524288, the only size EBS has), so a test can prove a reader
   * refuses blocks of another size.
   */
  listBlockSize: number;
  /** How long a snapshot copy stays pending; 0 = pendingMs. */
  copyPendingMs: number;
  /** PutSnapshotBlock answers ResourceNotFoundException this long after StartSnapshot. */
  startDelayMs: number;
  latencyMs: number;
  /** Aggregate data-plane bandwidth cap in megabits per second; 0 = none. */
  bandwidthMbps: number;
  /** Probability that an EBS direct API request answers RequestThrottledException. */
  throttleRate: number;
  /**
   * GetSnapshotBlock and PutSnapshotBlock requests accepted per second, each, as AWS's per-account
   * quota does; the excess answers RequestThrottledException. 0 = no quota.
   */
  blockRequestsPerSecond: number;
  /** Probability that an EC2 call answers RequestLimitExceeded (HTTP 503). */
  ec2ThrottleRate: number;
  /** Probability that an EBS direct API request answers one of `errorCodes`, drawn with the seed. */
  errorRate: number;
  /** The EBS errors (emulator/ebs.ts EBS_ERRORS) `errorRate` draws from, among those the call can answer. */
  errorCodes: string[];
  resetRate: number;
  corruptRate: number;
  /** Lifetime of STS credentials, whatever DurationSeconds asked for; 0 = as asked. */
  stsDurationS: number;
  blockTokenTtlMs: number;
  pageTokenTtlMs: number;
  /** How many block indices one ListChangedBlocks page scans: pages may come back empty. */
  changedBlocksWindow: number;
  /** Long-term keys: access key id to secret. */
  keys: Record<string, string>;
  /** Seeds every injected fault (throttles, errors, resets, corruption): a failing run replays. */
  seed: number;
  /**
   * A fault of an EC2 implementation, not of AWS: RunInstances leaves out the last data volume of
   * the AMI (1), so a test can prove a restore notices a volume missing after the launch.
   */
  launchDropsVolume: number;
  /**
   * How long a running instance's status checks stay `initializing` before they pass, or fail for
   * an unbootable root volume ("Status checks for Amazon EC2 instances", EC2 user guide: checks
   * start once the instance runs).
   */
  statusChecksMs: number;
  /**
   * IAM actions the caller's policy does not allow, as `service:Action` (`ec2:CreateSnapshots`,
   * `ebs:ListChangedBlocks`, `kms:DescribeKey`): each is refused the way that service refuses an
   * unauthorized call, DryRun included.
   */
  deniedActions: string[];
}

export function defaultOptions(): EmulatorOptions {
  return {
    pendingMs: 200,
    copyPendingMs: 0,
    listBlockSize: 0,
    startDelayMs: 0,
    latencyMs: 0,
    bandwidthMbps: 0,
    throttleRate: 0,
    blockRequestsPerSecond: 0,
    ec2ThrottleRate: 0,
    errorRate: 0,
    errorCodes: ['InternalServerException'],
    resetRate: 0,
    corruptRate: 0,
    stsDurationS: 0,
    blockTokenTtlMs: 7 * 24 * 3600 * 1000,
    pageTokenTtlMs: 60 * 60 * 1000,
    changedBlocksWindow: 65536,
    keys: { AKIAEMULATORTESTKEY1: 'emulator-secret-access-key' },
    seed: 1,
    launchDropsVolume: 0,
    statusChecksMs: 300,
    deniedActions: [],
  };
}

export interface VolumeRecord {
  region: string;
  volume: Volume;
  blocks: Map<number, Block>;
  /** CreateVolume's client token and request, to answer a repeat of that token. */
  clientToken?: string;
  requestFingerprint?: string;
}

export interface SnapshotRecord {
  region: string;
  snapshot: Snapshot;
  blocks: Map<number, Block>;
  /** Snapshots of one volume, or chained by ParentSnapshotId, share a lineage. */
  lineage: string;
  parentSnapshotId?: string;
  /** Made by CreateSnapshot(s) or by StartSnapshot (EBS direct). */
  origin: 'ec2' | 'direct';
  /** When a pending snapshot becomes completed; undefined while a direct snapshot is open for writes. */
  readyAt?: number;
  startedAt: number;
  /** Direct snapshots only: writes allowed until then, error afterwards. */
  deadline?: number;
  clientToken?: string;
  requestFingerprint?: string;
  /**
   * A copy's KMS key, as CopySnapshot named it: checked when the copy would complete, as AWS
   * checks it asynchronously; a key unknown or not enabled by then ends the copy in `error`.
   */
  copyKey?: string;
  /** A copy only: its source, `<region>/<snapshot id>`; a pending copy holds a slot of the copy quota. */
  copyOf?: string;
  /**
   * Why AWS fails this pending snapshot asynchronously, with this message, when it would have
   * completed: a copy whose PresignedUrl was invalid ("the snapshot will move to an error
   * state", CopySnapshot reference), or a StartSnapshot snapshot whose CompleteSnapshot count or
   * checksum does not match what was written (AWS seals it after answering).
   */
  failure?: string;
  /** A copy only: the PresignedUrl its request carried, for a test to read. */
  presignedUrl?: string;
}

export interface InstanceRecord {
  region: string;
  instance: Instance;
  userData?: string;
  readyAt: number;
  /** The RunInstances request without its ClientToken, to answer a repeat of that token. */
  requestFingerprint?: string;
  /** The UEFI variable store, base64 (GetInstanceUefiData). */
  uefiData?: string;
  /** Its network interfaces, primary (device index 0) first. */
  interfaceIds: string[];
  /** DescribeInstanceAttribute disableApiTermination. */
  disableApiTermination: boolean;
  /** DescribeInstanceAttribute instanceInitiatedShutdownBehavior. */
  shutdownBehavior: 'stop' | 'terminate';
  /** DescribeInstanceCreditSpecifications, for a burstable type. */
  cpuCredits?: 'standard' | 'unlimited';
  /** False when its root volume holds content a test marked unbootable (admin `POST unbootable`). */
  bootable: boolean;
}

/** A network interface: the parts DescribeNetworkInterfaces and DescribeInstances show. */
export interface InterfaceRecord {
  region: string;
  networkInterfaceId: string;
  subnetId: string;
  vpcId: string;
  availabilityZone: string;
  /** Primary first. */
  privateIps: string[];
  groupIds: string[];
  sourceDestCheck: boolean;
  description: string;
  attachment?: { instanceId: string; deviceIndex: number; deleteOnTermination: boolean };
}

/** An Elastic IP address (DescribeAddresses). */
export interface AddressRecord {
  region: string;
  allocationId: string;
  publicIp: string;
  association?: { associationId: string; networkInterfaceId: string; privateIp: string };
}

export interface ImageRecord {
  region: string;
  image: Image;
  readyAt: number;
  /** RegisterImage's UefiData, base64. */
  uefiData?: string;
}

export interface RegionRecord {
  name: string;
  zones: { ZoneName: string; ZoneId: string }[];
  vpcId: string;
  keyPairs: Set<string>;
  placementGroups: Map<string, { strategy: string; partitionCount?: number }>;
  /**
   * EBS encryption by default, a setting of the account in each Region ("Encryption by
   * default", Amazon EBS User Guide): new volumes, and snapshots StartSnapshot makes, are
   * encrypted even when the request does not ask; off unless a test turns it on.
   */
  encryptionByDefault: boolean;
}

export function newId(prefix: string): string {
  return `${prefix}-${randomBytes(9).toString('hex').slice(0, 17)}`;
}

/**
 * A snapshot as DescribeSnapshots shows it just after it was made, pending. `volumeId` is AWS's
 * placeholder vol-ffffffff for a snapshot made without a volume (StartSnapshot, CopySnapshot).
 */
export function pendingSnapshot(fields: {
  volumeId: string;
  sizeGiB: number | undefined;
  description: string;
  encrypted: boolean;
  kmsKeyId: string | undefined;
  tags: Tag[];
  now: number;
}): Snapshot & { SnapshotId: string } {
  return {
    SnapshotId: newId('snap'),
    VolumeId: fields.volumeId,
    VolumeSize: fields.sizeGiB,
    State: 'pending',
    Progress: '0%',
    StartTime: new Date(fields.now),
    Description: fields.description,
    OwnerId: ACCOUNT_ID,
    Encrypted: fields.encrypted,
    ...(fields.encrypted && fields.kmsKeyId !== undefined && { KmsKeyId: fields.kmsKeyId }),
    Tags: fields.tags,
    StorageTier: 'standard',
  };
}

export function tagsFrom(map: Record<string, string> | undefined): Tag[] {
  return Object.entries(map ?? {}).map(([Key, Value]) => ({ Key, Value }));
}

export class World {
  readonly regions = new Map<string, RegionRecord>();
  readonly instances = new Map<string, InstanceRecord>();
  readonly volumes = new Map<string, VolumeRecord>();
  readonly snapshots = new Map<string, SnapshotRecord>();
  /** KMS keys by ARN: those the admin API created, and those seeded volumes are encrypted with. */
  readonly kmsKeys = new Map<string, { state: 'Enabled' | 'Disabled' | 'PendingDeletion' }>();
  readonly images = new Map<string, ImageRecord>();
  readonly subnets = new Map<string, { region: string; subnet: Subnet }>();
  readonly securityGroups = new Map<string, { region: string; group: SecurityGroup }>();
  readonly requestCounts = new Map<string, number>();
  /** The client ports AWS requests came from (admin requests aside): a proxy test compares them with its tunnels. */
  readonly peerPorts = new Set<number>();
  readonly interfaces = new Map<string, InterfaceRecord>();
  readonly addresses = new Map<string, AddressRecord>();
  /** IAM instance profiles (global, like IAM): ARN to name. */
  readonly instanceProfiles = new Map<string, string>();
  /** `region|zone|type` a test took out of DescribeInstanceTypeOfferings. */
  readonly unoffered = new Set<string>();
  /** `region|zone` where RunInstances answers InsufficientInstanceCapacity (test-only fault). */
  readonly noCapacity = new Set<string>();
  /**
   * Content digests (emulator/blocks.ts contentDigest) of root volumes that do not boot: an
   * instance whose root volume holds one of them runs, and fails its instance status check.
   */
  readonly unbootable = new Set<string>();
  /** Injected failures: action name to the errors its next calls answer (test-only). */
  readonly failures = new Map<string, ApiError[]>();

  /** How far tests moved the emulator's clock ahead of the wall clock (admin `POST clock`). */
  private advancedMs = 0;

  constructor(readonly options: EmulatorOptions) {
    for (const [name, zones, prefix] of [
      ['us-east-1', ['a', 'b', 'c'], 'use1'],
      ['eu-west-1', ['a', 'b', 'c'], 'euw1'],
      ['eu-central-1', ['a', 'b'], 'euc1'],
    ] as const) {
      this.addRegion(name, zones, prefix);
    }
  }

  addRegion(name: string, zoneLetters: readonly string[], idPrefix: string): RegionRecord {
    const vpcId = newId('vpc');
    const record: RegionRecord = {
      name,
      zones: zoneLetters.map((l, i) => ({ ZoneName: `${name}${l}`, ZoneId: `${idPrefix}-az${i + 1}` })),
      vpcId,
      keyPairs: new Set(['default-key']),
      encryptionByDefault: false,
      placementGroups: new Map(),
    };
    this.regions.set(name, record);
    record.zones.forEach((zone, i) => this.addSubnet(name, zone.ZoneName, vpcId, `10.0.${i}.0/24`));
    this.addSecurityGroup(name, vpcId, 'default');
    return record;
  }

  /** The ARN of a key of `region` given by ARN or id (KMS's KeyId forms, aliases aside). */
  kmsKeyArn(region: string, keyId: string): string | undefined {
    return [...this.kmsKeys.keys()].find(
      (k) => k.split(':')[3] === region && (k === keyId || k.endsWith(`/${keyId}`)),
    );
  }

  private keyUsable(region: string, keyId: string): boolean {
    const arn = this.kmsKeyArn(region, keyId);
    return arn !== undefined && this.kmsKeys.get(arn)?.state === 'Enabled';
  }

  knowsRegion(name: string): boolean {
    return this.regions.has(name);
  }

  region(name: string): RegionRecord {
    const region = this.regions.get(name);
    if (!region)
      throw new ApiError(
        'UnrecognizedClientException',
        `The region ${name} is not known to the emulator`,
        400,
      );
    return region;
  }

  zone(region: string, zoneName: string): { ZoneName: string; ZoneId: string } {
    const zone = this.region(region).zones.find((z) => z.ZoneName === zoneName);
    if (!zone) throw new ApiError('InvalidParameterValue', `Invalid availability zone: [${zoneName}]`);
    return zone;
  }

  addSubnet(region: string, zoneName: string, vpcId: string, cidr: string): Subnet {
    const zone = this.zone(region, zoneName);
    const subnet: Subnet = {
      SubnetId: newId('subnet'),
      VpcId: vpcId,
      AvailabilityZone: zone.ZoneName,
      AvailabilityZoneId: zone.ZoneId,
      CidrBlock: cidr,
      State: 'available',
      OwnerId: ACCOUNT_ID,
      AvailableIpAddressCount: 250,
    };
    this.subnets.set(subnet.SubnetId!, { region, subnet });
    return subnet;
  }

  addSecurityGroup(region: string, vpcId: string, groupName: string): SecurityGroup {
    const group: SecurityGroup = {
      GroupId: newId('sg'),
      GroupName: groupName,
      VpcId: vpcId,
      OwnerId: ACCOUNT_ID,
      Description: groupName,
    };
    this.securityGroups.set(group.GroupId!, { region, group });
    return group;
  }

  count(key: string): void {
    this.requestCounts.set(key, (this.requestCounts.get(key) ?? 0) + 1);
  }

  /** Throws the next injected failure for `action`, if any. */
  injectedFailure(action: string): void {
    const queue = this.failures.get(action);
    const failure = queue?.shift();
    if (failure) throw failure;
  }

  /**
   * AWS's time as the emulator models it: the wall clock plus what tests advanced it by. Every
   * lifetime and transition runs on it (pending snapshots, images and instances, status checks,
   * page and block tokens, temporary credentials, StartSnapshot's consistency delay), so that a
   * test moves them on by `advance` instead of sleeping through them and racing a loaded machine.
   * Request rates, bandwidth and latency stay on the wall clock: they model throughput.
   */
  now(): number {
    return Date.now() + this.advancedMs;
  }

  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0)
      throw new ApiError('AdminBadRequest', `cannot move the clock by ${ms} ms`);
    this.advancedMs += ms;
  }

  /** Moves time-driven states forward: pending snapshots, images and instances. */
  settle(now = this.now()): void {
    for (const s of this.snapshots.values()) {
      if (s.snapshot.State === 'pending') {
        if (s.readyAt !== undefined && now >= s.readyAt && s.failure !== undefined) {
          s.snapshot.State = 'error';
          s.snapshot.StateMessage = s.failure;
        } else if (
          s.readyAt !== undefined &&
          now >= s.readyAt &&
          s.copyKey !== undefined &&
          !this.keyUsable(s.region, s.copyKey)
        ) {
          s.snapshot.State = 'error';
          s.snapshot.StateMessage = `The KMS key ${s.copyKey} of the snapshot copy is not usable`;
        } else if (s.readyAt !== undefined && now >= s.readyAt) {
          s.snapshot.State = 'completed';
          s.snapshot.Progress = '100%';
        } else if (s.deadline !== undefined && s.readyAt === undefined && now >= s.deadline) {
          s.snapshot.State = 'error';
          s.snapshot.StateMessage = 'The snapshot was not completed before its timeout';
        }
      }
    }
    for (const i of this.images.values()) {
      if (i.image.State === 'pending' && now >= i.readyAt) i.image.State = 'available';
    }
    for (const i of this.instances.values()) {
      if (i.instance.State?.Name === 'pending' && now >= i.readyAt)
        i.instance.State = { Code: 16, Name: 'running' };
      // TerminateInstances: shutting-down, then terminated once the instance has shut down.
      if (i.instance.State?.Name === 'shutting-down' && now >= i.readyAt)
        i.instance.State = { Code: 48, Name: 'terminated' };
    }
  }

  /**
   * What an instance leaves as it ends ("Terminate Amazon EC2 instances", EC2 user guide): its
   * interfaces with DeleteOnTermination are deleted, the others detached, an Elastic IP on them
   * disassociated; its EBS volumes with DeleteOnTermination are deleted, the others detached.
   */
  releaseInstance(record: InstanceRecord): void {
    for (const eniId of record.interfaceIds) {
      const eni = this.interfaces.get(eniId);
      for (const address of this.addresses.values())
        if (address.association?.networkInterfaceId === eniId) address.association = undefined;
      if (eni?.attachment?.deleteOnTermination === true) this.interfaces.delete(eniId);
      else if (eni !== undefined) eni.attachment = undefined;
    }
    record.interfaceIds = [];
    const id = record.instance.InstanceId;
    for (const [volumeId, volume] of this.volumes) {
      const attachment = volume.volume.Attachments?.find((a) => a.InstanceId === id);
      if (attachment === undefined) continue;
      if (attachment.DeleteOnTermination === true) this.volumes.delete(volumeId);
      else {
        volume.volume.Attachments = [];
        volume.volume.State = 'available';
      }
    }
    record.instance.BlockDeviceMappings = [];
  }

  volumeRecord(id: string, region: string): VolumeRecord {
    const record = this.volumes.get(id);
    if (!record || record.region !== region) {
      throw new ApiError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
    }
    return record;
  }

  snapshotRecord(id: string, region: string): SnapshotRecord {
    const record = this.snapshots.get(id);
    if (!record || record.region !== region) {
      throw new ApiError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
    }
    return record;
  }

  instanceRecord(id: string, region: string): InstanceRecord {
    const record = this.instances.get(id);
    if (!record || record.region !== region || record.instance.State?.Name === 'terminated') {
      throw new ApiError('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    }
    return record;
  }

  createVolume(
    region: string,
    zoneName: string,
    sizeGiB: number,
    volumeType: string,
    extra: Partial<Volume> = {},
    blocks = new Map<number, Block>(),
  ): VolumeRecord {
    this.zone(region, zoneName);
    const volume: Volume = {
      VolumeId: newId('vol'),
      Size: sizeGiB,
      AvailabilityZone: zoneName,
      State: 'available',
      VolumeType: volumeType as Volume['VolumeType'],
      Encrypted: false,
      CreateTime: new Date(),
      Attachments: [],
      Tags: [],
      MultiAttachEnabled: false,
      ...extra,
    };
    const record: VolumeRecord = { region, volume, blocks };
    this.volumes.set(volume.VolumeId!, record);
    return record;
  }

  /** Captures the volume's blocks now: later writes to the volume do not reach the snapshot. */
  snapshotVolume(volume: VolumeRecord, description: string | undefined, tags: Tag[]): SnapshotRecord {
    const now = this.now();
    const snapshot = pendingSnapshot({
      volumeId: volume.volume.VolumeId ?? '',
      sizeGiB: volume.volume.Size,
      description: description ?? '',
      encrypted: volume.volume.Encrypted ?? false,
      kmsKeyId: volume.volume.KmsKeyId,
      tags,
      now,
    });
    const record: SnapshotRecord = {
      region: volume.region,
      snapshot,
      blocks: new Map(volume.blocks),
      lineage: volume.volume.VolumeId!,
      origin: 'ec2',
      readyAt: now + this.options.pendingMs,
      startedAt: now,
    };
    this.snapshots.set(snapshot.SnapshotId, record);
    return record;
  }

  volumeSizeBytes(sizeGiB: number): number {
    return sizeGiB * GIB;
  }

  blocksPerVolume(sizeGiB: number): number {
    return (sizeGiB * GIB) / BLOCK_SIZE;
  }
}
