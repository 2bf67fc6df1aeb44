/**
 * Network interfaces, private IPv4 addresses and Elastic IPs: what a restore must bring back of
 * an instance's network identity. Rules from the EC2 documentation:
 * - "Subnet CIDR blocks" (VPC user guide): the first four addresses and the last of a subnet are
 *   reserved; an address outside the CIDR is refused.
 * - RunInstances (EC2 API reference), PrivateIpAddress: an address in use is
 *   InvalidIPAddress.InUse; NetworkInterfaces may not be given with an instance-level SubnetId,
 *   SecurityGroupIds or PrivateIpAddress (InvalidParameterCombination).
 * - "Network interfaces" (EC2 user guide): every interface of an instance is in its zone, and a
 *   type takes at most MaximumNetworkInterfaces of them, each with at most
 *   Ipv4AddressesPerInterface addresses (DescribeInstanceTypes).
 */
import type { InstanceNetworkInterface } from '@aws-sdk/client-ec2';
import {
  ACCOUNT_ID,
  type AddressRecord,
  ApiError,
  type InterfaceRecord,
  newId,
  type World,
} from './state.js';

function toNumber(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function toAddress(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

function subnetRange(cidr: string): { first: number; last: number } {
  const [base = '0.0.0.0', bits = '32'] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  const start = Math.floor(toNumber(base) / size) * size;
  // Reserved: network address, VPC router, DNS, future use; and the broadcast address.
  return { first: start + 4, last: start + size - 2 };
}

function inUse(world: World, subnetId: string): Set<string> {
  return new Set(
    [...world.interfaces.values()].filter((i) => i.subnetId === subnetId).flatMap((i) => i.privateIps),
  );
}

/** The address asked for, checked, or the lowest free one. */
export function privateIp(world: World, subnetId: string, wanted?: string): string {
  const subnet = world.subnets.get(subnetId)?.subnet;
  if (subnet?.CidrBlock === undefined)
    throw new ApiError('InvalidSubnetID.NotFound', `The subnet ID '${subnetId}' does not exist`);
  const { first, last } = subnetRange(subnet.CidrBlock);
  const taken = inUse(world, subnetId);
  if (wanted !== undefined) {
    const n = /^\d+\.\d+\.\d+\.\d+$/.test(wanted) ? toNumber(wanted) : NaN;
    if (!(n >= first && n <= last)) {
      throw new ApiError(
        'InvalidParameterValue',
        `Address ${wanted} does not fall within the subnet's address range`,
      );
    }
    if (taken.has(wanted)) throw new ApiError('InvalidIPAddress.InUse', `Address ${wanted} is in use.`);
    return wanted;
  }
  for (let n = first; n <= last; n++) if (!taken.has(toAddress(n))) return toAddress(n);
  throw new ApiError('InsufficientFreeAddressesInSubnet', `Subnet ${subnetId} has no free address`);
}

export interface InterfaceSpec {
  subnetId: string;
  groupIds: string[];
  /** Primary first; any left out are picked. */
  privateIps?: string[];
  secondaryCount?: number;
  description?: string;
  sourceDestCheck?: boolean;
}

export function createInterface(world: World, region: string, spec: InterfaceSpec): InterfaceRecord {
  const subnet = world.subnets.get(spec.subnetId);
  if (!subnet || subnet.region !== region) {
    throw new ApiError('InvalidSubnetID.NotFound', `The subnet ID '${spec.subnetId}' does not exist`);
  }
  const record: InterfaceRecord = {
    region,
    networkInterfaceId: newId('eni'),
    subnetId: spec.subnetId,
    vpcId: subnet.subnet.VpcId ?? '',
    availabilityZone: subnet.subnet.AvailabilityZone ?? '',
    privateIps: [],
    groupIds: spec.groupIds,
    sourceDestCheck: spec.sourceDestCheck ?? true,
    description: spec.description ?? '',
  };
  // Checked one by one against what is taken, the new interface's own addresses included.
  world.interfaces.set(record.networkInterfaceId, record);
  try {
    for (const ip of spec.privateIps ?? []) record.privateIps.push(privateIp(world, spec.subnetId, ip));
    if (record.privateIps.length === 0) record.privateIps.push(privateIp(world, spec.subnetId));
    for (let i = 0; i < (spec.secondaryCount ?? 0); i++)
      record.privateIps.push(privateIp(world, spec.subnetId));
  } catch (err) {
    world.interfaces.delete(record.networkInterfaceId);
    throw err;
  }
  return record;
}

export function addressOf(world: World, networkInterfaceId: string): AddressRecord | undefined {
  return [...world.addresses.values()].find((a) => a.association?.networkInterfaceId === networkInterfaceId);
}

/** The interfaces as DescribeInstances shows them, with the instance-level fields they decide. */
export function instanceNetwork(
  world: World,
  interfaceIds: string[],
): {
  NetworkInterfaces: InstanceNetworkInterface[];
  PrivateIpAddress?: string;
  SourceDestCheck?: boolean;
  PublicIpAddress?: string;
} {
  const interfaces = interfaceIds.flatMap((id) => world.interfaces.get(id) ?? []);
  const primary = interfaces[0];
  return {
    NetworkInterfaces: interfaces.map((i) => {
      const address = addressOf(world, i.networkInterfaceId);
      const association = address && {
        PublicIp: address.publicIp,
        IpOwnerId: ACCOUNT_ID,
        PublicDnsName: '',
      };
      return {
        NetworkInterfaceId: i.networkInterfaceId,
        SubnetId: i.subnetId,
        VpcId: i.vpcId,
        Description: i.description,
        OwnerId: ACCOUNT_ID,
        Status: 'in-use',
        SourceDestCheck: i.sourceDestCheck,
        PrivateIpAddress: i.privateIps[0],
        PrivateIpAddresses: i.privateIps.map((ip, n) => ({
          PrivateIpAddress: ip,
          Primary: n === 0,
          ...(n === 0 && association && { Association: association }),
        })),
        Groups: i.groupIds.map((GroupId) => ({
          GroupId,
          GroupName: world.securityGroups.get(GroupId)?.group.GroupName,
        })),
        ...(association && { Association: association }),
        Attachment: {
          AttachmentId: `eni-attach-${i.networkInterfaceId.slice(4)}`,
          DeviceIndex: i.attachment?.deviceIndex ?? 0,
          Status: 'attached',
          DeleteOnTermination: i.attachment?.deleteOnTermination ?? true,
        },
        InterfaceType: 'interface',
      };
    }),
    ...(primary && {
      PrivateIpAddress: primary.privateIps[0],
      SourceDestCheck: primary.sourceDestCheck,
      ...(addressOf(world, primary.networkInterfaceId) && {
        PublicIpAddress: addressOf(world, primary.networkInterfaceId)?.publicIp,
      }),
    }),
  };
}

let nextPublic = 10;

/** A new Elastic IP of `region`, associated with `networkInterfaceId` when one is given. */
export function allocateAddress(world: World, region: string, networkInterfaceId?: string): AddressRecord {
  const record: AddressRecord = {
    region,
    allocationId: newId('eipalloc'),
    publicIp: `198.51.100.${nextPublic++ % 250}`,
  };
  if (networkInterfaceId !== undefined) {
    const eni = world.interfaces.get(networkInterfaceId);
    record.association = {
      associationId: newId('eipassoc'),
      networkInterfaceId,
      privateIp: eni?.privateIps[0] ?? '',
    };
  }
  world.addresses.set(record.allocationId, record);
  return record;
}
