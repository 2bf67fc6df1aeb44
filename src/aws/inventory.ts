/**
 * Instances and volumes as EC2 lists them, page after page (the SDK's paginators): what a
 * selection or a plan reads to find its units. One item at a time, so a large account's answer
 * is never held whole.
 */
import {
  type DescribeInstancesCommandInput,
  type DescribeVolumesCommandInput,
  type EC2Client,
  type Instance,
  paginateDescribeInstances,
  paginateDescribeVolumes,
  type Volume,
} from '@aws-sdk/client-ec2';

export async function* eachInstance(
  ec2: EC2Client,
  input: DescribeInstancesCommandInput,
): AsyncGenerator<Instance> {
  for await (const page of paginateDescribeInstances({ client: ec2 }, input))
    for (const reservation of page.Reservations ?? []) yield* reservation.Instances ?? [];
}

export async function* eachVolume(
  ec2: EC2Client,
  input: DescribeVolumesCommandInput,
): AsyncGenerator<Volume> {
  for await (const page of paginateDescribeVolumes({ client: ec2 }, input)) yield* page.Volumes ?? [];
}
