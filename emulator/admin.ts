import type { Instance, InstanceBlockDeviceMapping } from '@aws-sdk/client-ec2';
import { Block, contentDigest, pickIndices, prng } from './blocks.js';
import { EBS_ACTIONS, EBS_ERRORS, ebsError } from './ebs.js';
import { checkVolumeSpec } from './ec2.js';
import { INSTANCE_TYPES, typeDefaults } from './instance-types.js';
import { allocateAddress, createInterface, instanceNetwork } from './network.js';
import { ACCOUNT_ID, ApiError, type EmulatorOptions, newId, tagsFrom, type World } from './state.js';

/** Test-only JSON API beside the AWS services. See emulator/README.md. */
interface FillSpec {
  blocks: number;
  seed: number;
}

interface VolumeSpec {
  device?: string;
  sizeGiB: number;
  volumeType?: string;
  iops?: number;
  throughput?: number;
  encrypted?: boolean;
  kmsKeyId?: string;
  tags?: Record<string, string>;
  deleteOnTermination?: boolean;
  fill?: FillSpec;
}

type Body = Record<string, unknown>;

function fail(message: string): never {
  throw new ApiError('AdminBadRequest', message, 400);
}

let mutation = 0;

function fill(
  world: World,
  blocks: Map<number, Block>,
  sizeGiB: number,
  spec: FillSpec | undefined,
): number[] {
  if (!spec) return [];
  const indices = pickIndices(spec.blocks, world.blocksPerVolume(sizeGiB), spec.seed);
  // Every write gets fresh content, so a later write of the same index differs from the earlier one.
  const next = prng(spec.seed * 7919 + ++mutation);
  for (const i of indices) blocks.set(i, Block.synthetic(next()));
  return indices;
}

export class AdminApi {
  constructor(
    private readonly world: World,
    private readonly options: EmulatorOptions,
  ) {}

  handle(method: string, path: string, body: Body): unknown {
    const parts = path.split('/').filter(Boolean).slice(1);
    const route = `${method} ${parts.map((p, i) => (i === 1 && parts.length > 2 ? '{id}' : p)).join('/')}`;
    const id = parts[1] ?? '';
    switch (route) {
      case 'POST instances':
        return this.createInstance(body);
      case 'POST volumes':
        return this.createVolume(body);
      case 'POST instances/{id}/terminate':
        return this.terminate(id);
      case 'POST instances/{id}/untag':
        return this.untag(id, body);
      case 'POST volumes/{id}/mutate':
        return this.mutate(id, body);
      case 'GET volumes/{id}/digest':
        return contentDigest(this.volume(id).blocks);
      case 'GET snapshots/{id}/digest':
        return contentDigest(this.snapshot(id).blocks);
      case 'GET snapshots/{id}/blocks':
        return { blocks: [...this.snapshot(id).blocks.keys()].sort((a, b) => a - b) };
      case 'GET volumes/{id}/blocks':
        return { blocks: [...this.volume(id).blocks.keys()].sort((a, b) => a - b) };
      case 'GET state':
        return this.state();
      case 'GET peers':
        return { ports: [...this.world.peerPorts] };
      case 'GET requests':
        return Object.fromEntries(this.world.requestCounts);
      case 'POST requests/reset':
        this.world.requestCounts.clear();
        return {};
      case 'POST faults':
        return this.setFaults(body);
      case 'POST subnets':
        return this.world.addSubnet(
          String(body.region),
          String(body.availabilityZone),
          String(body.vpcId ?? this.world.region(String(body.region)).vpcId),
          String(body.cidr ?? '10.1.0.0/24'),
        );
      case 'POST security-groups':
        return this.world.addSecurityGroup(
          String(body.region),
          String(body.vpcId ?? this.world.region(String(body.region)).vpcId),
          String(body.groupName ?? newId('group')),
        );
      case 'POST placement-groups':
        this.world.region(String(body.region)).placementGroups.set(String(body.groupName), {
          strategy: String(body.strategy ?? 'partition'),
          ...(body.partitionCount !== undefined && { partitionCount: Number(body.partitionCount) }),
        });
        return {};
      case 'POST fail': {
        // The next `count` calls of `action` answer `code` (default 1 call).
        // An EBS action's code takes its status and message from the EBS error table.
        const action = String(body.action);
        const code = String(body.code ?? 'InternalError');
        const message = body.message === undefined ? undefined : String(body.message);
        const status = body.status === undefined ? undefined : Number(body.status);
        const ebsAction = EBS_ACTIONS.includes(action);
        const errors = Array.from({ length: Number(body.count ?? 1) }, () =>
          ebsAction
            ? ebsError(action, code, message, status)
            : new ApiError(code, message ?? 'Injected failure', status ?? 400),
        );
        this.world.failures.set(action, [...(this.world.failures.get(action) ?? []), ...errors]);
        return {};
      }
      case 'POST encryption-by-default':
        this.world.region(String(body.region ?? 'us-east-1')).encryptionByDefault = body.enabled !== false;
        return {};
      case 'POST kms-keys':
        this.world.kmsKeys.set(String(body.keyArn), {
          state: (body.state as 'Enabled' | 'Disabled' | 'PendingDeletion' | undefined) ?? 'Enabled',
        });
        return {};
      case 'POST instance-profiles': {
        // IAM instance profiles are global: one ARN per name in the account.
        const name = String(body.name);
        const arn = `arn:aws:iam::${ACCOUNT_ID}:instance-profile/${name}`;
        this.world.instanceProfiles.set(arn, name);
        return { arn };
      }
      case 'POST addresses':
        return { allocationId: allocateAddress(this.world, String(body.region ?? 'us-east-1')).allocationId };
      case 'POST offerings': {
        const key = `${String(body.region)}|${String(body.availabilityZone)}|${String(body.instanceType)}`;
        if (body.offered === false) this.world.unoffered.add(key);
        else this.world.unoffered.delete(key);
        return {};
      }
      case 'POST capacity': {
        const key = `${String(body.region)}|${String(body.availabilityZone)}`;
        if (body.available === false) this.world.noCapacity.add(key);
        else this.world.noCapacity.delete(key);
        return {};
      }
      case 'POST unbootable':
        // Any instance whose root volume holds this snapshot's content will fail its status check.
        this.world.unbootable.add(contentDigest(this.snapshot(String(body.snapshotId)).blocks).digest);
        return {};
      case 'POST key-pairs':
        this.world.region(String(body.region)).keyPairs.add(String(body.keyName));
        return {};
      case 'POST clock':
        this.world.advance(Number(body.advanceMs));
        return { now: new Date(this.world.now()).toISOString() };
      default:
        throw new ApiError('AdminNotFound', `No admin route ${method} ${path}`, 404);
    }
  }

  private volume(id: string) {
    const record = this.world.volumes.get(id);
    if (!record) throw new ApiError('AdminNotFound', `No volume ${id}`, 404);
    return record;
  }

  private snapshot(id: string) {
    const record = this.world.snapshots.get(id);
    if (!record) throw new ApiError('AdminNotFound', `No snapshot ${id}`, 404);
    return record;
  }

  private makeVolume(region: string, zone: string, spec: VolumeSpec) {
    if (!Number.isInteger(spec.sizeGiB) || spec.sizeGiB < 1) fail('sizeGiB must be a whole number of GiB');
    // Seeded volumes follow the rules AWS applies to created ones: a test cannot start from a
    // volume AWS would not have.
    checkVolumeSpec(spec.volumeType ?? 'gp3', spec.iops, spec.throughput, spec.sizeGiB);
    if (spec.kmsKeyId !== undefined && !this.world.kmsKeys.has(spec.kmsKeyId)) {
      this.world.kmsKeys.set(spec.kmsKeyId, { state: 'Enabled' });
    }
    const record = this.world.createVolume(region, zone, spec.sizeGiB, spec.volumeType ?? 'gp3', {
      Encrypted: spec.encrypted ?? false,
      ...(spec.encrypted && {
        KmsKeyId: spec.kmsKeyId ?? `arn:aws:kms:${region}:${ACCOUNT_ID}:key/${newId('k').slice(2)}`,
      }),
      ...(spec.iops !== undefined && { Iops: spec.iops }),
      ...(spec.throughput !== undefined && { Throughput: spec.throughput }),
      Tags: tagsFrom(spec.tags),
    });
    fill(this.world, record.blocks, spec.sizeGiB, spec.fill);
    return record;
  }

  private createVolume(body: Body): unknown {
    const region = String(body.region ?? 'us-east-1');
    const zone = String(body.availabilityZone ?? `${region}a`);
    return { volumeId: this.makeVolume(region, zone, body as unknown as VolumeSpec).volume.VolumeId };
  }

  private createInstance(body: Body): unknown {
    const region = String(body.region ?? 'us-east-1');
    const regionRecord = this.world.region(region);
    const subnetId = body.subnetId as string | undefined;
    const subnet = subnetId
      ? this.world.subnets.get(subnetId)?.subnet
      : [...this.world.subnets.values()].find(
          (s) =>
            s.region === region &&
            s.subnet.AvailabilityZone === String(body.availabilityZone ?? `${region}a`),
        )?.subnet;
    if (!subnet) fail(`no subnet ${subnetId ?? ''} in ${region}`);
    const zone = this.world.zone(region, subnet.AvailabilityZone!);
    const volumes = (body.volumes as VolumeSpec[] | undefined) ?? [{ sizeGiB: 8 }];
    const instanceId = newId('i');
    const mappings: InstanceBlockDeviceMapping[] = [];
    const volumeIds: string[] = [];
    volumes.forEach((spec, n) => {
      const device = spec.device ?? (n === 0 ? '/dev/xvda' : `/dev/sd${String.fromCharCode(102 + n - 1)}`);
      const record = this.makeVolume(region, zone.ZoneName, spec);
      const now = new Date();
      const deleteOnTermination = spec.deleteOnTermination ?? n === 0;
      record.volume.State = 'in-use';
      record.volume.Attachments = [
        {
          VolumeId: record.volume.VolumeId,
          InstanceId: instanceId,
          Device: device,
          State: 'attached',
          AttachTime: now,
          DeleteOnTermination: deleteOnTermination,
        },
      ];
      mappings.push({
        DeviceName: device,
        Ebs: {
          VolumeId: record.volume.VolumeId,
          Status: 'attached',
          AttachTime: now,
          DeleteOnTermination: deleteOnTermination,
        },
      });
      volumeIds.push(record.volume.VolumeId!);
    });
    const groupIds = (body.securityGroupIds as string[] | undefined) ?? [
      [...this.world.securityGroups.values()].find(
        (g) => g.region === region && g.group.VpcId === subnet.VpcId,
      )!.group.GroupId!,
    ];
    const keyName = body.keyName as string | undefined;
    if (keyName) regionRecord.keyPairs.add(keyName);
    // A seeded instance is one AWS would have launched: of a type the catalogue holds, with that
    // type's CPU options, ENA, boot mode and EBS optimization unless the test says otherwise.
    const typeName = String(body.instanceType ?? 't3.micro');
    const typeInfo = INSTANCE_TYPES.get(typeName);
    if (typeInfo === undefined) fail(`instance type ${typeName} is not in the emulator's catalogue`);
    const defaults = typeDefaults(typeInfo);
    const attributes = (body.attributes as Partial<Instance> | undefined) ?? {};
    // An instance profile the source had exists in the account it ran in.
    const profileArn = attributes.IamInstanceProfile?.Arn;
    if (profileArn !== undefined)
      this.world.instanceProfiles.set(profileArn, profileArn.split('/').pop() ?? profileArn);
    const interfaces = this.seedInterfaces(region, subnet.SubnetId!, groupIds, instanceId, body);
    const instance: Instance = {
      InstanceId: instanceId,
      ImageId: 'ami-0123456789abcdef0',
      PlatformDetails: 'Linux/UNIX',
      UsageOperation: 'RunInstances',
      InstanceType: typeName as Instance['InstanceType'],
      State: { Code: 16, Name: 'running' },
      LaunchTime: new Date(),
      Placement: {
        AvailabilityZone: zone.ZoneName,
        AvailabilityZoneId: zone.ZoneId,
        GroupName: '',
        Tenancy: 'default',
      },
      SubnetId: subnet.SubnetId,
      VpcId: subnet.VpcId,
      SecurityGroups: groupIds.map((g) => ({
        GroupId: g,
        GroupName: this.world.securityGroups.get(g)?.group.GroupName,
      })),
      ...(keyName && { KeyName: keyName }),
      RootDeviceName: mappings[0]!.DeviceName,
      RootDeviceType: 'ebs',
      VirtualizationType: 'hvm',
      ...defaults,
      BlockDeviceMappings: mappings,
      MetadataOptions: {
        State: 'applied',
        HttpTokens: 'required',
        HttpPutResponseHopLimit: 2,
        HttpEndpoint: 'enabled',
        HttpProtocolIpv6: 'disabled',
        InstanceMetadataTags: 'disabled',
      },
      HibernationOptions: { Configured: body.hibernation === true },
      EnclaveOptions: { Enabled: body.enclave === true },
      Tags: tagsFrom(body.tags as Record<string, string> | undefined),
      ...attributes,
    };
    this.world.instances.set(instanceId, {
      region,
      instance,
      ...(body.userData !== undefined && { userData: String(body.userData) }),
      ...(body.uefiData !== undefined && { uefiData: String(body.uefiData) }),
      readyAt: 0,
      bootable: true,
      interfaceIds: interfaces,
      disableApiTermination: body.disableApiTermination === true,
      shutdownBehavior: body.shutdownBehavior === 'terminate' ? 'terminate' : 'stop',
      ...(typeInfo.BurstablePerformanceSupported === true && {
        cpuCredits: body.cpuCredits === 'standard' || typeName.startsWith('t2.') ? 'standard' : 'unlimited',
      }),
    });
    return { instanceId, volumeIds, interfaceIds: interfaces };
  }

  /**
   * The seeded instance's interfaces: the primary in its subnet (privateIp, secondaryPrivateIps,
   * sourceDestCheck, elasticIp), then `interfaces` ({subnetId, privateIp, securityGroupIds,
   * sourceDestCheck, elasticIp}).
   */
  private seedInterfaces(
    region: string,
    subnetId: string,
    groupIds: string[],
    instanceId: string,
    body: Body,
  ): string[] {
    interface Seed {
      subnetId?: string;
      privateIp?: string;
      secondaryPrivateIps?: number;
      securityGroupIds?: string[];
      sourceDestCheck?: boolean;
      elasticIp?: boolean;
      deleteOnTermination?: boolean;
    }
    const primary: Seed = {
      subnetId,
      securityGroupIds: groupIds,
      ...(body.privateIp !== undefined && { privateIp: String(body.privateIp) }),
      ...(body.secondaryPrivateIps !== undefined && {
        secondaryPrivateIps: Number(body.secondaryPrivateIps),
      }),
      ...(body.sourceDestCheck === false && { sourceDestCheck: false }),
      ...(body.elasticIp === true && { elasticIp: true }),
    };
    const seeds = [primary, ...((body.interfaces as Seed[] | undefined) ?? [])];
    return seeds.map((seed, deviceIndex) => {
      const eni = createInterface(this.world, region, {
        subnetId: seed.subnetId ?? subnetId,
        groupIds: seed.securityGroupIds ?? groupIds,
        ...(seed.privateIp !== undefined && { privateIps: [seed.privateIp] }),
        ...(seed.secondaryPrivateIps !== undefined && { secondaryCount: seed.secondaryPrivateIps }),
        ...(seed.sourceDestCheck === false && { sourceDestCheck: false }),
      });
      eni.attachment = {
        instanceId,
        deviceIndex,
        deleteOnTermination: seed.deleteOnTermination ?? deviceIndex === 0,
      };
      if (seed.elasticIp === true) allocateAddress(this.world, region, eni.networkInterfaceId);
      return eni.networkInterfaceId;
    });
  }

  /**
   * The instance ends as TerminateInstances ends it ("Terminate Amazon EC2 instances", EC2 user
   * guide): its interfaces with DeleteOnTermination are deleted, the others detached, and an
   * Elastic IP on them is disassociated.
   */
  private terminate(id: string): unknown {
    const record = this.world.instances.get(id);
    if (!record) throw new ApiError('AdminNotFound', `No instance ${id}`, 404);
    record.instance.State = { Code: 48, Name: 'terminated' };
    this.world.releaseInstance(record);
    return {};
  }

  /** Removes tags from an instance, as an operator may by hand (DeleteTags is not modelled). */
  private untag(id: string, body: Body): unknown {
    const record = this.world.instances.get(id);
    if (!record) throw new ApiError('AdminNotFound', `No instance ${id}`, 404);
    const keys = new Set((body.keys as string[] | undefined) ?? []);
    record.instance.Tags = (record.instance.Tags ?? []).filter((t) => !keys.has(t.Key ?? ''));
    return {};
  }

  private mutate(id: string, body: Body): unknown {
    const record = this.volume(id);
    const written = fill(this.world, record.blocks, record.volume.Size!, body.write as FillSpec | undefined);
    const unwritten: number[] = [];
    for (const i of (body.unwrite as number[] | undefined) ?? []) {
      if (record.blocks.delete(i)) unwritten.push(i);
    }
    return { written, unwritten };
  }

  private state(): unknown {
    this.world.settle();
    return {
      instances: [...this.world.instances.values()].map((r) => ({
        ...r.instance,
        ...instanceNetwork(this.world, r.interfaceIds),
        Region: r.region,
        UserData: r.userData,
        DisableApiTermination: r.disableApiTermination,
        InstanceInitiatedShutdownBehavior: r.shutdownBehavior,
        CpuCredits: r.cpuCredits,
      })),
      addresses: [...this.world.addresses.values()],
      volumes: [...this.world.volumes.values()].map((r) => ({ ...r.volume, Region: r.region })),
      snapshots: [...this.world.snapshots.values()].map((r) => ({
        ...r.snapshot,
        Region: r.region,
        ParentSnapshotId: r.parentSnapshotId,
        Origin: r.origin,
        PresignedUrl: r.presignedUrl,
      })),
      images: [...this.world.images.values()].map((r) => ({
        ...r.image,
        Region: r.region,
        UefiData: r.uefiData,
      })),
    };
  }

  private setFaults(body: Body): unknown {
    const numeric = Object.keys(this.options).filter(
      (k) => typeof this.options[k as keyof EmulatorOptions] === 'number',
    );
    for (const [key, value] of Object.entries(body)) {
      if (key === 'deniedActions' && Array.isArray(value) && value.every((v) => typeof v === 'string')) {
        this.options.deniedActions = value;
        continue;
      }
      if (
        key === 'errorCodes' &&
        Array.isArray(value) &&
        value.every((v) => typeof v === 'string' && v in EBS_ERRORS)
      ) {
        this.options.errorCodes = value;
        continue;
      }
      if (!numeric.includes(key) || typeof value !== 'number') fail(`unknown or non-numeric option ${key}`);
      (this.options as unknown as Record<string, number>)[key] = value;
    }
    return this.options;
  }
}
