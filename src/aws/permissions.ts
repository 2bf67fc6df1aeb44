/**
 * The permission probes of `doctor`, one table by area: each row an IAM action, what ec2-bpipe
 * needs it for, and the call that IAM allows or refuses without changing anything. EC2 calls carry
 * DryRun; the EBS direct APIs and IAM have none, so they name a resource that does not exist and
 * read the error: "access denied" is IAM's answer, anything about the request itself is the
 * service's, past IAM. commands/doctor.ts turns each verdict into a line of the checklist.
 */
import {
  CompleteSnapshotCommand,
  type EBSClient,
  GetSnapshotBlockCommand,
  ListChangedBlocksCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
} from '@aws-sdk/client-ebs';
import {
  _InstanceType,
  AssociateAddressCommand,
  CopySnapshotCommand,
  CreateSnapshotCommand,
  CreateSnapshotsCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeleteVolumeCommand,
  DeregisterImageCommand,
  DescribeAddressesCommand,
  DescribeAvailabilityZonesCommand,
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstanceCreditSpecificationsCommand,
  DescribeInstancesCommand,
  DescribeInstanceStatusCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstanceTypesCommand,
  DescribeKeyPairsCommand,
  DescribeNetworkInterfacesCommand,
  DescribePlacementGroupsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  type EC2Client,
  GetConsoleOutputCommand,
  GetInstanceUefiDataCommand,
  ModifyNetworkInterfaceAttributeCommand,
  RegisterImageCommand,
  RunInstancesCommand,
  TerminateInstancesCommand,
} from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand, type IAMClient } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsSettings } from '../config.js';
import { describeError } from '../errors.js';
import { TAG } from '../format/tags.js';
import { errorName } from '../retry.js';
import { type AwsClients, lazyEndpoint } from './clients.js';

/**
 * Ids of the right shape that name nothing: a probe of a call that needs a resource when the
 * config has none yet. IAM decides before the service looks the resource up, so an answer other
 * than "access denied" shows the permission is there.
 */
export const PLACEHOLDER = {
  snapshot: 'snap-00000000000000000',
  image: 'ami-00000000000000000',
  instance: 'i-00000000000000000',
  volume: 'vol-00000000000000000',
  networkInterface: 'eni-00000000000000000',
  allocation: 'eipalloc-00000000000000000',
};

/** What a probe found: allowed, denied, or an answer that proves neither (throttling, the network). */
export type Verdict = { allowed: true } | { allowed: false; denied: boolean; reason: string };

/** How a service answers a call IAM let through (besides success), and one IAM refused. */
interface Answers {
  allowed: ReadonlySet<string>;
  denied: string;
}

const ANSWERS: Record<'ec2' | 'ebs' | 'iam', Answers> = {
  // DryRunOperation means allowed, UnauthorizedOperation denied (every EC2 action's reference).
  ec2: { allowed: new Set(['DryRunOperation']), denied: 'UnauthorizedOperation' },
  // AccessDeniedException is IAM's refusal; no such snapshot, a bad token or parameter, or a
  // conflict is EBS answering a request IAM let through (EBS direct APIs reference, "Errors").
  ebs: {
    allowed: new Set(['ResourceNotFoundException', 'ValidationException', 'ConflictException']),
    denied: 'AccessDeniedException',
  },
  // NoSuchEntity for an unknown profile: IAM let the call through (GetInstanceProfile, "Errors");
  // the SDK names it NoSuchEntityException.
  iam: { allowed: new Set(['NoSuchEntity', 'NoSuchEntityException']), denied: 'AccessDenied' },
};

export interface ProbeClients {
  ec2: EC2Client;
  ebs: EBSClient;
  iam: IAMClient;
}

/** One row: an action, what it is for, and either its probe or why it cannot be probed. */
export type PermissionProbe<S> = {
  action: `${'ec2' | 'ebs' | 'iam'}:${string}`;
  purpose: (subjects: S) => string;
  /** Left out of the checklist for these subjects (a check that does not apply to the config). */
  appliesTo?: (subjects: S) => boolean;
  /** Probed once the config's units are known (it names one of them, or a snapshot of theirs). */
  afterUnits?: boolean;
} & (
  | {
      /** Why this action cannot be probed now, or undefined when it can. */
      notNow?: (subjects: S) => string | undefined;
      probe: (clients: ProbeClients, subjects: S) => Promise<unknown>;
    }
  | { never: string }
);

/** Runs one probe; never throws: an answer that proves nothing is a verdict too. */
export async function runProbe<S>(
  row: Extract<PermissionProbe<S>, { probe: unknown }>,
  clients: ProbeClients,
  subjects: S,
): Promise<Verdict> {
  const answers =
    ANSWERS[row.action.startsWith('ebs:') ? 'ebs' : row.action.startsWith('iam:') ? 'iam' : 'ec2'];
  try {
    await row.probe(clients, subjects);
    return { allowed: true };
  } catch (err) {
    const name = errorName(err);
    if (answers.allowed.has(name)) return { allowed: true };
    return { allowed: false, denied: name === answers.denied, reason: describeError(err) };
  }
}

/** What the backup probes work on: the config's first units and its newest and oldest snapshots. */
export interface BackupSubjects {
  configName: string;
  instanceId?: string;
  volumeId?: string;
  newestSnapshot?: string;
  oldestSnapshot?: string;
}

// Tag-on-create is authorized with the create call, so the probes carry the tool's tags.
const ourTags = (configName: string) => [
  { ResourceType: 'snapshot' as const, Tags: [{ Key: TAG.config, Value: configName }] },
];
const NO_SNAPSHOT_YET = 'no snapshot of this config yet to check it on; the first backup uses it';

const BACKUP_PROBES: PermissionProbe<BackupSubjects>[] = [
  {
    action: 'ec2:DescribeInstances',
    purpose: () => 'find the instances and their volumes',
    probe: ({ ec2 }) => ec2.send(new DescribeInstancesCommand({ DryRun: true })),
  },
  {
    action: 'ec2:DescribeVolumes',
    purpose: () => 'find the volumes',
    probe: ({ ec2 }) => ec2.send(new DescribeVolumesCommand({ DryRun: true })),
  },
  {
    action: 'ec2:DescribeSnapshots',
    purpose: () => 'chains, bases and retention',
    probe: ({ ec2 }) => ec2.send(new DescribeSnapshotsCommand({ DryRun: true, OwnerIds: ['self'] })),
  },
  // The rest name the config's units or their snapshots: probed once those are known.
  {
    action: 'ec2:CreateSnapshots',
    afterUnits: true,
    purpose: (s) => `snapshot ${s.instanceId ?? ''}, with its tags`,
    appliesTo: (s) => s.instanceId !== undefined,
    probe: ({ ec2 }, s) =>
      ec2.send(
        new CreateSnapshotsCommand({
          DryRun: true,
          InstanceSpecification: { InstanceId: s.instanceId },
          TagSpecifications: ourTags(s.configName),
        }),
      ),
  },
  {
    action: 'ec2:DescribeInstanceAttribute',
    afterUnits: true,
    purpose: (s) => `keep the user data of ${s.instanceId ?? ''}`,
    appliesTo: (s) => s.instanceId !== undefined,
    probe: ({ ec2 }, s) =>
      ec2.send(
        new DescribeInstanceAttributeCommand({
          DryRun: true,
          InstanceId: s.instanceId,
          Attribute: 'userData',
        }),
      ),
  },
  {
    action: 'ec2:GetInstanceUefiData',
    afterUnits: true,
    purpose: (s) => `keep the UEFI variables of ${s.instanceId ?? ''}`,
    appliesTo: (s) => s.instanceId !== undefined,
    probe: ({ ec2 }, s) =>
      ec2.send(new GetInstanceUefiDataCommand({ DryRun: true, InstanceId: s.instanceId })),
  },
  {
    action: 'ec2:DescribeAddresses',
    afterUnits: true,
    purpose: (s) => `keep the Elastic IPs of ${s.instanceId ?? ''}`,
    appliesTo: (s) => s.instanceId !== undefined,
    probe: ({ ec2 }) => ec2.send(new DescribeAddressesCommand({ DryRun: true })),
  },
  {
    action: 'ec2:DescribeInstanceCreditSpecifications',
    afterUnits: true,
    purpose: (s) => `keep the CPU credits of ${s.instanceId ?? ''}`,
    appliesTo: (s) => s.instanceId !== undefined,
    probe: ({ ec2 }, s) =>
      ec2.send(
        new DescribeInstanceCreditSpecificationsCommand({
          DryRun: true,
          InstanceIds: s.instanceId === undefined ? [] : [s.instanceId],
        }),
      ),
  },
  {
    action: 'ec2:CreateSnapshot',
    afterUnits: true,
    purpose: (s) => `snapshot ${s.volumeId ?? ''}, with its tags`,
    appliesTo: (s) => s.volumeId !== undefined,
    probe: ({ ec2 }, s) =>
      ec2.send(
        new CreateSnapshotCommand({
          DryRun: true,
          VolumeId: s.volumeId,
          TagSpecifications: ourTags(s.configName),
        }),
      ),
  },
  {
    action: 'ec2:CreateTags',
    afterUnits: true,
    purpose: (s) => `mark ${s.newestSnapshot ?? 'a snapshot'} complete`,
    notNow: (s) => (s.newestSnapshot === undefined ? NO_SNAPSHOT_YET : undefined),
    probe: ({ ec2 }, s) =>
      ec2.send(
        new CreateTagsCommand({
          DryRun: true,
          Resources: [s.newestSnapshot ?? PLACEHOLDER.snapshot],
          Tags: [{ Key: TAG.state, Value: 'complete' }],
        }),
      ),
  },
  {
    action: 'ec2:DeleteSnapshot',
    afterUnits: true,
    purpose: (s) => `retention, on ${s.oldestSnapshot ?? 'the oldest snapshot'}`,
    notNow: (s) => (s.oldestSnapshot === undefined ? NO_SNAPSHOT_YET : undefined),
    probe: ({ ec2 }, s) =>
      ec2.send(
        new DeleteSnapshotCommand({ DryRun: true, SnapshotId: s.oldestSnapshot ?? PLACEHOLDER.snapshot }),
      ),
  },
  {
    action: 'ebs:ListSnapshotBlocks',
    afterUnits: true,
    purpose: () => 'a Full',
    probe: ({ ebs }, s) =>
      ebs.send(
        new ListSnapshotBlocksCommand({
          SnapshotId: s.newestSnapshot ?? PLACEHOLDER.snapshot,
          MaxResults: 100,
        }),
      ),
  },
  {
    action: 'ebs:ListChangedBlocks',
    afterUnits: true,
    purpose: () => 'an Incremental or Differential',
    probe: ({ ebs }, s) =>
      ebs.send(
        new ListChangedBlocksCommand({
          SecondSnapshotId: s.newestSnapshot ?? PLACEHOLDER.snapshot,
          MaxResults: 100,
        }),
      ),
  },
  {
    action: 'ebs:GetSnapshotBlock',
    afterUnits: true,
    purpose: () => 'read blocks',
    probe: ({ ebs }, s) =>
      ebs.send(
        new GetSnapshotBlockCommand({
          SnapshotId: s.newestSnapshot ?? PLACEHOLDER.snapshot,
          BlockIndex: 0,
          BlockToken: 'probe',
        }),
      ),
  },
];

/** What the DR copy probe works on. */
export interface CopySubjects {
  configName: string;
  sourceRegion: string;
  copyRegion: string;
  /** The config's newest snapshot, or a placeholder. */
  snapshotId: string;
}

const COPY_PROBES: PermissionProbe<CopySubjects>[] = [
  {
    action: 'ec2:CopySnapshot',
    purpose: (s) => `copy to ${s.copyRegion}, with its tags`,
    probe: ({ ec2 }, s) =>
      ec2.send(
        new CopySnapshotCommand({
          DryRun: true,
          SourceRegion: s.sourceRegion,
          SourceSnapshotId: s.snapshotId,
          TagSpecifications: ourTags(s.configName),
        }),
      ),
  },
];

/** What the restore probes work on: the [restore] settings they depend on. */
export interface RestoreSubjects {
  region: string;
  instanceType?: string;
  /** [restore] iam-instance-profile, a name or an ARN; undefined or `none` when not set. */
  instanceProfile?: string;
  createVolume: boolean;
  availabilityZone?: string;
}

const namedProfile = (s: RestoreSubjects): string | undefined =>
  s.instanceProfile === undefined || s.instanceProfile === 'none' ? undefined : s.instanceProfile;

/** An EC2 DryRun that needs nothing of the subjects, as a table row. */
function dryRunRow(
  action: `ec2:${string}`,
  purpose: string,
  send: (ec2: EC2Client) => Promise<unknown>,
): PermissionProbe<RestoreSubjects> {
  return { action, purpose: () => purpose, probe: ({ ec2 }) => send(ec2) };
}

const RESTORE_PROBES: PermissionProbe<RestoreSubjects>[] = [
  {
    action: 'ebs:StartSnapshot',
    purpose: () => 'write a volume',
    never: 'cannot be checked without creating a snapshot; the first restore to AWS stops at once without it',
  },
  {
    action: 'ebs:PutSnapshotBlock',
    purpose: () => 'write blocks',
    probe: ({ ebs }) =>
      ebs.send(
        new PutSnapshotBlockCommand({
          SnapshotId: PLACEHOLDER.snapshot,
          BlockIndex: 0,
          BlockData: Buffer.alloc(0),
          DataLength: 524288,
          // The SHA-256 of nothing: a well-formed request that no snapshot can take.
          Checksum: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
          ChecksumAlgorithm: 'SHA256',
        }),
      ),
  },
  {
    action: 'ebs:CompleteSnapshot',
    purpose: () => 'complete a written snapshot',
    probe: ({ ebs }) =>
      ebs.send(new CompleteSnapshotCommand({ SnapshotId: PLACEHOLDER.snapshot, ChangedBlocksCount: 0 })),
  },
  dryRunRow('ec2:DescribeInstanceTypes', 'check the instance type', (ec2) =>
    ec2.send(new DescribeInstanceTypesCommand({ DryRun: true })),
  ),
  dryRunRow('ec2:DescribeSubnets', 'check the subnet', (ec2) =>
    ec2.send(new DescribeSubnetsCommand({ DryRun: true })),
  ),
  dryRunRow('ec2:DescribeSecurityGroups', 'check the security groups', (ec2) =>
    ec2.send(new DescribeSecurityGroupsCommand({ DryRun: true })),
  ),
  dryRunRow('ec2:DescribeKeyPairs', 'check the key pair', (ec2) =>
    ec2.send(new DescribeKeyPairsCommand({ DryRun: true })),
  ),
  dryRunRow('ec2:DescribePlacementGroups', 'check the placement group', (ec2) =>
    ec2.send(new DescribePlacementGroupsCommand({ DryRun: true })),
  ),
  dryRunRow('ec2:DescribeAvailabilityZones', 'check the zone', (ec2) =>
    ec2.send(new DescribeAvailabilityZonesCommand({ DryRun: true })),
  ),
  dryRunRow('ec2:DescribeInstanceTypeOfferings', 'check the type is offered in the zone', (ec2) =>
    ec2.send(new DescribeInstanceTypeOfferingsCommand({ DryRun: true })),
  ),
  dryRunRow('ec2:DescribeNetworkInterfaces', 'check a private IP to keep is free', (ec2) =>
    ec2.send(new DescribeNetworkInterfacesCommand({ DryRun: true })),
  ),
  dryRunRow('ec2:ModifyNetworkInterfaceAttribute', 'keep a source/destination check off', (ec2) =>
    ec2.send(
      new ModifyNetworkInterfaceAttributeCommand({
        DryRun: true,
        NetworkInterfaceId: PLACEHOLDER.networkInterface,
        SourceDestCheck: { Value: false },
      }),
    ),
  ),
  dryRunRow('ec2:AssociateAddress', 'bring back an Elastic IP', (ec2) =>
    ec2.send(
      new AssociateAddressCommand({
        DryRun: true,
        AllocationId: PLACEHOLDER.allocation,
        NetworkInterfaceId: PLACEHOLDER.networkInterface,
        AllowReassociation: false,
      }),
    ),
  ),
  dryRunRow('ec2:DescribeImages', 'find an AMI a rerun made', (ec2) =>
    ec2.send(new DescribeImagesCommand({ DryRun: true, Owners: ['self'] })),
  ),
  dryRunRow('ec2:RegisterImage', 'an AMI to launch from', (ec2) =>
    ec2.send(
      new RegisterImageCommand({
        DryRun: true,
        Name: 'ec2-bpipe-doctor',
        RootDeviceName: '/dev/xvda',
        BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId: PLACEHOLDER.snapshot } }],
      }),
    ),
  ),
  {
    action: 'ec2:RunInstances',
    purpose: () => 'launch the restored instance',
    probe: ({ ec2 }, s) =>
      ec2.send(
        new RunInstancesCommand({
          DryRun: true,
          ImageId: PLACEHOLDER.image,
          // The configured type, where the SDK knows it: a policy may limit ec2:InstanceType.
          InstanceType:
            Object.values(_InstanceType).find((t) => t === s.instanceType) ?? _InstanceType.t3_micro,
          MinCount: 1,
          MaxCount: 1,
        }),
      ),
  },
  {
    action: 'iam:GetInstanceProfile',
    purpose: () => 'check the instance profile',
    probe: ({ iam }, s) => {
      const profile = namedProfile(s);
      const name = profile === undefined ? 'ec2-bpipe-doctor' : (profile.split('/').pop() ?? profile);
      return iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name }));
    },
  },
  {
    action: 'iam:PassRole',
    purpose: (s) =>
      namedProfile(s) === undefined
        ? 'launch with the stored instance profile'
        : `launch with instance profile ${namedProfile(s) ?? ''}`,
    notNow: (s) =>
      namedProfile(s) === undefined
        ? 'checked when [restore] iam-instance-profile names the profile; RunInstances refuses a launch without it'
        : undefined,
    // A RunInstances dry run that names the profile is refused without iam:PassRole on its role.
    probe: ({ ec2 }, s) => {
      const profile = namedProfile(s) ?? '';
      return ec2.send(
        new RunInstancesCommand({
          DryRun: true,
          ImageId: PLACEHOLDER.image,
          InstanceType: _InstanceType.t3_micro,
          MinCount: 1,
          MaxCount: 1,
          IamInstanceProfile: profile.startsWith('arn:') ? { Arn: profile } : { Name: profile },
        }),
      );
    },
  },
  dryRunRow('ec2:DeregisterImage', 'drop the AMI after launch', (ec2) =>
    ec2.send(new DeregisterImageCommand({ DryRun: true, ImageId: PLACEHOLDER.image })),
  ),
  // Restore tests (restore --test): the checks and console of the instance, then its end.
  dryRunRow('ec2:DescribeInstanceStatus', 'restore tests: status checks', (ec2) =>
    ec2.send(new DescribeInstanceStatusCommand({ DryRun: true })),
  ),
  dryRunRow('ec2:GetConsoleOutput', 'restore tests: console output', (ec2) =>
    ec2.send(new GetConsoleOutputCommand({ DryRun: true, InstanceId: PLACEHOLDER.instance })),
  ),
  dryRunRow('ec2:TerminateInstances', 'restore tests: end the test instance', (ec2) =>
    ec2.send(new TerminateInstancesCommand({ DryRun: true, InstanceIds: [PLACEHOLDER.instance] })),
  ),
  dryRunRow('ec2:DeleteVolume', 'restore tests: delete the volumes left', (ec2) =>
    ec2.send(new DeleteVolumeCommand({ DryRun: true, VolumeId: PLACEHOLDER.volume })),
  ),
  {
    action: 'ec2:CreateVolume',
    purpose: () => '[restore] create-volume',
    appliesTo: (s) => s.createVolume,
    probe: ({ ec2 }, s) =>
      ec2.send(
        new CreateVolumeCommand({
          DryRun: true,
          AvailabilityZone: s.availabilityZone ?? `${s.region}a`,
          Size: 1,
        }),
      ),
  },
];

/** What each area's probes work on. */
export interface ProbeSubjects {
  backup: BackupSubjects;
  'dr copies': CopySubjects;
  restore: RestoreSubjects;
}

/** Every permission the doctor probes, by the area of the checklist it belongs to: one table. */
export const PROBES: { [A in keyof ProbeSubjects]: readonly PermissionProbe<ProbeSubjects[A]>[] } = {
  backup: BACKUP_PROBES,
  'dr copies': COPY_PROBES,
  restore: RESTORE_PROBES,
};

/** Who the credentials are (STS GetCallerIdentity, which needs no permission: a failure is theirs). */
export async function callerIdentity(
  aws: AwsSettings,
  clients: AwsClients,
  region: string,
): Promise<{ arn?: string; account?: string }> {
  const sts = new STSClient({
    region,
    credentials: clients.credentials,
    ...lazyEndpoint(aws, 'sts', region, 'doctor'),
  });
  try {
    const me = await sts.send(new GetCallerIdentityCommand({}));
    return {
      ...(me.Arn !== undefined && { arn: me.Arn }),
      ...(me.Account !== undefined && { account: me.Account }),
    };
  } finally {
    sts.destroy();
  }
}
