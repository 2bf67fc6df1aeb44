/**
 * The RegisterImage and RunInstances requests of a launch, built from what the pre-flight
 * decided: the plan prints them, the launch sends them.
 */
import {
  ArchitectureValues,
  BootModeValues,
  HttpTokensState,
  InstanceMetadataEndpointState,
  InstanceMetadataProtocolState,
  InstanceMetadataTagsState,
  type RegisterImageCommandInput,
  type RunInstancesCommandInput,
  Tenancy,
  TpmSupportValues,
} from '@aws-sdk/client-ec2';
import { RESTORE_TAG, withinTagLimit } from '../../format/tags.js';
import type { RestoreSettings } from '../../config.js';
import { RuntimeFailure } from '../../errors.js';
import type { InstanceMeta } from '../../format/members.js';
import { known, type LaunchSpec } from './preflight.js';
import { restoreTags } from './tags.js';
import { type RestoredVolume, volumeSpec } from './volumes.js';

/** The mappings of the source whose volume was restored, each with its restored snapshot. */
export function restoredMappings(
  meta: InstanceMeta,
  restored: Map<string, RestoredVolume>,
): { deviceName: string; volumeId: string; deleteOnTermination: boolean | null; volume: RestoredVolume }[] {
  return meta.blockDeviceMappings.flatMap((m) => {
    const volume = restored.get(m.volumeId);
    return volume === undefined ? [] : [{ ...m, volume }];
  });
}

export function rootDevice(meta: InstanceMeta, restored: Map<string, RestoredVolume>): string {
  const mappings = restoredMappings(meta, restored);
  const root = meta.rootDeviceName ?? mappings[0]?.deviceName;
  if (root === undefined || !mappings.some((m) => m.deviceName === root)) {
    throw new RuntimeFailure(
      `the stream of ${meta.instanceId} holds no root volume (${root ?? 'none recorded'}); it cannot be launched. Use --no-launch.`,
    );
  }
  return root;
}

export function registerImageInput(
  settings: RestoreSettings,
  job: string,
  meta: InstanceMeta,
  spec: LaunchSpec,
  restored: Map<string, RestoredVolume>,
  date: string,
  token: string,
): RegisterImageCommandInput {
  return {
    Name: `ec2-bpipe-${meta.instanceId}-${job}-${Date.now()}`.slice(0, 128),
    Description: `ec2-bpipe restore of ${meta.instanceId}, job ${job}`,
    Architecture: known(ArchitectureValues, meta.architecture) ?? 'x86_64',
    RootDeviceName: rootDevice(meta, restored),
    VirtualizationType: meta.virtualizationType ?? 'hvm',
    BootMode: known(BootModeValues, meta.bootMode),
    TpmSupport: known(TpmSupportValues, meta.tpmSupport),
    ...(meta.uefiData && { UefiData: meta.uefiData }),
    ...(spec.ena !== undefined && { EnaSupport: spec.ena }),
    ...(meta.sriovNetSupport !== null && { SriovNetSupport: meta.sriovNetSupport }),
    BlockDeviceMappings: restoredMappings(meta, restored).map(({ volume, ...m }) => ({
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
  };
}

export function runInstancesInput(
  settings: RestoreSettings,
  meta: InstanceMeta,
  spec: LaunchSpec,
  imageId: string,
  date: string,
  token: string,
): RunInstancesCommandInput {
  const m = meta.metadataOptions;
  return {
    ImageId: imageId,
    MinCount: 1,
    MaxCount: 1,
    InstanceType: spec.type.name,
    ClientToken: token,
    Placement: {
      // The subnet decides the zone; only without one does the stored zone apply.
      ...(spec.interfaces === undefined &&
        spec.subnetId === undefined &&
        spec.zone !== undefined && { AvailabilityZone: spec.zone }),
      ...(spec.placement.groupName !== undefined && { GroupName: spec.placement.groupName }),
      ...(spec.placement.partitionNumber !== undefined && {
        PartitionNumber: spec.placement.partitionNumber,
      }),
      Tenancy: known(Tenancy, meta.placement.tenancy),
    },
    ...(spec.interfaces !== undefined && {
      NetworkInterfaces: spec.interfaces.map((eni) => ({
        DeviceIndex: eni.deviceIndex,
        SubnetId: eni.subnetId,
        ...(eni.groupIds.length > 0 && { Groups: eni.groupIds }),
        ...(eni.privateIps !== undefined && {
          PrivateIpAddresses: eni.privateIps.map((PrivateIpAddress, n) => ({
            PrivateIpAddress,
            Primary: n === 0,
          })),
        }),
        ...(eni.secondaryCount > 0 && { SecondaryPrivateIpAddressCount: eni.secondaryCount }),
        ...(eni.description !== '' && { Description: eni.description }),
        DeleteOnTermination: eni.deleteOnTermination,
      })),
    }),
    ...(spec.interfaces === undefined && spec.subnetId !== undefined && { SubnetId: spec.subnetId }),
    ...(spec.interfaces === undefined &&
      spec.securityGroupIds.length > 0 && { SecurityGroupIds: spec.securityGroupIds }),
    ...(spec.keyName !== undefined && { KeyName: spec.keyName }),
    ...(spec.profile !== undefined && { IamInstanceProfile: spec.profile }),
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
    ...(spec.cpuOptions !== undefined && { CpuOptions: spec.cpuOptions }),
    ...(spec.ebsOptimized !== undefined && { EbsOptimized: spec.ebsOptimized }),
    ...(spec.disableApiTermination && { DisableApiTermination: true }),
    ...(spec.shutdownBehavior !== undefined && { InstanceInitiatedShutdownBehavior: spec.shutdownBehavior }),
    ...(spec.cpuCredits !== undefined && { CreditSpecification: { CpuCredits: spec.cpuCredits } }),
    ...(spec.hibernation && { HibernationOptions: { Configured: true } }),
    ...(spec.enclave && { EnclaveOptions: { Enabled: true } }),
    TagSpecifications: [
      {
        ResourceType: 'instance',
        Tags: withinTagLimit(restoreTags(settings, meta.instanceId, date), meta.tags).tags,
      },
    ],
  };
}
