import {
  DescribeAddressesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstanceCreditSpecificationsCommand,
  GetInstanceUefiDataCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Instance,
  type Tag as AwsTag,
  type Volume,
} from '@aws-sdk/client-ec2';
import { RuntimeFailure } from '../errors.js';
import type { InstanceMeta, Tag } from '../format/members.js';
import { answered } from './answer.js';

/** Tags as a JSON list, without the `aws:` ones (AWS refuses to set them on a restore). */
export function userTags(tags: AwsTag[] | undefined): Tag[] {
  return (tags ?? [])
    .filter((t) => t.Key !== undefined && !t.Key.toLowerCase().startsWith('aws:'))
    .flatMap((t) => (t.Key === undefined ? [] : [{ Key: t.Key, Value: t.Value ?? '' }]));
}

export type { InstanceMeta };

export async function describeInstance(ec2: EC2Client, instanceId: string): Promise<Instance> {
  const { Reservations = [] } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  const instance = Reservations.flatMap((r) => r.Instances ?? [])[0];
  if (!instance) throw new RuntimeFailure(`instance ${instanceId} was not found`);
  return instance;
}

/**
 * The instance's state name, or undefined when EC2 no longer knows it (InvalidInstanceID.NotFound:
 * a terminated instance stays visible for about an hour, then is gone).
 */
export async function instanceState(ec2: EC2Client, instanceId: string): Promise<string | undefined> {
  try {
    const { Reservations = [] } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return Reservations.flatMap((r) => r.Instances ?? [])[0]?.State?.Name;
  } catch (err) {
    if (err instanceof Error && err.name === 'InvalidInstanceID.NotFound') return undefined;
    throw err;
  }
}

/**
 * What the instance is, for a restore to bring back. `warn` hears of what could not be read: the
 * identity calls (addresses, attributes, credits) only say so, as a policy written for 0.2 lacks
 * them, and the backup itself does not need them.
 */
export async function instanceMeta(
  ec2: EC2Client,
  instance: Instance,
  warn: (line: string) => void = () => undefined,
): Promise<InstanceMeta> {
  const instanceId = answered(instance.InstanceId, 'the instance id in DescribeInstances');
  const attribute = await ec2.send(
    new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData' }),
  );
  const p = instance.Placement ?? {};
  const m = instance.MetadataOptions;
  return {
    instanceId,
    instanceType: instance.InstanceType ?? null,
    placement: {
      availabilityZone: p.AvailabilityZone ?? null,
      availabilityZoneId: p.AvailabilityZoneId ?? null,
      groupName: p.GroupName || null,
      partitionNumber: p.PartitionNumber ?? null,
      tenancy: p.Tenancy ?? null,
    },
    subnetId: instance.SubnetId ?? null,
    vpcId: instance.VpcId ?? null,
    securityGroupIds: (instance.SecurityGroups ?? []).flatMap((g) =>
      g.GroupId === undefined ? [] : [g.GroupId],
    ),
    keyName: instance.KeyName ?? null,
    rootDeviceName: instance.RootDeviceName ?? null,
    virtualizationType: instance.VirtualizationType ?? null,
    bootMode: instance.BootMode ?? null,
    tpmSupport: instance.TpmSupport ?? null,
    enaSupport: instance.EnaSupport ?? null,
    sriovNetSupport: instance.SriovNetSupport ?? null,
    ebsOptimized: instance.EbsOptimized ?? null,
    architecture: instance.Architecture ?? null,
    cpuOptions: instance.CpuOptions
      ? {
          coreCount: instance.CpuOptions.CoreCount ?? null,
          threadsPerCore: instance.CpuOptions.ThreadsPerCore ?? null,
        }
      : null,
    iamInstanceProfileArn: instance.IamInstanceProfile?.Arn ?? null,
    metadataOptions: m
      ? {
          httpTokens: m.HttpTokens ?? null,
          httpPutResponseHopLimit: m.HttpPutResponseHopLimit ?? null,
          httpEndpoint: m.HttpEndpoint ?? null,
          httpProtocolIpv6: m.HttpProtocolIpv6 ?? null,
          instanceMetadataTags: m.InstanceMetadataTags ?? null,
        }
      : null,
    userData: attribute.UserData?.Value ?? null,
    tags: userTags(instance.Tags),
    platformDetails: instance.PlatformDetails ?? null,
    uefiData: await uefiData(ec2, instance, instanceId),
    usageOperation: instance.UsageOperation ?? null,
    interfaces: await interfaces(ec2, instance, instanceId, warn),
    attributes: await attributes(ec2, instance, instanceId, warn),
    blockDeviceMappings: (instance.BlockDeviceMappings ?? []).flatMap((b) =>
      b.Ebs?.VolumeId === undefined || b.DeviceName === undefined
        ? []
        : [
            {
              deviceName: b.DeviceName,
              volumeId: b.Ebs.VolumeId,
              deleteOnTermination: b.Ebs.DeleteOnTermination ?? null,
            },
          ],
    ),
  };
}

/** An identity call the caller's policy may lack: its answer, or null and a line saying so. */
async function optional<T>(
  what: string,
  action: string,
  warn: (line: string) => void,
  call: () => Promise<T>,
): Promise<T | null> {
  try {
    return await call();
  } catch (err) {
    if (!(err instanceof Error && err.name === 'UnauthorizedOperation')) throw err;
    warn(
      `${what} not recorded: ${action} is not allowed (add it to the IAM policy so a restore can bring it back)`,
    );
    return null;
  }
}

async function interfaces(
  ec2: EC2Client,
  instance: Instance,
  instanceId: string,
  warn: (line: string) => void,
): Promise<NonNullable<InstanceMeta['interfaces']>> {
  const attached = instance.NetworkInterfaces ?? [];
  if (attached.length === 0) return [];
  const addresses = await optional(
    `the Elastic IPs of ${instanceId}`,
    'ec2:DescribeAddresses',
    warn,
    async () => {
      const { Addresses = [] } = await ec2.send(
        new DescribeAddressesCommand({ Filters: [{ Name: 'instance-id', Values: [instanceId] }] }),
      );
      return Addresses;
    },
  );
  return attached
    .flatMap((eni) => {
      const deviceIndex = eni.Attachment?.DeviceIndex;
      if (deviceIndex === undefined || eni.SubnetId === undefined || eni.NetworkInterfaceId === undefined)
        return [];
      const primary = eni.PrivateIpAddress;
      const privateIps = [
        ...(primary !== undefined ? [primary] : []),
        ...(eni.PrivateIpAddresses ?? []).flatMap((a) =>
          a.PrivateIpAddress === undefined || a.PrivateIpAddress === primary ? [] : [a.PrivateIpAddress],
        ),
      ];
      if (privateIps.length === 0) return [];
      // An Elastic IP is an address with an allocation id; an auto-assigned public IP has none and
      // does not survive a restore anyway.
      const address = (addresses ?? []).find(
        (a) => a.NetworkInterfaceId === eni.NetworkInterfaceId && a.AllocationId !== undefined,
      );
      return [
        {
          deviceIndex,
          subnetId: eni.SubnetId,
          privateIps,
          securityGroupIds: (eni.Groups ?? []).flatMap((g) => (g.GroupId === undefined ? [] : [g.GroupId])),
          sourceDestCheck: eni.SourceDestCheck ?? true,
          deleteOnTermination: eni.Attachment?.DeleteOnTermination ?? null,
          description: eni.Description ?? '',
          elasticIp:
            address?.AllocationId !== undefined && address.PublicIp !== undefined
              ? { allocationId: address.AllocationId, publicIp: address.PublicIp }
              : null,
        },
      ];
    })
    .sort((a, b) => a.deviceIndex - b.deviceIndex);
}

/** Burstable types are the T families ("Burstable performance instances", EC2 user guide). */
const BURSTABLE = /^t\d[a-z]*\./;

async function attributes(
  ec2: EC2Client,
  instance: Instance,
  instanceId: string,
  warn: (line: string) => void,
): Promise<NonNullable<InstanceMeta['attributes']>> {
  const attribute = (name: 'disableApiTermination' | 'instanceInitiatedShutdownBehavior') =>
    optional(`${name} of ${instanceId}`, 'ec2:DescribeInstanceAttribute', warn, () =>
      ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: name })),
    );
  const termination = await attribute('disableApiTermination');
  const shutdown = (await attribute('instanceInitiatedShutdownBehavior'))?.InstanceInitiatedShutdownBehavior
    ?.Value;
  const credits = BURSTABLE.test(instance.InstanceType ?? '')
    ? await optional(
        `the CPU credits of ${instanceId}`,
        'ec2:DescribeInstanceCreditSpecifications',
        warn,
        async () => {
          const answer = await ec2.send(
            new DescribeInstanceCreditSpecificationsCommand({ InstanceIds: [instanceId] }),
          );
          return answer.InstanceCreditSpecifications?.[0]?.CpuCredits ?? null;
        },
      )
    : null;
  return {
    disableApiTermination: termination?.DisableApiTermination?.Value ?? null,
    shutdownBehavior: shutdown === 'stop' || shutdown === 'terminate' ? shutdown : null,
    cpuCredits: credits === 'standard' || credits === 'unlimited' ? credits : null,
    hibernation: instance.HibernationOptions?.Configured ?? null,
    enclave: instance.EnclaveOptions?.Enabled ?? null,
  };
}

/**
 * A UEFI instance's variable store (Secure Boot keys and boot entries): RegisterImage takes it back,
 * so a restored instance boots with the same keys. Legacy-BIOS instances have none.
 */
async function uefiData(ec2: EC2Client, instance: Instance, instanceId: string): Promise<string | null> {
  if (instance.CurrentInstanceBootMode !== 'uefi' && instance.BootMode !== 'uefi') return null;
  const { UefiData } = await ec2.send(new GetInstanceUefiDataCommand({ InstanceId: instanceId }));
  return UefiData || null;
}

export async function describeVolumes(ec2: EC2Client, volumeIds: string[]): Promise<Map<string, Volume>> {
  const { Volumes = [] } = await ec2.send(new DescribeVolumesCommand({ VolumeIds: volumeIds }));
  return new Map(Volumes.map((v) => [answered(v.VolumeId, 'a volume id in DescribeVolumes'), v]));
}

/** The volume types that take an IOPS setting (EBS volume types). */
export const TAKES_IOPS: ReadonlySet<string> = new Set(['io1', 'io2', 'gp3']);

/** IOPS and throughput only where the volume type takes them. */
export function performance(volume: Volume): { iops: number | null; throughput: number | null } {
  const type = volume.VolumeType ?? '';
  return {
    iops: TAKES_IOPS.has(type) ? (volume.Iops ?? null) : null,
    throughput: type === 'gp3' ? (volume.Throughput ?? null) : null,
  };
}
