/**
 * The EC2 calls of a launch: the AMI, the instance, what RunInstances cannot take, and the
 * look-ups a rerun makes to find what an earlier run made. restore/aws/ decides; this module
 * only asks AWS, one named function per question.
 */
import {
  AssociateAddressCommand,
  CreateVolumeCommand,
  type CreateVolumeCommandInput,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  type EC2Client,
  type Image,
  type Instance,
  ModifyNetworkInterfaceAttributeCommand,
  RegisterImageCommand,
  type RegisterImageCommandInput,
  RunInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { RuntimeFailure } from '../errors.js';
import { pollUntil } from '../retry.js';
import { answered } from './answer.js';
import { eachInstance } from './inventory.js';

/**
 * How long an AMI may take to become available, and an instance to run (seconds). EC2 gives no
 * bound; both usually take well under a minute, and a restore waits this long before it says so.
 */
const LAUNCH_WAIT_S = 1800;

export async function registerImage(ec2: EC2Client, input: RegisterImageCommandInput): Promise<string> {
  const image = await ec2.send(new RegisterImageCommand(input));
  return answered(image.ImageId, 'the image id in RegisterImage');
}

/** Waits for an AMI to become available; fails on `failed` (DescribeImages, State). */
export async function waitForImage(ec2: EC2Client, imageId: string): Promise<void> {
  await pollUntil(`image ${imageId} becoming available`, LAUNCH_WAIT_S, async () => {
    const { Images = [] } = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    if (Images[0]?.State === 'failed')
      throw new RuntimeFailure(`image ${imageId} failed: ${Images[0].StateReason?.Message ?? ''}`);
    return Images[0]?.State === 'available' ? true : undefined;
  });
}

export async function runInstance(ec2: EC2Client, input: RunInstancesCommandInput): Promise<string> {
  const run = await ec2.send(new RunInstancesCommand(input));
  return answered(run.Instances?.[0]?.InstanceId, 'the instance id in RunInstances');
}

/** Waits for an instance to run; fails when it ends first (a launch EC2 stopped at once). */
export async function waitForRunning(ec2: EC2Client, instanceId: string): Promise<Instance> {
  return pollUntil(`instance ${instanceId} running`, LAUNCH_WAIT_S, async () => {
    const { Reservations = [] } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    const instance = Reservations[0]?.Instances?.[0];
    const state = instance?.State?.Name;
    if (state === 'terminated' || state === 'shutting-down') {
      throw new RuntimeFailure(
        `instance ${instanceId} ended (${instance?.StateReason?.Message ?? state}) right after launch`,
      );
    }
    return state === 'running' ? instance : undefined;
  });
}

/** The instances launched with a client token (DescribeInstances, filter `client-token`). */
export async function instancesWithToken(ec2: EC2Client, token: string): Promise<Instance[]> {
  const { Reservations = [] } = await ec2.send(
    new DescribeInstancesCommand({ Filters: [{ Name: 'client-token', Values: [token] }] }),
  );
  return Reservations.flatMap((r) => r.Instances ?? []).filter((i) => i.ClientToken === token);
}

/** The instances carrying a tag (DescribeInstances, filter `tag:KEY`), page by page. */
export async function instancesTagged(ec2: EC2Client, key: string, value: string): Promise<Instance[]> {
  const found: Instance[] = [];
  const filters = [{ Name: `tag:${key}`, Values: [value] }];
  for await (const instance of eachInstance(ec2, { Filters: filters, MaxResults: 1000 }))
    found.push(instance);
  return found;
}

/** This account's AMIs carrying a tag (DescribeImages, Owners self). */
export async function imagesTagged(ec2: EC2Client, key: string, value: string): Promise<Image[]> {
  const { Images = [] } = await ec2.send(
    new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: `tag:${key}`, Values: [value] }] }),
  );
  return Images;
}

/** An AMI by id, or undefined when EC2 no longer knows it. */
export async function describeImage(ec2: EC2Client, imageId: string): Promise<Image | undefined> {
  try {
    const { Images = [] } = await ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] }));
    return Images[0];
  } catch {
    return undefined;
  }
}

export async function deregisterImage(ec2: EC2Client, imageId: string): Promise<void> {
  await ec2.send(new DeregisterImageCommand({ ImageId: imageId }));
}

/** Turns a network interface's source/destination check off (ModifyNetworkInterfaceAttribute). */
export async function sourceDestCheckOff(ec2: EC2Client, networkInterfaceId: string): Promise<void> {
  await ec2.send(
    new ModifyNetworkInterfaceAttributeCommand({
      NetworkInterfaceId: networkInterfaceId,
      SourceDestCheck: { Value: false },
    }),
  );
}

/**
 * Associates an Elastic IP with an interface, never taking it from another one: "Reassociation is
 * automatic" unless AllowReassociation is false (AssociateAddress, EC2 API reference). Says
 * `taken` when the address is associated elsewhere (Resource.AlreadyAssociated).
 */
export async function associateAddress(
  ec2: EC2Client,
  allocationId: string,
  networkInterfaceId: string,
): Promise<'associated' | 'taken'> {
  try {
    await ec2.send(
      new AssociateAddressCommand({
        AllocationId: allocationId,
        NetworkInterfaceId: networkInterfaceId,
        AllowReassociation: false,
      }),
    );
    return 'associated';
  } catch (err) {
    if (err instanceof Error && err.name === 'Resource.AlreadyAssociated') return 'taken';
    throw err;
  }
}

/** Each volume's source snapshot (DescribeVolumes), by volume id. */
export async function volumeSnapshots(
  ec2: EC2Client,
  volumeIds: string[],
): Promise<Map<string | undefined, string | undefined>> {
  if (volumeIds.length === 0) return new Map();
  const { Volumes = [] } = await ec2.send(new DescribeVolumesCommand({ VolumeIds: volumeIds }));
  return new Map(Volumes.map((v) => [v.VolumeId, v.SnapshotId]));
}

/** A volume carrying a tag that is not being deleted: one an earlier run created. */
export async function liveVolumeTagged(
  ec2: EC2Client,
  key: string,
  value: string,
): Promise<string | undefined> {
  const { Volumes = [] } = await ec2.send(
    new DescribeVolumesCommand({ Filters: [{ Name: `tag:${key}`, Values: [value] }] }),
  );
  return Volumes.find((v) => v.State !== 'deleting' && v.State !== 'deleted')?.VolumeId;
}

export async function createVolume(ec2: EC2Client, input: CreateVolumeCommandInput): Promise<string> {
  const created = await ec2.send(new CreateVolumeCommand(input));
  return answered(created.VolumeId, 'the volume id in CreateVolume');
}
