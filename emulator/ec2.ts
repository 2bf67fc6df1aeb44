import type {
  BlockDeviceMapping,
  Filter,
  Image,
  Instance,
  InstanceBlockDeviceMapping,
  Snapshot,
  Tag,
  TagSpecification,
  Volume,
} from '@aws-sdk/client-ec2';
import { contentDigest } from './blocks.js';
import { INSTANCE_TYPES, typeDefaults } from './instance-types.js';
import { addressOf, createInterface, instanceNetwork, type InterfaceSpec } from './network.js';
import {
  ACCOUNT_ID,
  ApiError,
  type InstanceRecord,
  type InterfaceRecord,
  newId,
  pendingSnapshot,
  type World,
} from './state.js';

type Input = Record<string, unknown>;
type Output = Record<string, unknown>;
type Getter<T> = (item: T, filterName: string) => (string | undefined)[] | undefined;

function tagValues(tags: Tag[] | undefined, name: string): (string | undefined)[] | undefined {
  if (name === 'tag-key') return (tags ?? []).map((t) => t.Key);
  if (name.startsWith('tag:')) {
    const key = name.slice(4);
    return (tags ?? []).filter((t) => t.Key === key).map((t) => t.Value);
  }
  return undefined;
}

function wildcard(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

/** EC2 filter semantics: values within a filter OR together, filters AND together, `*` and `?` are wildcards. */
function applyFilters<T>(items: T[], filters: Filter[] | undefined, get: Getter<T>): T[] {
  for (const filter of filters ?? []) {
    const name = filter.Name ?? '';
    if (get({} as T, name) === undefined) {
      throw new ApiError('InvalidParameterValue', `The filter '${name}' is invalid`);
    }
  }
  return items.filter((item) =>
    (filters ?? []).every((filter) => {
      const actual = get(item, filter.Name ?? '') ?? [];
      const patterns = (filter.Values ?? []).map(wildcard);
      return actual.some((v) => v !== undefined && patterns.some((p) => p.test(v)));
    }),
  );
}

function tagSpecs(specs: TagSpecification[] | undefined, resourceType: string): Tag[] {
  const tags: Tag[] = [];
  for (const spec of specs ?? []) {
    if (spec.ResourceType === undefined) {
      throw new ApiError('InvalidParameterValue', 'TagSpecification requires a ResourceType');
    }
    if (spec.ResourceType === resourceType) tags.push(...(spec.Tags ?? []));
  }
  for (const tag of tags) checkTag(tag);
  checkTagCount(tags);
  return tags;
}

/**
 * "Tag your Amazon EC2 resources" (EC2 user guide), tag restrictions: at most 50 tags per
 * resource (aws: tags, which users cannot set, do not count). Past that, TagLimitExceeded.
 */
const MAX_TAGS = 50;

/** RegisterImage, UefiData: at most 64,000 characters. */
export const UEFI_DATA_MAX = 64000;

function checkTagCount(tags: Tag[]): void {
  if (tags.length > MAX_TAGS) {
    throw new ApiError(
      'TagLimitExceeded',
      `The maximum number of tags per resource is ${MAX_TAGS}; ${tags.length} were given.`,
    );
  }
}

function checkTag(tag: Tag): void {
  if (!tag.Key) throw new ApiError('InvalidParameterValue', 'Tag keys must not be empty');
  if (tag.Key.toLowerCase().startsWith('aws:')) {
    throw new ApiError('InvalidParameterValue', `Tag key '${tag.Key}' uses the reserved aws: prefix`);
  }
  if (tag.Key.length > 128 || (tag.Value ?? '').length > 256) {
    throw new ApiError('InvalidParameterValue', `Tag '${tag.Key}' is too long`);
  }
}

function mergeTags(existing: Tag[] | undefined, added: Tag[]): Tag[] {
  const map = new Map((existing ?? []).map((t) => [t.Key, t.Value]));
  for (const t of added) map.set(t.Key, t.Value ?? '');
  if (map.size > 50) throw new ApiError('TagLimitExceeded', 'A resource may have at most 50 tags');
  return [...map].map(([Key, Value]) => ({ Key, Value }));
}

function paginate<T>(
  items: T[],
  input: Input,
  min: number,
  max: number,
  idsGiven: boolean,
): { page: T[]; next?: string } {
  const maxResults = input.MaxResults as number | undefined;
  if (maxResults === undefined) {
    if (input.NextToken !== undefined)
      throw new ApiError('InvalidParameterValue', 'NextToken needs MaxResults');
    return { page: items };
  }
  if (idsGiven)
    throw new ApiError('InvalidParameterCombination', 'MaxResults cannot be used with resource IDs');
  if (maxResults < min || maxResults > max) {
    throw new ApiError('InvalidParameterValue', `MaxResults must be between ${min} and ${max}`);
  }
  const start =
    input.NextToken === undefined ? 0 : Number(Buffer.from(String(input.NextToken), 'base64url').toString());
  if (!Number.isInteger(start) || start < 0 || start > items.length) {
    throw new ApiError('InvalidParameterValue', 'The NextToken is invalid');
  }
  const page = items.slice(start, start + maxResults);
  const end = start + page.length;
  return { page, ...(end < items.length && { next: Buffer.from(String(end)).toString('base64url') }) };
}

function requireIds<T>(
  ids: string[] | undefined,
  found: (id: string) => T | undefined,
  code: string,
  what: string,
): T[] {
  return (ids ?? []).map((id) => {
    const item = found(id);
    if (item === undefined) throw new ApiError(code, `The ${what} '${id}' does not exist`);
    return item;
  });
}

function require<T>(value: T | undefined, name: string): T {
  if (value === undefined || value === null || value === '') {
    throw new ApiError('MissingParameter', `The request must contain the parameter ${name}`);
  }
  return value;
}

const VOLUME_TYPES = new Set(['gp2', 'gp3', 'io1', 'io2', 'st1', 'sc1', 'standard']);

/** CreateVolume (EC2 API reference), Size: the sizes each volume type takes, in GiB. */
const SIZE_RANGE: Record<string, [number, number]> = {
  gp2: [1, 16384],
  gp3: [1, 65536],
  io1: [4, 16384],
  io2: [4, 65536],
  st1: [125, 16384],
  sc1: [125, 16384],
  standard: [1, 1024],
};
/**
 * CreateVolume (EC2 API reference), Iops: the range of each type that takes IOPS (gp3 "3,000 -
 * 80,000 IOPS" since gp3 grew to 64 TiB).
 */
const IOPS_RANGE: Record<string, [number, number]> = {
  gp3: [3000, 80000],
  io1: [100, 64000],
  io2: [100, 256000],
};
/**
 * Amazon EBS volume types (EBS user guide): the most IOPS per GiB of size (gp3 above its 3,000
 * baseline), and for gp3 at most 0.25 MiB/s of throughput per provisioned IOPS.
 */
const IOPS_PER_GIB: Record<string, number> = { gp3: 500, io1: 50, io2: 1000 };

/** The volume settings AWS accepts, by type; throws what EC2 answers otherwise. */
export function checkVolumeSpec(
  type: string | undefined,
  iops: number | undefined,
  throughput: number | undefined,
  sizeGiB?: number,
): void {
  if (type !== undefined && !VOLUME_TYPES.has(type)) {
    throw new ApiError('InvalidParameterValue', `Value (${type}) for parameter volumeType is invalid.`);
  }
  const t = type ?? 'gp2';
  if (iops !== undefined && !(t in IOPS_RANGE)) {
    throw new ApiError(
      'InvalidParameterCombination',
      `The parameter iops is not supported for ${t} volumes.`,
    );
  }
  if ((t === 'io1' || t === 'io2') && iops === undefined) {
    throw new ApiError(
      'InvalidParameterCombination',
      `The parameter iops must be specified for ${t} volumes.`,
    );
  }
  if (throughput !== undefined && t !== 'gp3') {
    throw new ApiError(
      'InvalidParameterCombination',
      `The parameter throughput is not supported for ${t} volumes.`,
    );
  }
  const sizes = SIZE_RANGE[t];
  if (sizeGiB !== undefined && sizes && (sizeGiB < sizes[0] || sizeGiB > sizes[1])) {
    throw new ApiError(
      'InvalidParameterValue',
      `Volume of ${sizeGiB} GiB is outside ${sizes[0]}-${sizes[1]} GiB for ${t}.`,
    );
  }
  const range = IOPS_RANGE[t];
  if (iops !== undefined && range && (iops < range[0] || iops > range[1])) {
    throw new ApiError(
      'InvalidParameterValue',
      `Volume iops of ${iops} is outside ${range[0]}-${range[1]} for ${t}.`,
    );
  }
  const perGib = IOPS_PER_GIB[t];
  if (iops !== undefined && perGib !== undefined && sizeGiB !== undefined) {
    const most = Math.max(t === 'gp3' ? 3000 : 0, perGib * sizeGiB);
    if (iops > most) {
      throw new ApiError(
        'InvalidParameterValue',
        `Volume iops of ${iops} is too high; maximum is ${most} for ${sizeGiB} GiB of ${t}.`,
      );
    }
  }
  // CreateVolume, Throughput: gp3 "Valid Range: 125 - 2000 MiB/s", at most 0.25 MiB/s per IOPS.
  if (t === 'gp3' && throughput !== undefined) {
    const most = Math.min(2000, (iops ?? 3000) / 4);
    if (throughput < 125 || throughput > most) {
      throw new ApiError(
        'InvalidParameterValue',
        `Throughput of ${throughput} MiB/s is outside 125-${most} for ${iops ?? 3000} IOPS of gp3.`,
      );
    }
  }
}

/** What the server learnt of a request before its action runs (a PresignedUrl's check needs the keys). */
export interface RequestContext {
  /** CopySnapshot with a PresignedUrl: why it does not authorise the copy, or undefined when it does. */
  presignedUrlProblem?: string | undefined;
}

/**
 * Concurrent snapshot copies per destination Region: 20, not adjustable ("Quotas for Amazon EBS",
 * Amazon EBS User Guide). Above it CopySnapshot answers ResourceLimitExceeded, "you might have too
 * many snapshot copies in progress" ("Error codes for the Amazon EC2 API").
 */
export const CONCURRENT_COPIES = 20;

export class Ec2Service {
  constructor(private readonly world: World) {}

  handle(action: string, region: string, input: Input, context: RequestContext = {}): Output {
    this.world.settle();
    const handler = (
      this as unknown as Record<string, ((r: string, i: Input, c: RequestContext) => Output) | undefined>
    )[action];
    if (typeof handler !== 'function' || !/^[A-Z]/.test(action)) {
      throw new ApiError('InvalidAction', `The action ${action} is not valid for this web service.`);
    }
    this.world.region(region);
    this.world.injectedFailure(action);
    return handler.call(this, region, input, context);
  }

  DescribeAvailabilityZones(region: string, input: Input): Output {
    // DescribeAvailabilityZones (EC2 API reference): ZoneNames narrows the answer; a name that is
    // not a zone of the region is refused (InvalidParameterValue), while a zone-name filter that
    // matches nothing is an empty answer.
    const names = input.ZoneNames as string[] | undefined;
    for (const name of names ?? []) this.world.zone(region, name);
    const zones = this.world
      .region(region)
      .zones.filter((z) => names === undefined || names.includes(z.ZoneName))
      .map((z) => ({
        ...z,
        RegionName: region,
        State: 'available',
        ZoneType: 'availability-zone',
      }));
    return {
      AvailabilityZones: applyFilters(zones, input.Filters as Filter[], (z, n) =>
        n === 'zone-name'
          ? [z.ZoneName]
          : n === 'zone-id'
            ? [z.ZoneId]
            : n === 'region-name'
              ? [region]
              : undefined,
      ),
    };
  }

  /** An instance as DescribeInstances shows it: its record, with its network interfaces. */
  private shown(record: InstanceRecord): Instance {
    return { ...record.instance, ...instanceNetwork(this.world, record.interfaceIds) };
  }

  DescribeInstances(region: string, input: Input): Output {
    const ids = input.InstanceIds as string[] | undefined;
    let items = ids?.length
      ? requireIds(
          ids,
          (id) => this.shown(this.world.instanceRecord(id, region)),
          'InvalidInstanceID.NotFound',
          'instance ID',
        )
      : [...this.world.instances.values()].filter((r) => r.region === region).map((r) => this.shown(r));
    items = applyFilters(items, input.Filters as Filter[], (i, n) => {
      switch (n) {
        case 'instance-id':
          return [i.InstanceId];
        case 'instance-state-name':
          return [i.State?.Name];
        case 'availability-zone':
          return [i.Placement?.AvailabilityZone];
        case 'subnet-id':
          return [i.SubnetId];
        case 'vpc-id':
          return [i.VpcId];
        case 'instance-type':
          return [i.InstanceType];
        // DescribeInstances (EC2 API reference), filter client-token: the idempotency token of the launch.
        case 'client-token':
          return [i.ClientToken];
        default:
          return tagValues(i.Tags, n);
      }
    });
    const { page, next } = paginate(items, input, 5, 1000, Boolean(ids?.length));
    return {
      Reservations: page.map((instance) => ({
        ReservationId: newId('r'),
        OwnerId: ACCOUNT_ID,
        Groups: [],
        Instances: [instance],
      })),
      NextToken: next,
    };
  }

  /** GetEbsEncryptionByDefault (EC2 API reference): whether the Region encrypts new volumes by default. */
  GetEbsEncryptionByDefault(region: string): Output {
    return { EbsEncryptionByDefault: this.world.region(region).encryptionByDefault, SseType: 'sse-ebs' };
  }

  /** GetInstanceUefiData (EC2 API reference): the instance's UEFI variable store, base64. */
  GetInstanceUefiData(region: string, input: Input): Output {
    const record = this.world.instanceRecord(require(input.InstanceId as string, 'InstanceId'), region);
    return {
      InstanceId: record.instance.InstanceId,
      ...(record.uefiData !== undefined && { UefiData: record.uefiData }),
    };
  }

  DescribeInstanceAttribute(region: string, input: Input): Output {
    const record = this.world.instanceRecord(require(input.InstanceId as string, 'InstanceId'), region);
    const attribute = require(input.Attribute as string, 'Attribute');
    const base = { InstanceId: record.instance.InstanceId };
    switch (attribute) {
      case 'userData':
        return { ...base, UserData: record.userData === undefined ? {} : { Value: record.userData } };
      case 'instanceType':
        return { ...base, InstanceType: { Value: record.instance.InstanceType } };
      case 'disableApiTermination':
        return { ...base, DisableApiTermination: { Value: record.disableApiTermination } };
      case 'instanceInitiatedShutdownBehavior':
        return { ...base, InstanceInitiatedShutdownBehavior: { Value: record.shutdownBehavior } };
      default:
        throw new ApiError(
          'InvalidParameterValue',
          `Value (${attribute}) for parameter attribute is invalid.`,
        );
    }
  }

  DescribeVolumes(region: string, input: Input): Output {
    const ids = input.VolumeIds as string[] | undefined;
    let items = ids?.length
      ? requireIds(
          ids,
          (id) => this.world.volumeRecord(id, region).volume,
          'InvalidVolume.NotFound',
          'volume',
        )
      : [...this.world.volumes.values()].filter((v) => v.region === region).map((v) => v.volume);
    items = applyFilters(items, input.Filters as Filter[], (v, n) => {
      switch (n) {
        case 'volume-id':
          return [v.VolumeId];
        case 'attachment.instance-id':
          return (v.Attachments ?? []).map((a) => a.InstanceId);
        case 'attachment.device':
          return (v.Attachments ?? []).map((a) => a.Device);
        case 'availability-zone':
          return [v.AvailabilityZone];
        case 'status':
          return [v.State];
        case 'snapshot-id':
          return [v.SnapshotId];
        default:
          return tagValues(v.Tags, n);
      }
    });
    const { page, next } = paginate(items, input, 5, 500, Boolean(ids?.length));
    return { Volumes: page, NextToken: next };
  }

  CreateSnapshot(region: string, input: Input): Output {
    const volume = this.world.volumeRecord(require(input.VolumeId as string, 'VolumeId'), region);
    const tags = tagSpecs(input.TagSpecifications as TagSpecification[], 'snapshot');
    const record = this.world.snapshotVolume(volume, input.Description as string | undefined, tags);
    return { ...record.snapshot };
  }

  CreateSnapshots(region: string, input: Input): Output {
    const spec = require(input.InstanceSpecification as Input | undefined, 'InstanceSpecification');
    const instance = this.world.instanceRecord(
      require(spec.InstanceId as string, 'InstanceSpecification.InstanceId'),
      region,
    );
    const exclude = new Set((spec.ExcludeDataVolumeIds as string[] | undefined) ?? []);
    const rootDevice = instance.instance.RootDeviceName;
    for (const id of exclude) {
      const mapping = instance.instance.BlockDeviceMappings?.find((m) => m.Ebs?.VolumeId === id);
      if (!mapping) {
        throw new ApiError(
          'InvalidParameterValue',
          `Volume ${id} is not attached to instance ${instance.instance.InstanceId}`,
        );
      }
      if (mapping.DeviceName === rootDevice) {
        throw new ApiError(
          'InvalidParameterValue',
          `The root volume ${id} cannot be excluded with ExcludeDataVolumeIds`,
        );
      }
    }
    const tags = tagSpecs(input.TagSpecifications as TagSpecification[], 'snapshot');
    const copyTags = input.CopyTagsFromSource as string | undefined;
    if (copyTags !== undefined && copyTags !== 'volume') {
      throw new ApiError(
        'InvalidParameterValue',
        `Value (${copyTags}) for parameter CopyTagsFromSource is invalid.`,
      );
    }
    const snapshots: Output[] = [];
    for (const mapping of instance.instance.BlockDeviceMappings ?? []) {
      const volumeId = mapping.Ebs?.VolumeId;
      if (!volumeId || exclude.has(volumeId)) continue;
      if (spec.ExcludeBootVolume === true && mapping.DeviceName === rootDevice) continue;
      const volume = this.world.volumeRecord(volumeId, region);
      const withSource = copyTags === 'volume' ? mergeTags(volume.volume.Tags, tags) : tags;
      const record = this.world.snapshotVolume(volume, input.Description as string | undefined, withSource);
      snapshots.push({
        SnapshotId: record.snapshot.SnapshotId,
        VolumeId: volumeId,
        VolumeSize: record.snapshot.VolumeSize,
        State: record.snapshot.State,
        StartTime: record.snapshot.StartTime,
        Progress: record.snapshot.Progress,
        OwnerId: ACCOUNT_ID,
        Description: record.snapshot.Description,
        Encrypted: record.snapshot.Encrypted,
        Tags: record.snapshot.Tags,
      });
    }
    return { Snapshots: snapshots };
  }

  DescribeSnapshots(region: string, input: Input): Output {
    const ids = input.SnapshotIds as string[] | undefined;
    for (const owner of (input.OwnerIds as string[] | undefined) ?? []) {
      if (owner !== 'self' && owner !== ACCOUNT_ID && owner !== 'amazon') {
        throw new ApiError('InvalidUserID.Malformed', `Invalid user id: "${owner}"`);
      }
    }
    let items: Snapshot[] = ids?.length
      ? requireIds(
          ids,
          (id) => this.world.snapshotRecord(id, region).snapshot,
          'InvalidSnapshot.NotFound',
          'snapshot',
        )
      : [...this.world.snapshots.values()].filter((s) => s.region === region).map((s) => s.snapshot);
    if (
      (input.OwnerIds as string[] | undefined)?.includes('amazon') &&
      !(input.OwnerIds as string[]).includes('self')
    ) {
      items = [];
    }
    items = applyFilters(items, input.Filters as Filter[], (s, n) => {
      switch (n) {
        case 'snapshot-id':
          return [s.SnapshotId];
        case 'volume-id':
          return [s.VolumeId];
        case 'status':
          return [s.State];
        case 'owner-id':
          return [s.OwnerId];
        case 'description':
          return [s.Description];
        case 'volume-size':
          return [String(s.VolumeSize)];
        case 'encrypted':
          return [String(s.Encrypted)];
        default:
          return tagValues(s.Tags, n);
      }
    });
    const { page, next } = paginate(items, input, 5, 1000, Boolean(ids?.length));
    return { Snapshots: page.map((s) => ({ ...s })), NextToken: next };
  }

  DeleteSnapshot(region: string, input: Input): Output {
    const id = require(input.SnapshotId as string, 'SnapshotId');
    this.world.snapshotRecord(id, region);
    for (const image of this.world.images.values()) {
      if (image.image.State === 'deregistered') continue;
      if (image.image.BlockDeviceMappings?.some((m) => m.Ebs?.SnapshotId === id)) {
        throw new ApiError(
          'InvalidSnapshot.InUse',
          `The snapshot ${id} is currently in use by ${image.image.ImageId}`,
        );
      }
    }
    this.world.snapshots.delete(id);
    return { Return: true };
  }

  /**
   * CopySnapshot (EC2 API reference): the copy is made in the Region the request is sent to, from
   * SourceSnapshotId in SourceRegion, and starts pending.
   * - The source must be completed (a pending snapshot cannot be copied: IncorrectState).
   * - "Copies of encrypted snapshots are encrypted"; Encrypted=true encrypts a copy of an
   *   unencrypted one, and "You cannot set this parameter to false".
   * - "If KmsKeyId is specified, the encrypted state must be true"; without it the account's
   *   default EBS key of the destination Region is used.
   * - "Amazon Web Services authenticates the KMS key asynchronously. Therefore, if you specify an
   *   ID, alias, or ARN that is not valid, the action can appear to complete, but eventually
   *   fails": the key is checked when the copy would complete, and a copy whose key is unknown or
   *   not enabled by then ends in the error state.
   * - "Snapshots copies have an arbitrary source volume ID" (vol-ffffffff, as AWS shows it), and
   *   the source's tags are not copied: the copy has the TagSpecifications' tags only.
   * - At most CONCURRENT_COPIES copies pending in the destination Region; the next one is refused.
   * - PresignedUrl (emulator/presign.ts): one that does not authorise this copy, or none for an
   *   encrypted snapshot copied from another Region ("you must supply a pre-signed URL"), lets
   *   the copy start and fail asynchronously: it ends in `error` with the reason.
   */
  CopySnapshot(region: string, input: Input, context: RequestContext = {}): Output {
    const sourceRegion = require(input.SourceRegion as string | undefined, 'SourceRegion');
    const sourceId = require(input.SourceSnapshotId as string | undefined, 'SourceSnapshotId');
    if (!this.world.knowsRegion(sourceRegion)) {
      throw new ApiError(
        'InvalidParameterValue',
        `Value (${sourceRegion}) for parameter SourceRegion is invalid.`,
      );
    }
    const source = this.world.snapshotRecord(sourceId, sourceRegion);
    if (source.snapshot.State !== 'completed') {
      throw new ApiError('IncorrectState', `Snapshot ${sourceId} is not completed`);
    }
    const sourceEncrypted = source.snapshot.Encrypted === true;
    if (input.Encrypted === false && sourceEncrypted) {
      throw new ApiError(
        'InvalidParameterCombination',
        'Encrypted cannot be false for a copy of an encrypted snapshot',
      );
    }
    const kmsKeyId = input.KmsKeyId as string | undefined;
    if (kmsKeyId !== undefined && input.Encrypted !== true) {
      throw new ApiError(
        'InvalidParameterDependency',
        'The parameter KmsKeyId requires the parameter Encrypted to be set.',
      );
    }
    const tags = tagSpecs(input.TagSpecifications as TagSpecification[], 'snapshot');
    const inFlight = [...this.world.snapshots.values()].filter(
      (r) => r.region === region && r.copyOf !== undefined && r.snapshot.State === 'pending',
    ).length;
    if (inFlight >= CONCURRENT_COPIES) {
      throw new ApiError(
        'ResourceLimitExceeded',
        `You have exceeded the limit of ${CONCURRENT_COPIES} concurrent snapshot copies into ${region}.`,
      );
    }
    const failure =
      context.presignedUrlProblem ??
      (sourceEncrypted && sourceRegion !== region && input.PresignedUrl === undefined
        ? 'A PresignedUrl is required to copy an encrypted snapshot from another Region'
        : undefined);
    const encrypted = sourceEncrypted || input.Encrypted === true;
    const keyArn =
      kmsKeyId === undefined
        ? `arn:aws:kms:${region}:${ACCOUNT_ID}:alias/aws/ebs`
        : this.world.kmsKeyArn(region, kmsKeyId);
    const now = this.world.now();
    const snapshot = pendingSnapshot({
      volumeId: 'vol-ffffffff',
      sizeGiB: source.snapshot.VolumeSize,
      description: (input.Description as string | undefined) ?? '',
      encrypted,
      kmsKeyId: keyArn ?? kmsKeyId,
      tags,
      now,
    });
    this.world.snapshots.set(snapshot.SnapshotId, {
      region,
      snapshot,
      blocks: new Map(source.blocks),
      // Copies of one lineage's snapshots are incremental to each other in the destination.
      lineage: `${region}/${source.lineage}`,
      origin: 'ec2',
      readyAt: now + (this.world.options.copyPendingMs || this.world.options.pendingMs),
      startedAt: now,
      ...(encrypted && kmsKeyId !== undefined && { copyKey: kmsKeyId }),
      copyOf: `${sourceRegion}/${sourceId}`,
      ...(failure !== undefined && { failure }),
      ...(typeof input.PresignedUrl === 'string' && { presignedUrl: input.PresignedUrl }),
    });
    return { SnapshotId: snapshot.SnapshotId, Tags: tags };
  }

  CreateTags(region: string, input: Input): Output {
    const resources = require(input.Resources as string[] | undefined, 'ResourceId');
    const tags = require(input.Tags as Tag[] | undefined, 'Tag');
    tags.forEach(checkTag);
    const targets = resources.map((id) => this.taggable(region, id));
    for (const target of targets) checkTagCount(mergeTags(target.Tags, tags));
    for (const target of targets) target.Tags = mergeTags(target.Tags, tags);
    return { Return: true };
  }

  private taggable(region: string, id: string): { Tags?: Tag[] } {
    if (id.startsWith('snap-')) return this.world.snapshotRecord(id, region).snapshot;
    if (id.startsWith('vol-')) return this.world.volumeRecord(id, region).volume;
    if (id.startsWith('i-')) return this.world.instanceRecord(id, region).instance;
    if (id.startsWith('ami-')) return this.imageRecord(region, id).image;
    throw new ApiError('InvalidID', `The ID '${id}' is not valid`);
  }

  private imageRecord(region: string, id: string): { image: Image; readyAt: number } {
    const record = this.world.images.get(id);
    if (!record || record.region !== region || record.image.State === 'deregistered') {
      throw new ApiError('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
    }
    return record;
  }

  RegisterImage(region: string, input: Input): Output {
    const name = require(input.Name as string, 'Name');
    if (!/^[\w ().\-/'@[\]]{3,128}$/.test(name)) {
      throw new ApiError('InvalidAMIName.Malformed', `AMI name '${name}' is invalid`);
    }
    for (const other of this.world.images.values()) {
      if (other.region === region && other.image.Name === name && other.image.State !== 'deregistered') {
        throw new ApiError(
          'InvalidAMIName.Duplicate',
          `AMI name ${name} is already in use by AMI ${other.image.ImageId}`,
        );
      }
    }
    const mappings = require(input.BlockDeviceMappings as
      BlockDeviceMapping[] | undefined, 'BlockDeviceMapping');
    const root = require(input.RootDeviceName as string, 'RootDeviceName');
    for (const mapping of mappings) {
      const ebs = mapping.Ebs;
      if (!ebs) continue;
      if (ebs.SnapshotId !== undefined) {
        const snap = this.world.snapshotRecord(ebs.SnapshotId, region);
        if (snap.snapshot.State !== 'completed') {
          throw new ApiError('IncorrectState', `Snapshot ${ebs.SnapshotId} is not completed`);
        }
        if (ebs.VolumeSize !== undefined && ebs.VolumeSize < (snap.snapshot.VolumeSize ?? 0)) {
          throw new ApiError(
            'InvalidBlockDeviceMapping',
            `Volume of ${ebs.VolumeSize} GiB is smaller than snapshot ${ebs.SnapshotId}`,
          );
        }
      }
      const mappedSize =
        ebs.VolumeSize ??
        (ebs.SnapshotId !== undefined
          ? this.world.snapshotRecord(ebs.SnapshotId, region).snapshot.VolumeSize
          : undefined);
      this.checkVolumeSpec(ebs.VolumeType, ebs.Iops, ebs.Throughput, mappedSize);
    }
    if (!mappings.some((m) => m.DeviceName === root && m.Ebs?.SnapshotId)) {
      throw new ApiError(
        'InvalidBlockDeviceMapping',
        `The root device ${root} has no snapshot in the block device mappings`,
      );
    }
    // RegisterImage (EC2 API reference), TpmSupport, and the NitroTPM prerequisites: TPM v2.0
    // needs an AMI that boots UEFI.
    if (input.TpmSupport === 'v2.0' && input.BootMode !== 'uefi' && input.BootMode !== 'uefi-preferred') {
      throw new ApiError('InvalidParameterCombination', 'TpmSupport v2.0 requires BootMode uefi.');
    }
    const image: Image = {
      ImageId: newId('ami'),
      Name: name,
      Description: input.Description as string | undefined,
      Architecture: (input.Architecture as Image['Architecture']) ?? 'x86_64',
      RootDeviceName: root,
      RootDeviceType: 'ebs',
      VirtualizationType: (input.VirtualizationType as Image['VirtualizationType']) ?? 'hvm',
      EnaSupport: input.EnaSupport as boolean | undefined,
      SriovNetSupport: input.SriovNetSupport as string | undefined,
      BootMode: input.BootMode as Image['BootMode'],
      TpmSupport: input.TpmSupport as Image['TpmSupport'],
      ImdsSupport: input.ImdsSupport as Image['ImdsSupport'],
      BlockDeviceMappings: mappings,
      State: 'pending',
      OwnerId: ACCOUNT_ID,
      CreationDate: new Date().toISOString(),
      ImageType: 'machine',
      Public: false,
      Tags: tagSpecs(input.TagSpecifications as TagSpecification[], 'image'),
    };
    // RegisterImage (EC2 API reference), UefiData: the base64 UEFI variable store, "Length
    // Constraints: Maximum length of 64000".
    const uefiData = input.UefiData as string | undefined;
    if (
      uefiData !== undefined &&
      (uefiData.length > UEFI_DATA_MAX || !/^[A-Za-z0-9+/]*={0,2}$/.test(uefiData))
    ) {
      throw new ApiError(
        'InvalidParameterValue',
        `UefiData must be base64 of at most ${UEFI_DATA_MAX} characters.`,
      );
    }
    this.world.images.set(image.ImageId!, {
      region,
      image,
      readyAt: this.world.now() + this.world.options.pendingMs,
      ...(uefiData !== undefined && { uefiData }),
    });
    return { ImageId: image.ImageId };
  }

  DescribeImages(region: string, input: Input): Output {
    const ids = input.ImageIds as string[] | undefined;
    let items = ids?.length
      ? requireIds(ids, (id) => this.imageRecord(region, id).image, 'InvalidAMIID.NotFound', 'image id')
      : [...this.world.images.values()]
          .filter((i) => i.region === region && i.image.State !== 'deregistered')
          .map((i) => i.image);
    items = applyFilters(items, input.Filters as Filter[], (i, n) => {
      switch (n) {
        case 'image-id':
          return [i.ImageId];
        case 'name':
          return [i.Name];
        case 'state':
          return [i.State];
        default:
          return tagValues(i.Tags, n);
      }
    });
    const { page, next } = paginate(items, input, 5, 1000, Boolean(ids?.length));
    return { Images: page, NextToken: next };
  }

  DeregisterImage(region: string, input: Input): Output {
    const record = this.imageRecord(region, require(input.ImageId as string, 'ImageId'));
    record.image.State = 'deregistered';
    return { Return: true };
  }

  /**
   * DeleteVolume (EC2 API reference): "The volume must be in the available state (not attached
   * to an instance)"; an attached one is VolumeInUse.
   */
  DeleteVolume(region: string, input: Input): Output {
    const id = require(input.VolumeId as string | undefined, 'VolumeId');
    const record = this.world.volumeRecord(id, region);
    if (record.volume.State !== 'available')
      throw new ApiError(
        'VolumeInUse',
        `Volume ${id} is currently attached to ${record.volume.Attachments?.[0]?.InstanceId ?? 'an instance'}`,
      );
    this.world.volumes.delete(id);
    return {};
  }

  private checkVolumeSpec(
    type: string | undefined,
    iops: number | undefined,
    throughput: number | undefined,
    sizeGiB?: number,
  ): void {
    checkVolumeSpec(type, iops, throughput, sizeGiB);
  }

  CreateVolume(region: string, input: Input): Output {
    // Ensuring idempotency in Amazon EC2 API requests (EC2 developer guide): CreateVolume takes a
    // client token; a repeat with the same parameters returns the volume, other parameters fail.
    const clientToken = input.ClientToken as string | undefined;
    const fingerprint = JSON.stringify({ ...input, ClientToken: undefined });
    if (clientToken !== undefined) {
      const earlier = [...this.world.volumes.values()].find(
        (r) => r.region === region && r.clientToken === clientToken,
      );
      if (earlier) {
        if (earlier.requestFingerprint !== fingerprint) {
          throw new ApiError(
            'IdempotentParameterMismatch',
            'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
          );
        }
        return { ...earlier.volume };
      }
    }
    const zone = require(input.AvailabilityZone as string, 'AvailabilityZone');
    const snapshotId = input.SnapshotId as string | undefined;
    const snap = snapshotId !== undefined ? this.world.snapshotRecord(snapshotId, region) : undefined;
    if (snap && snap.snapshot.State !== 'completed') {
      throw new ApiError('IncorrectState', `Snapshot ${snapshotId} is not completed`);
    }
    const size = (input.Size as number | undefined) ?? snap?.snapshot.VolumeSize;
    if (size === undefined)
      throw new ApiError('MissingParameter', 'The request must contain the parameter size or snapshotId');
    if (snap && size < (snap.snapshot.VolumeSize ?? 0)) {
      throw new ApiError(
        'InvalidParameterValue',
        `Volume of ${size} GiB is smaller than snapshot ${snapshotId}`,
      );
    }
    const type = (input.VolumeType as string | undefined) ?? 'gp2';
    this.checkVolumeSpec(
      type,
      input.Iops as number | undefined,
      input.Throughput as number | undefined,
      size,
    );
    // "Encryption by default" (EBS user guide): with it on, every new volume is encrypted, one
    // from an unencrypted snapshot too, with the default key unless the request names one.
    const byDefault = this.world.region(region).encryptionByDefault;
    const encrypted = Boolean(input.Encrypted) || Boolean(snap?.snapshot.Encrypted) || byDefault;
    const kmsKeyId =
      (input.KmsKeyId as string | undefined) ??
      (snap?.snapshot.Encrypted === true ? snap.snapshot.KmsKeyId : undefined) ??
      (encrypted ? `arn:aws:kms:${region}:${ACCOUNT_ID}:alias/aws/ebs` : undefined);
    const record = this.world.createVolume(
      region,
      zone,
      size,
      type,
      {
        SnapshotId: snapshotId ?? '',
        Encrypted: encrypted,
        ...(encrypted && kmsKeyId !== undefined && { KmsKeyId: kmsKeyId }),
        ...(input.Iops !== undefined && { Iops: input.Iops as number }),
        ...(input.Throughput !== undefined && { Throughput: input.Throughput as number }),
        Tags: tagSpecs(input.TagSpecifications as TagSpecification[], 'volume'),
      },
      new Map(snap?.blocks ?? []),
    );
    if (clientToken !== undefined) Object.assign(record, { clientToken, requestFingerprint: fingerprint });
    return { ...record.volume };
  }

  RunInstances(region: string, input: Input): Output {
    // Ensuring idempotency in Amazon EC2 API requests (EC2 developer guide), RunInstances: a repeat
    // with the same client token and parameters returns the original launch and launches nothing;
    // the same token with other parameters (besides region and zone) is IdempotentParameterMismatch.
    const clientToken = input.ClientToken as string | undefined;
    const fingerprint = JSON.stringify({ ...input, ClientToken: undefined, Placement: undefined });
    if (clientToken !== undefined) {
      const earlier = [...this.world.instances.values()].find(
        (r) => r.region === region && r.instance.ClientToken === clientToken,
      );
      if (earlier) {
        if (earlier.requestFingerprint !== fingerprint) {
          throw new ApiError(
            'IdempotentParameterMismatch',
            'Arguments on this idempotent request are inconsistent with arguments used in previous request(s).',
          );
        }
        return { ReservationId: newId('r'), OwnerId: ACCOUNT_ID, Groups: [], Instances: [earlier.instance] };
      }
    }
    const imageId = require(input.ImageId as string, 'ImageId');
    const image = this.imageRecord(region, imageId).image;
    if (image.State !== 'available')
      throw new ApiError('IncorrectInstanceState', `Image ${imageId} is not available`);
    if (input.MinCount !== 1 || input.MaxCount !== 1) {
      throw new ApiError(
        'InvalidParameterValue',
        'The emulator launches exactly one instance (MinCount=MaxCount=1)',
      );
    }
    const placement = (input.Placement as Input | undefined) ?? {};
    const instanceType = (input.InstanceType as string | undefined) ?? 'm1.small';
    const typeInfo = INSTANCE_TYPES.get(instanceType);
    // RunInstances (EC2 API reference): InstanceType must be a type EC2 offers.
    if (typeInfo === undefined) {
      throw new ApiError('InvalidParameterValue', `Invalid value '${instanceType}' for InstanceType.`);
    }
    const regionRecord = this.world.region(region);
    const interfaceSpecs = this.interfaceSpecs(region, input, regionRecord.vpcId, placement);
    const primarySubnet = this.world.subnets.get(interfaceSpecs[0]?.subnetId ?? '');
    const zoneName = primarySubnet?.subnet.AvailabilityZone ?? regionRecord.zones[0]!.ZoneName;
    if (placement.AvailabilityZone !== undefined && placement.AvailabilityZone !== zoneName) {
      throw new ApiError(
        'InvalidParameterCombination',
        `Subnet ${primarySubnet?.subnet.SubnetId} is not in availability zone ${String(placement.AvailabilityZone)}`,
      );
    }
    const zone = this.world.zone(region, zoneName);
    const vpcId = primarySubnet?.subnet.VpcId ?? regionRecord.vpcId;
    // "Network interfaces" (EC2 user guide): the interfaces of an instance are all in its zone, and
    // the type limits how many it has and how many addresses each holds (DescribeInstanceTypes).
    const maxInterfaces = typeInfo.NetworkInfo?.MaximumNetworkInterfaces ?? 1;
    if (interfaceSpecs.length > maxInterfaces) {
      throw new ApiError(
        'InvalidParameterValue',
        `The maximum number of network interfaces for instance type ${instanceType} is ${maxInterfaces}.`,
      );
    }
    const perInterface = typeInfo.NetworkInfo?.Ipv4AddressesPerInterface ?? 1;
    for (const spec of interfaceSpecs) {
      const subnet = this.world.subnets.get(spec.subnetId)?.subnet;
      if (subnet?.AvailabilityZone !== zoneName) {
        throw new ApiError(
          'InvalidParameterCombination',
          `Network interface subnet ${spec.subnetId} is not in the availability zone ${zoneName} of the instance.`,
        );
      }
      if (Math.max(spec.privateIps?.length ?? 0, 1) + (spec.secondaryCount ?? 0) > perInterface) {
        throw new ApiError(
          'InvalidParameterValue',
          `The maximum number of private IP addresses per network interface for ${instanceType} is ${perInterface}.`,
        );
      }
      for (const id of spec.groupIds) {
        const g = this.world.securityGroups.get(id);
        if (!g || g.region !== region)
          throw new ApiError('InvalidGroup.NotFound', `The security group '${id}' does not exist`);
        if (g.group.VpcId !== subnet.VpcId) {
          throw new ApiError(
            'InvalidParameter',
            `Security group ${id} and subnet ${spec.subnetId} belong to different networks.`,
          );
        }
      }
    }
    const keyName = input.KeyName as string | undefined;
    if (keyName !== undefined && !regionRecord.keyPairs.has(keyName)) {
      throw new ApiError('InvalidKeyPair.NotFound', `The key pair '${keyName}' does not exist`);
    }
    const groupName = placement.GroupName as string | undefined;
    const partition = placement.PartitionNumber as number | undefined;
    if (groupName !== undefined && groupName !== '') {
      const group = regionRecord.placementGroups.get(groupName);
      if (!group)
        throw new ApiError('InvalidPlacementGroup.Unknown', `The Placement Group '${groupName}' is unknown.`);
      if (
        partition !== undefined &&
        (group.strategy !== 'partition' || partition < 1 || partition > (group.partitionCount ?? 0))
      ) {
        throw new ApiError(
          'InvalidParameterValue',
          `Partition number ${partition} is not valid for placement group ${groupName}`,
        );
      }
    } else if (partition !== undefined) {
      throw new ApiError('InvalidParameterCombination', 'PartitionNumber needs a placement GroupName');
    }
    // RunInstances (EC2 API reference), IamInstanceProfile: the profile must exist, and passing its
    // role needs iam:PassRole ("Grant a user permission to pass an IAM role to an instance", IAM
    // user guide); EC2 answers UnauthorizedOperation without it.
    const profile = input.IamInstanceProfile as { Arn?: string; Name?: string } | undefined;
    let profileArn: string | undefined;
    if (profile !== undefined) {
      profileArn =
        profile.Arn !== undefined
          ? this.world.instanceProfiles.has(profile.Arn)
            ? profile.Arn
            : undefined
          : [...this.world.instanceProfiles].find(([, name]) => name === profile.Name)?.[0];
      if (profileArn === undefined) {
        throw new ApiError(
          'InvalidParameterValue',
          `Value (${profile.Arn ?? profile.Name ?? ''}) for parameter iamInstanceProfile.${profile.Arn !== undefined ? 'arn' : 'name'} is invalid. Invalid IAM Instance Profile ${profile.Arn !== undefined ? 'ARN' : 'name'}`,
        );
      }
      // iam:PassRole is refused by the server before this runs, a dry run included.
    }
    // DescribeInstanceTypeOfferings (EC2 API reference) lists the types each zone offers; a launch
    // of another is refused with Unsupported ("Troubleshoot Amazon EC2 instance launch issues").
    if (this.world.unoffered.has(`${region}|${zoneName}|${instanceType}`)) {
      const others = regionRecord.zones
        .map((z) => z.ZoneName)
        .filter((z) => z !== zoneName && !this.world.unoffered.has(`${region}|${z}|${instanceType}`));
      throw new ApiError(
        'Unsupported',
        `Your requested instance type (${instanceType}) is not supported in your requested Availability Zone (${zoneName}). Please retry your request by not specifying an Availability Zone or choosing ${others.join(', ')}.`,
      );
    }
    // The AMI's architecture and boot mode must be ones the type supports (RunInstances; "Boot
    // modes" in the EC2 user guide).
    const architectures: string[] = typeInfo.ProcessorInfo?.SupportedArchitectures ?? [];
    if (image.Architecture !== undefined && !architectures.includes(image.Architecture)) {
      throw new ApiError(
        'InvalidParameterValue',
        `The architecture '${architectures.join(', ')}' of the specified instance type does not match the architecture '${image.Architecture}' of the specified AMI.`,
      );
    }
    const bootModes: string[] = typeInfo.SupportedBootModes ?? [];
    // uefi-preferred (RegisterImage, BootMode) boots UEFI where the type supports it, else legacy BIOS.
    if (
      image.BootMode !== undefined &&
      image.BootMode !== 'uefi-preferred' &&
      !bootModes.includes(image.BootMode)
    ) {
      throw new ApiError(
        'InvalidParameterValue',
        `The instance type ${instanceType} does not support the boot mode ${image.BootMode} of the AMI.`,
      );
    }
    // CPU options (EC2 user guide, "Specify CPU options"): not for bare-metal types; core count
    // and threads per core go together, each among the type's valid values.
    const cpu = input.CpuOptions as { CoreCount?: number; ThreadsPerCore?: number } | undefined;
    if (cpu !== undefined) {
      if (typeInfo.BareMetal) {
        throw new ApiError(
          'InvalidParameterCombination',
          `CPU options are not supported for the bare metal instance type ${instanceType}.`,
        );
      }
      if ((cpu.CoreCount === undefined) !== (cpu.ThreadsPerCore === undefined)) {
        throw new ApiError(
          'InvalidParameterCombination',
          'CoreCount and ThreadsPerCore must be specified together.',
        );
      }
      const v = typeInfo.VCpuInfo;
      if (
        (cpu.CoreCount !== undefined && !(v?.ValidCores ?? []).includes(cpu.CoreCount)) ||
        (cpu.ThreadsPerCore !== undefined && !(v?.ValidThreadsPerCore ?? []).includes(cpu.ThreadsPerCore))
      ) {
        throw new ApiError('InvalidCpuOptions', `The CPU options are not valid for ${instanceType}.`);
      }
    }
    if (input.EbsOptimized === true && typeInfo.EbsInfo?.EbsOptimizedSupport === 'unsupported') {
      throw new ApiError(
        'InvalidParameterCombination',
        `EBS-optimized instances are not supported for ${instanceType}.`,
      );
    }
    if (image.EnaSupport === true && typeInfo.NetworkInfo?.EnaSupport === 'unsupported') {
      throw new ApiError(
        'InvalidParameterCombination',
        `Enhanced networking with ENA is not supported for ${instanceType}.`,
      );
    }
    // "Enhanced networking with ENA" (EC2 user guide): current-generation types require an AMI with
    // the ENA attribute set.
    if (image.EnaSupport !== true && typeInfo.NetworkInfo?.EnaSupport === 'required') {
      throw new ApiError(
        'InvalidParameterCombination',
        `Enhanced networking with the Elastic Network Adapter (ENA) is required for the '${instanceType}' instance type. Ensure that you are using an AMI that is enabled for ENA.`,
      );
    }
    const credits = (input.CreditSpecification as { CpuCredits?: string } | undefined)?.CpuCredits;
    // RunInstances, CreditSpecification: "Only supported for burstable performance instances".
    if (credits !== undefined && typeInfo.BurstablePerformanceSupported !== true) {
      throw new ApiError(
        'InvalidParameterCombination',
        `The instance type ${instanceType} does not support CPU credits: only burstable performance instances do.`,
      );
    }
    const hibernation =
      (input.HibernationOptions as { Configured?: boolean } | undefined)?.Configured === true;
    const enclave = (input.EnclaveOptions as { Enabled?: boolean } | undefined)?.Enabled === true;
    // "Hibernation prerequisites" (EC2 user guide): a type that supports it and an encrypted root
    // volume; "Nitro Enclaves" (its user guide): a type that supports enclaves, and not together
    // with hibernation.
    if (hibernation && enclave) {
      throw new ApiError(
        'InvalidParameterCombination',
        'Hibernation and Nitro Enclaves cannot both be enabled.',
      );
    }
    if (hibernation) {
      const root = image.BlockDeviceMappings?.find((m) => m.DeviceName === image.RootDeviceName)?.Ebs;
      const encrypted =
        root?.Encrypted === true ||
        (root?.SnapshotId !== undefined &&
          this.world.snapshots.get(root.SnapshotId)?.snapshot.Encrypted === true);
      if (typeInfo.HibernationSupported !== true || !encrypted) {
        throw new ApiError(
          'UnsupportedHibernationConfiguration',
          `Hibernation needs an instance type that supports it and an encrypted root volume (${instanceType}).`,
        );
      }
    }
    if (enclave && typeInfo.NitroEnclavesSupport !== 'supported') {
      throw new ApiError('UnsupportedOperation', `Nitro Enclaves are not supported for ${instanceType}.`);
    }
    // A test's capacity fault: "Insufficient instance capacity" (EC2 user guide), a server error.
    if (this.world.noCapacity.has(`${region}|${zoneName}`)) {
      const others = regionRecord.zones.map((z) => z.ZoneName).filter((z) => z !== zoneName);
      throw new ApiError(
        'InsufficientInstanceCapacity',
        `We currently do not have sufficient ${instanceType} capacity in the Availability Zone you requested (${zoneName}). Our system will be working on provisioning additional capacity. You can currently get ${instanceType} capacity by not specifying an Availability Zone in your request or choosing ${others.join(', ')}.`,
        500,
      );
    }
    const instanceId = newId('i');
    // Interfaces last: a refused launch takes no address.
    const interfaces: InterfaceRecord[] = [];
    try {
      for (const [deviceIndex, spec] of interfaceSpecs.entries()) {
        const eni = createInterface(this.world, region, spec);
        eni.attachment = { instanceId, deviceIndex, deleteOnTermination: true };
        interfaces.push(eni);
      }
    } catch (err) {
      for (const eni of interfaces) this.world.interfaces.delete(eni.networkInterfaceId);
      throw err;
    }
    const now = new Date();
    const volumeTags = tagSpecs(input.TagSpecifications as TagSpecification[], 'volume');
    const overrides = new Map(
      ((input.BlockDeviceMappings as BlockDeviceMapping[] | undefined) ?? []).map((m) => [m.DeviceName, m]),
    );
    const mappings: InstanceBlockDeviceMapping[] = [];
    const imageMappings = image.BlockDeviceMappings ?? [];
    const dropped =
      this.world.options.launchDropsVolume === 1 && imageMappings.length > 1
        ? imageMappings.at(-1)
        : undefined;
    for (const mapping of imageMappings) {
      const ebs = { ...mapping.Ebs, ...overrides.get(mapping.DeviceName)?.Ebs };
      if (!mapping.Ebs || mapping === dropped) continue;
      const volume = this.CreateVolume(region, {
        AvailabilityZone: zoneName,
        SnapshotId: ebs.SnapshotId,
        Size: ebs.VolumeSize,
        VolumeType: ebs.VolumeType,
        Iops: ebs.Iops,
        Throughput: ebs.Throughput,
        Encrypted: ebs.Encrypted,
        KmsKeyId: ebs.KmsKeyId,
      }) as Volume;
      const record = this.world.volumeRecord(volume.VolumeId!, region);
      record.volume.State = 'in-use';
      record.volume.Tags = [...volumeTags];
      const deleteOnTermination = ebs.DeleteOnTermination ?? true;
      record.volume.Attachments = [
        {
          VolumeId: volume.VolumeId,
          InstanceId: instanceId,
          Device: mapping.DeviceName,
          State: 'attached',
          AttachTime: now,
          DeleteOnTermination: deleteOnTermination,
        },
      ];
      mappings.push({
        DeviceName: mapping.DeviceName,
        Ebs: {
          VolumeId: volume.VolumeId,
          Status: 'attached',
          AttachTime: now,
          DeleteOnTermination: deleteOnTermination,
        },
      });
    }
    const metadata = (input.MetadataOptions as Input | undefined) ?? {};
    const defaults = typeDefaults(typeInfo);
    const primary = interfaces[0];
    const instance: Instance = {
      InstanceId: instanceId,
      ImageId: imageId,
      InstanceType: instanceType as Instance['InstanceType'],
      State: { Code: 0, Name: 'pending' },
      LaunchTime: now,
      Placement: {
        AvailabilityZone: zone.ZoneName,
        AvailabilityZoneId: zone.ZoneId,
        GroupName: (placement.GroupName as string | undefined) ?? '',
        ...(placement.PartitionNumber !== undefined && {
          PartitionNumber: placement.PartitionNumber as number,
        }),
        Tenancy: (placement.Tenancy as 'default' | 'dedicated' | 'host' | undefined) ?? 'default',
      },
      SubnetId: primary?.subnetId,
      VpcId: vpcId,
      SecurityGroups: (primary?.groupIds ?? []).map((id) => ({
        GroupId: id,
        GroupName: this.world.securityGroups.get(id)?.group.GroupName,
      })),
      KeyName: keyName,
      Architecture: image.Architecture,
      RootDeviceName: image.RootDeviceName,
      RootDeviceType: 'ebs',
      VirtualizationType: image.VirtualizationType,
      EnaSupport: image.EnaSupport,
      SriovNetSupport: image.SriovNetSupport,
      BootMode: image.BootMode,
      CurrentInstanceBootMode:
        image.BootMode === 'uefi' || (image.BootMode === 'uefi-preferred' && bootModes.includes('uefi'))
          ? 'uefi'
          : 'legacy-bios',
      TpmSupport: image.TpmSupport,
      EbsOptimized: (input.EbsOptimized as boolean | undefined) ?? defaults.EbsOptimized,
      BlockDeviceMappings: mappings,
      ...(profileArn !== undefined && {
        IamInstanceProfile: { Arn: profileArn, Id: 'AIPA' + newId('x').slice(2, 18).toUpperCase() },
      }),
      MetadataOptions: {
        State: 'applied',
        HttpTokens: (metadata.HttpTokens as 'optional' | 'required' | undefined) ?? 'required',
        HttpPutResponseHopLimit: (metadata.HttpPutResponseHopLimit as number | undefined) ?? 2,
        HttpEndpoint: (metadata.HttpEndpoint as 'enabled' | 'disabled' | undefined) ?? 'enabled',
        HttpProtocolIpv6: (metadata.HttpProtocolIpv6 as 'enabled' | 'disabled' | undefined) ?? 'disabled',
        InstanceMetadataTags:
          (metadata.InstanceMetadataTags as 'enabled' | 'disabled' | undefined) ?? 'disabled',
      },
      // DescribeInstances shows the CPU options of every instance: those asked for, else the type's.
      CpuOptions: cpu ?? defaults.CpuOptions,
      HibernationOptions: { Configured: hibernation },
      EnclaveOptions: { Enabled: enclave },
      Tags: tagSpecs(input.TagSpecifications as TagSpecification[], 'instance'),
      ...(clientToken !== undefined && { ClientToken: clientToken }),
    };
    const shutdown = input.InstanceInitiatedShutdownBehavior as 'stop' | 'terminate' | undefined;
    const rootVolume = mappings.find((m) => m.DeviceName === image.RootDeviceName)?.Ebs?.VolumeId;
    const rootBlocks = rootVolume === undefined ? undefined : this.world.volumes.get(rootVolume)?.blocks;
    this.world.instances.set(instanceId, {
      region,
      instance,
      bootable: rootBlocks !== undefined && !this.world.unbootable.has(contentDigest(rootBlocks).digest),
      userData: input.UserData as string | undefined,
      readyAt: this.world.now() + this.world.options.pendingMs,
      requestFingerprint: fingerprint,
      interfaceIds: interfaces.map((i) => i.networkInterfaceId),
      disableApiTermination: input.DisableApiTermination === true,
      shutdownBehavior: shutdown ?? 'stop',
      ...(typeInfo.BurstablePerformanceSupported === true && {
        // "Burstable performance instances" (EC2 user guide): T2 launches standard, T3 unlimited.
        cpuCredits:
          (credits as 'standard' | 'unlimited' | undefined) ??
          (instanceType.startsWith('t2.') ? 'standard' : 'unlimited'),
      }),
    });
    return {
      ReservationId: newId('r'),
      OwnerId: ACCOUNT_ID,
      Groups: [],
      Instances: [this.shown(this.world.instanceRecord(instanceId, region))],
    };
  }

  /**
   * TerminateInstances (EC2 API reference): idempotent, so an instance already terminated answers
   * again; one with termination protection (DisableApiTermination) is OperationNotPermitted and
   * then nothing of the request is terminated. The instance is shutting-down, then terminated;
   * its EBS volumes with DeleteOnTermination are deleted, the others detached ("Terminate Amazon
   * EC2 instances", EC2 user guide).
   */
  TerminateInstances(region: string, input: Input): Output {
    const ids = require(input.InstanceIds as string[] | undefined, 'InstanceIds');
    const records = ids.map((id) => {
      const record = this.world.instances.get(id);
      if (!record || record.region !== region)
        throw new ApiError('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
      if (record.disableApiTermination)
        throw new ApiError(
          'OperationNotPermitted',
          `The instance '${id}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.`,
        );
      return record;
    });
    return {
      TerminatingInstances: records.map((record) => {
        const previous = record.instance.State;
        if (previous?.Name !== 'terminated' && previous?.Name !== 'shutting-down') {
          record.instance.State = { Code: 32, Name: 'shutting-down' };
          record.readyAt = this.world.now() + this.world.options.pendingMs;
          this.world.releaseInstance(record);
        }
        return {
          InstanceId: record.instance.InstanceId,
          PreviousState: previous,
          CurrentState: record.instance.State,
        };
      }),
    };
  }

  /**
   * DescribeInstanceStatus (EC2 API reference): running instances only, unless IncludeAllInstances.
   * The status checks (InstanceStatusSummary: ok | impaired | insufficient-data | not-applicable |
   * initializing; InstanceStatusDetails `reachability`: passed | failed | initializing) start
   * when the instance runs and report after statusChecksMs; an instance whose root volume does
   * not boot fails the instance check, while the system check passes (the host is healthy).
   */
  DescribeInstanceStatus(region: string, input: Input): Output {
    const ids = input.InstanceIds as string[] | undefined;
    const all = input.IncludeAllInstances === true;
    const records = ids?.length
      ? requireIds(
          ids,
          (id) => this.world.instanceRecord(id, region),
          'InvalidInstanceID.NotFound',
          'instance ID',
        )
      : [...this.world.instances.values()].filter((r) => r.region === region);
    const now = this.world.now();
    const statuses = records
      .filter((r) => all || r.instance.State?.Name === 'running')
      .map((r) => {
        const running = r.instance.State?.Name === 'running';
        const reported = running && now >= r.readyAt + this.world.options.statusChecksMs;
        const summary = (passes: boolean) =>
          !running
            ? { Status: 'not-applicable' }
            : !reported
              ? { Status: 'initializing', Details: [{ Name: 'reachability', Status: 'initializing' }] }
              : passes
                ? { Status: 'ok', Details: [{ Name: 'reachability', Status: 'passed' }] }
                : {
                    Status: 'impaired',
                    Details: [
                      {
                        Name: 'reachability',
                        Status: 'failed',
                        ImpairedSince: new Date(r.readyAt + this.world.options.statusChecksMs),
                      },
                    ],
                  };
        return {
          InstanceId: r.instance.InstanceId,
          AvailabilityZone: r.instance.Placement?.AvailabilityZone,
          InstanceState: r.instance.State,
          SystemStatus: summary(true),
          InstanceStatus: summary(r.bootable),
        };
      });
    return { InstanceStatuses: statuses };
  }

  /**
   * GetConsoleOutput (EC2 API reference): the console output, base64-encoded, with the time it
   * was last updated; an instance that has not run yet has none. The emulator's console shows a
   * boot that reaches a login prompt, or, for an unbootable root volume, one that stops at a panic.
   */
  GetConsoleOutput(region: string, input: Input): Output {
    const id = require(input.InstanceId as string | undefined, 'InstanceId');
    const record = this.world.instanceRecord(id, region);
    if (record.instance.State?.Name === 'pending') return { InstanceId: id };
    const lines = [
      '[    0.000000] Linux version 6.1.0 (emulator)',
      `[    0.412000] Booting on ${String(record.instance.InstanceType)}`,
      ...(record.bootable
        ? ['[    2.100000] EXT4-fs (nvme0n1p1): mounted filesystem', '', `${id} login: `]
        : [
            '[    2.100000] VFS: Cannot open root device "nvme0n1p1" or unknown-block(0,0): error -6',
            '[    2.100400] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)',
          ]),
    ];
    return {
      InstanceId: id,
      Timestamp: new Date(record.readyAt),
      Output: Buffer.from(lines.join('\n')).toString('base64'),
    };
  }

  /**
   * The interfaces a launch asks for: NetworkInterfaces, or the instance-level SubnetId,
   * SecurityGroupIds and PrivateIpAddress (one interface); never both (RunInstances).
   */
  private interfaceSpecs(region: string, input: Input, vpcId: string, placement: Input): InterfaceSpec[] {
    const subnetOf = (id: string | undefined): string => {
      if (id !== undefined) {
        const subnet = this.world.subnets.get(id);
        if (!subnet || subnet.region !== region)
          throw new ApiError('InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist`);
        return id;
      }
      // No subnet: the default VPC's subnet in the zone asked for, else the region's first zone.
      const zoneName =
        (placement.AvailabilityZone as string | undefined) ?? this.world.region(region).zones[0]!.ZoneName;
      this.world.zone(region, zoneName);
      const found = [...this.world.subnets.values()].find(
        (s) => s.region === region && s.subnet.VpcId === vpcId && s.subnet.AvailabilityZone === zoneName,
      );
      if (!found) throw new ApiError('InvalidSubnetID.NotFound', `No default subnet in ${zoneName}`);
      return found.subnet.SubnetId!;
    };
    const defaultGroups = (subnetId: string): string[] => {
      const vpc = this.world.subnets.get(subnetId)?.subnet.VpcId;
      const group = [...this.world.securityGroups.values()].find(
        (g) => g.region === region && g.group.VpcId === vpc && g.group.GroupName === 'default',
      );
      return group ? [group.group.GroupId!] : [];
    };
    const specs = input.NetworkInterfaces as
      | {
          DeviceIndex?: number;
          SubnetId?: string;
          Groups?: string[];
          PrivateIpAddress?: string;
          PrivateIpAddresses?: { PrivateIpAddress?: string; Primary?: boolean }[];
          SecondaryPrivateIpAddressCount?: number;
          Description?: string;
        }[]
      | undefined;
    if (specs === undefined) {
      const subnetId = subnetOf(input.SubnetId as string | undefined);
      const groups = (input.SecurityGroupIds as string[] | undefined) ?? defaultGroups(subnetId);
      const ip = input.PrivateIpAddress as string | undefined;
      return [{ subnetId, groupIds: groups, ...(ip !== undefined && { privateIps: [ip] }) }];
    }
    if (
      input.SubnetId !== undefined ||
      input.SecurityGroupIds !== undefined ||
      input.PrivateIpAddress !== undefined
    ) {
      throw new ApiError(
        'InvalidParameterCombination',
        'Network interfaces and an instance-level subnet ID, security groups or private IP address may not be specified on the same request',
      );
    }
    const byIndex = [...specs].sort((a, b) => (a.DeviceIndex ?? -1) - (b.DeviceIndex ?? -1));
    if (byIndex.some((spec, n) => spec.DeviceIndex !== n)) {
      throw new ApiError(
        'InvalidParameterValue',
        'Network interface device indexes must start at 0 and have no gaps',
      );
    }
    return byIndex.map((spec) => {
      const subnetId = subnetOf(spec.SubnetId);
      const listed = (spec.PrivateIpAddresses ?? [])
        .slice()
        .sort((a, b) => Number(b.Primary === true) - Number(a.Primary === true))
        .flatMap((a) => (a.PrivateIpAddress === undefined ? [] : [a.PrivateIpAddress]));
      const ips =
        spec.PrivateIpAddress !== undefined
          ? [spec.PrivateIpAddress, ...listed.filter((ip) => ip !== spec.PrivateIpAddress)]
          : listed;
      return {
        subnetId,
        groupIds: spec.Groups ?? defaultGroups(subnetId),
        ...(ips.length > 0 && { privateIps: ips }),
        ...(spec.SecondaryPrivateIpAddressCount !== undefined && {
          secondaryCount: spec.SecondaryPrivateIpAddressCount,
        }),
        ...(spec.Description !== undefined && { description: spec.Description }),
      };
    });
  }

  /**
   * DescribeInstanceTypeOfferings (EC2 API reference): the types offered in the region, or in
   * each zone (LocationType availability-zone), with the instance-type and location filters.
   */
  DescribeInstanceTypeOfferings(region: string, input: Input): Output {
    const byZone = input.LocationType === 'availability-zone';
    const offerings = [...INSTANCE_TYPES.keys()].flatMap((type) =>
      byZone
        ? this.world
            .region(region)
            .zones.filter((z) => !this.world.unoffered.has(`${region}|${z.ZoneName}|${type}`))
            .map((z) => ({ InstanceType: type, LocationType: 'availability-zone', Location: z.ZoneName }))
        : [{ InstanceType: type, LocationType: 'region', Location: region }],
    );
    const items = applyFilters(offerings, input.Filters as Filter[], (o, n) =>
      n === 'instance-type' ? [o.InstanceType] : n === 'location' ? [o.Location] : undefined,
    );
    return { InstanceTypeOfferings: items };
  }

  /** DescribeNetworkInterfaces (EC2 API reference), with the filters a restore uses. */
  DescribeNetworkInterfaces(region: string, input: Input): Output {
    const all = [...this.world.interfaces.values()].filter((i) => i.region === region);
    const ids = input.NetworkInterfaceIds as string[] | undefined;
    let items = ids?.length
      ? requireIds(
          ids,
          (id) => all.find((i) => i.networkInterfaceId === id),
          'InvalidNetworkInterfaceID.NotFound',
          'network interface',
        )
      : all;
    items = applyFilters(items, input.Filters as Filter[], (i, n) => {
      switch (n) {
        case 'network-interface-id':
          return [i.networkInterfaceId];
        case 'subnet-id':
          return [i.subnetId];
        case 'vpc-id':
          return [i.vpcId];
        case 'private-ip-address':
        case 'addresses.private-ip-address':
          // applyFilters checks the filter name on an empty item first.
          return (i as Partial<InterfaceRecord>).privateIps ?? [];
        case 'attachment.instance-id':
          return [i.attachment?.instanceId];
        default:
          return undefined;
      }
    });
    return {
      NetworkInterfaces: items.map((i) => ({
        NetworkInterfaceId: i.networkInterfaceId,
        SubnetId: i.subnetId,
        VpcId: i.vpcId,
        AvailabilityZone: i.availabilityZone,
        PrivateIpAddress: i.privateIps[0],
        PrivateIpAddresses: i.privateIps.map((ip, n) => ({ PrivateIpAddress: ip, Primary: n === 0 })),
        Groups: i.groupIds.map((GroupId) => ({ GroupId })),
        SourceDestCheck: i.sourceDestCheck,
        Status: i.attachment ? 'in-use' : 'available',
        ...(i.attachment && {
          Attachment: {
            InstanceId: i.attachment.instanceId,
            DeviceIndex: i.attachment.deviceIndex,
            Status: 'attached',
          },
        }),
      })),
    };
  }

  /** ModifyNetworkInterfaceAttribute (EC2 API reference): the source/destination check. */
  ModifyNetworkInterfaceAttribute(region: string, input: Input): Output {
    const id = require(input.NetworkInterfaceId as string, 'NetworkInterfaceId');
    const eni = this.world.interfaces.get(id);
    if (!eni || eni.region !== region) {
      throw new ApiError(
        'InvalidNetworkInterfaceID.NotFound',
        `The networkInterface ID '${id}' does not exist`,
      );
    }
    const check = input.SourceDestCheck as { Value?: boolean } | undefined;
    if (check?.Value !== undefined) eni.sourceDestCheck = check.Value;
    return {};
  }

  /** DescribeAddresses (EC2 API reference): AllocationIds, and the filters a backup uses. */
  DescribeAddresses(region: string, input: Input): Output {
    const all = [...this.world.addresses.values()].filter((a) => a.region === region);
    const ids = input.AllocationIds as string[] | undefined;
    let items = ids?.length
      ? requireIds(
          ids,
          (id) => all.find((a) => a.allocationId === id),
          'InvalidAllocationID.NotFound',
          'allocation ID',
        )
      : all;
    const instanceOf = (eniId: string | undefined): string | undefined =>
      eniId === undefined ? undefined : this.world.interfaces.get(eniId)?.attachment?.instanceId;
    items = applyFilters(items, input.Filters as Filter[], (a, n) => {
      switch (n) {
        case 'allocation-id':
          return [a.allocationId];
        case 'public-ip':
          return [a.publicIp];
        case 'network-interface-id':
          return [a.association?.networkInterfaceId];
        case 'instance-id':
          return [instanceOf(a.association?.networkInterfaceId)];
        default:
          return undefined;
      }
    });
    return {
      Addresses: items.map((a) => ({
        AllocationId: a.allocationId,
        PublicIp: a.publicIp,
        Domain: 'vpc',
        ...(a.association && {
          AssociationId: a.association.associationId,
          NetworkInterfaceId: a.association.networkInterfaceId,
          PrivateIpAddress: a.association.privateIp,
          InstanceId: instanceOf(a.association.networkInterfaceId),
          NetworkInterfaceOwnerId: ACCOUNT_ID,
        }),
      })),
    };
  }

  /**
   * AssociateAddress (EC2 API reference): "Reassociation is automatic, but you can specify false
   * to ensure the operation fails if the Elastic IP address is already associated with another
   * resource" (Resource.AlreadyAssociated); associating it again with the same interface is a
   * no-op ("This is an idempotent operation").
   */
  AssociateAddress(region: string, input: Input): Output {
    const allocationId = require(input.AllocationId as string, 'AllocationId');
    const address = this.world.addresses.get(allocationId);
    if (!address || address.region !== region) {
      throw new ApiError(
        'InvalidAllocationID.NotFound',
        `The allocation ID '${allocationId}' does not exist`,
      );
    }
    const eniId = require(input.NetworkInterfaceId as string, 'NetworkInterfaceId');
    const eni = this.world.interfaces.get(eniId);
    if (!eni || eni.region !== region) {
      throw new ApiError(
        'InvalidNetworkInterfaceID.NotFound',
        `The networkInterface ID '${eniId}' does not exist`,
      );
    }
    const privateIp = (input.PrivateIpAddress as string | undefined) ?? eni.privateIps[0] ?? '';
    if (address.association !== undefined) {
      if (address.association.networkInterfaceId === eniId && address.association.privateIp === privateIp) {
        return { AssociationId: address.association.associationId };
      }
      if (input.AllowReassociation === false) {
        throw new ApiError(
          'Resource.AlreadyAssociated',
          `resource ${allocationId} is already associated with associate-id ${address.association.associationId}`,
        );
      }
    }
    const existing = addressOf(this.world, eniId);
    if (existing !== undefined && existing !== address) existing.association = undefined;
    address.association = { associationId: newId('eipassoc'), networkInterfaceId: eniId, privateIp };
    return { AssociationId: address.association.associationId };
  }

  /** DescribeInstanceCreditSpecifications (EC2 API reference): burstable instances only. */
  DescribeInstanceCreditSpecifications(region: string, input: Input): Output {
    const ids = (input.InstanceIds as string[] | undefined) ?? [];
    const records = ids.map((id) => this.world.instanceRecord(id, region));
    return {
      InstanceCreditSpecifications: records.flatMap((r) =>
        r.cpuCredits === undefined ? [] : [{ InstanceId: r.instance.InstanceId, CpuCredits: r.cpuCredits }],
      ),
    };
  }

  DescribeInstanceTypes(_region: string, input: Input): Output {
    // DescribeInstanceTypes (EC2 API reference): named types that do not exist are refused with
    // InvalidInstanceType, listing them; without names, every type is described.
    const names = (input.InstanceTypes as string[] | undefined) ?? [];
    const unknown = names.filter((n) => !INSTANCE_TYPES.has(n));
    if (unknown.length) {
      throw new ApiError(
        'InvalidInstanceType',
        `The following supplied instance types do not exist: [${unknown.join(', ')}]`,
      );
    }
    const infos = names.length
      ? names.flatMap((n) => INSTANCE_TYPES.get(n) ?? [])
      : [...INSTANCE_TYPES.values()];
    return { InstanceTypes: infos };
  }

  DescribeKeyPairs(region: string, input: Input): Output {
    const names = [...this.world.region(region).keyPairs];
    const wanted = input.KeyNames as string[] | undefined;
    const items = wanted?.length
      ? requireIds(wanted, (n) => (names.includes(n) ? n : undefined), 'InvalidKeyPair.NotFound', 'key pair')
      : names;
    return {
      KeyPairs: items.map((KeyName) => ({
        KeyName,
        KeyPairId: `key-${Buffer.from(KeyName).toString('hex').slice(0, 17)}`,
        KeyType: 'ed25519',
      })),
    };
  }

  DescribePlacementGroups(region: string, input: Input): Output {
    const groups = this.world.region(region).placementGroups;
    const wanted = (input.GroupNames as string[] | undefined) ?? [...groups.keys()];
    return {
      PlacementGroups: wanted.map((name) => {
        const group = groups.get(name);
        if (!group)
          throw new ApiError('InvalidPlacementGroup.Unknown', `The Placement Group '${name}' is unknown.`);
        return {
          GroupName: name,
          Strategy: group.strategy,
          PartitionCount: group.partitionCount,
          State: 'available',
        };
      }),
    };
  }

  DescribeSubnets(region: string, input: Input): Output {
    const ids = input.SubnetIds as string[] | undefined;
    const all = [...this.world.subnets.values()].filter((s) => s.region === region).map((s) => s.subnet);
    let items = ids?.length
      ? requireIds(ids, (id) => all.find((s) => s.SubnetId === id), 'InvalidSubnetID.NotFound', 'subnet ID')
      : all;
    items = applyFilters(items, input.Filters as Filter[], (s, n) => {
      switch (n) {
        case 'subnet-id':
          return [s.SubnetId];
        case 'vpc-id':
          return [s.VpcId];
        case 'availability-zone':
          return [s.AvailabilityZone];
        default:
          return tagValues(s.Tags, n);
      }
    });
    return { Subnets: items };
  }

  DescribeSecurityGroups(region: string, input: Input): Output {
    const ids = input.GroupIds as string[] | undefined;
    const all = [...this.world.securityGroups.values()]
      .filter((g) => g.region === region)
      .map((g) => g.group);
    let items = ids?.length
      ? requireIds(ids, (id) => all.find((g) => g.GroupId === id), 'InvalidGroup.NotFound', 'security group')
      : all;
    items = applyFilters(items, input.Filters as Filter[], (g, n) => {
      switch (n) {
        case 'group-id':
          return [g.GroupId];
        case 'group-name':
          return [g.GroupName];
        case 'vpc-id':
          return [g.VpcId];
        default:
          return tagValues(g.Tags, n);
      }
    });
    return { SecurityGroups: items };
  }
}
