import {
  DescribeInstanceAttributeCommand,
  GetInstanceUefiDataCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Instance,
  type Tag as AwsTag,
  type Volume,
} from '@aws-sdk/client-ec2';
import { RuntimeFailure } from '../errors.js';
import type { InstanceMeta, Tag } from '../stream/schema.js';
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

export async function instanceMeta(ec2: EC2Client, instance: Instance): Promise<InstanceMeta> {
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
