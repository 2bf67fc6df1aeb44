/**
 * What a restore asks AWS before it writes a block: whether each resource a launch or a volume
 * creation will name exists in the target Region and fits. Every lookup answers facts or
 * `undefined` for "does not exist"; the pre-flight (src/restore/aws/preflight.ts) decides.
 */
import {
  DescribeAddressesCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstanceTypesCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeNetworkInterfacesCommand,
  DescribePlacementGroupsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  type EC2Client,
  type InstanceTypeInfo,
  type SecurityGroup,
  type _InstanceType,
} from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, IAMClient } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsSettings } from '../config.js';
import { answered } from './answer.js';
import { RESTORE_TAG, tagValue } from '../format/tags.js';
import { type AwsClients, lazyEndpoint, retrySettings } from './clients.js';
import { homeRegion } from './endpoints.js';

/**
 * The EC2 error codes (the SDK's error names) that say a resource does not exist: EC2 API
 * reference, "Error codes for the Amazon EC2 API".
 */
const NOT_FOUND_CODES = new Set([
  'InvalidSubnetID.NotFound',
  'InvalidSubnetID.Malformed',
  'InvalidGroup.NotFound',
  'InvalidGroupId.Malformed',
  'InvalidKeyPair.NotFound',
  'InvalidPlacementGroup.Unknown',
  'InvalidAllocationID.NotFound',
  'InvalidInstanceType',
]);

async function unlessMissing<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof Error && NOT_FOUND_CODES.has(err.name)) return undefined;
    throw err;
  }
}

export interface SubnetFacts {
  id: string;
  vpcId: string;
  availabilityZone: string;
  cidr: string | undefined;
}

export async function subnet(ec2: EC2Client, subnetId: string): Promise<SubnetFacts | undefined> {
  return unlessMissing(async () => {
    const { Subnets = [] } = await ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] }));
    const found = Subnets[0];
    if (found === undefined) return undefined;
    return {
      id: subnetId,
      vpcId: answered(found.VpcId, `the VPC of ${subnetId}`),
      availabilityZone: answered(found.AvailabilityZone, `the zone of ${subnetId}`),
      cidr: found.CidrBlock,
    };
  });
}

/** The groups, or undefined when any of them does not exist. */
export async function securityGroups(
  ec2: EC2Client,
  groupIds: string[],
): Promise<SecurityGroup[] | undefined> {
  return unlessMissing(async () => {
    const { SecurityGroups = [] } = await ec2.send(new DescribeSecurityGroupsCommand({ GroupIds: groupIds }));
    return SecurityGroups.length === groupIds.length ? SecurityGroups : undefined;
  });
}

export async function keyPairExists(ec2: EC2Client, keyName: string): Promise<boolean> {
  const found = await unlessMissing(() => ec2.send(new DescribeKeyPairsCommand({ KeyNames: [keyName] })));
  return (found?.KeyPairs ?? []).length > 0;
}

export async function placementGroup(
  ec2: EC2Client,
  groupName: string,
): Promise<{ strategy: string | undefined; partitionCount: number | undefined } | undefined> {
  const found = await unlessMissing(() =>
    ec2.send(new DescribePlacementGroupsCommand({ GroupNames: [groupName] })),
  );
  const group = found?.PlacementGroups?.[0];
  return group && { strategy: group.Strategy, partitionCount: group.PartitionCount };
}

/** DescribeInstanceTypes: a type not offered in the Region is InvalidInstanceType (undefined here). */
export async function instanceType(
  ec2: EC2Client,
  type: _InstanceType,
): Promise<InstanceTypeInfo | undefined> {
  const found = await unlessMissing(() =>
    ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: [type] })),
  );
  return found?.InstanceTypes?.find((t) => t.InstanceType === type);
}

/** The zones of the Region that offer `type` (DescribeInstanceTypeOfferings by availability-zone). */
export async function zonesOffering(ec2: EC2Client, type: string): Promise<string[]> {
  const { InstanceTypeOfferings = [] } = await ec2.send(
    new DescribeInstanceTypeOfferingsCommand({
      LocationType: 'availability-zone',
      Filters: [{ Name: 'instance-type', Values: [type] }],
    }),
  );
  return InstanceTypeOfferings.flatMap((o) => (o.Location === undefined ? [] : [o.Location])).sort();
}

/** DescribeAvailabilityZones with a zone-name filter: an unknown zone is an empty answer. */
export async function zoneExists(ec2: EC2Client, zone: string): Promise<boolean> {
  const { AvailabilityZones = [] } = await ec2.send(
    new DescribeAvailabilityZonesCommand({ Filters: [{ Name: 'zone-name', Values: [zone] }] }),
  );
  return AvailabilityZones.length > 0;
}

/**
 * The interface that holds `address` in the subnet, when one does, with the instance it is
 * attached to and the source that instance was restored from (its ec2-bpipe:source tag).
 */
export async function addressHolder(
  ec2: EC2Client,
  subnetId: string,
  address: string,
): Promise<
  { interfaceId: string; instanceId: string | undefined; restoredFrom: string | undefined } | undefined
> {
  const { NetworkInterfaces = [] } = await ec2.send(
    new DescribeNetworkInterfacesCommand({
      Filters: [
        { Name: 'subnet-id', Values: [subnetId] },
        { Name: 'addresses.private-ip-address', Values: [address] },
      ],
    }),
  );
  const holder = NetworkInterfaces[0];
  if (holder === undefined) return undefined;
  const instanceId = holder.Attachment?.InstanceId;
  let restoredFrom: string | undefined;
  if (instanceId !== undefined) {
    const { Reservations = [] } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    const instance = Reservations.flatMap((r) => r.Instances ?? [])[0];
    restoredFrom = tagValue(instance?.Tags, RESTORE_TAG.source);
  }
  return { interfaceId: holder.NetworkInterfaceId ?? '?', instanceId, restoredFrom };
}

/** An Elastic IP of the Region: whether it exists, and what it is associated with now. */
export async function elasticIp(
  ec2: EC2Client,
  allocationId: string,
): Promise<{ associatedWith: string | undefined } | undefined> {
  const found = await unlessMissing(() =>
    ec2.send(new DescribeAddressesCommand({ AllocationIds: [allocationId] })),
  );
  const address = found?.Addresses?.[0];
  if (address === undefined) return undefined;
  return {
    associatedWith:
      address.AssociationId === undefined
        ? undefined
        : (address.InstanceId ?? address.NetworkInterfaceId ?? '?'),
  };
}

/** The clients a launch pre-flight needs besides EC2: IAM (global) and STS. */
export interface IdentityClients {
  iam: IAMClient;
  sts: STSClient;
  destroy(): void;
}

export function identityClients(aws: AwsSettings, clients: AwsClients): IdentityClients {
  const common = { region: clients.region, credentials: clients.credentials, ...retrySettings() };
  // IAM has one global endpoint and no dual-stack one in every partition: FIPS and the override only.
  const iam = new IAMClient({
    ...common,
    ...lazyEndpoint(aws, 'iam', clients.region, 'a launch check'),
    useDualstackEndpoint: false,
  });
  // The caller's account is the same from any Region: STS is asked in the home Region, whose
  // endpoint the config names, as the credentials' own STS is.
  const stsRegion = homeRegion(aws) ?? clients.region;
  const sts = new STSClient({
    ...common,
    region: stsRegion,
    ...lazyEndpoint(aws, 'sts', stsRegion, 'a launch check'),
  });
  return {
    iam,
    sts,
    destroy() {
      iam.destroy();
      sts.destroy();
    },
  };
}

export async function callerAccount(sts: STSClient): Promise<string> {
  return answered(
    (await sts.send(new GetCallerIdentityCommand({}))).Account,
    'the account in GetCallerIdentity',
  );
}

/**
 * GetInstanceProfile (IAM API reference): `exists`, `missing` (NoSuchEntity), or `unknown` when
 * the caller may not ask (AccessDenied): RunInstances will then be the check.
 */
export async function instanceProfile(
  iam: IAMClient,
  name: string,
): Promise<{ state: 'exists' | 'missing' } | { state: 'unknown'; why: string }> {
  try {
    await iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name }));
    return { state: 'exists' };
  } catch (err) {
    // The SDK names the NoSuchEntity error NoSuchEntityException.
    if (err instanceof Error && (err.name === 'NoSuchEntity' || err.name === 'NoSuchEntityException'))
      return { state: 'missing' };
    if (err instanceof Error && (err.name === 'AccessDenied' || err.name === 'AccessDeniedException'))
      return { state: 'unknown', why: 'iam:GetInstanceProfile is not allowed' };
    throw err;
  }
}
