import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  CompleteSnapshotCommand,
  GetSnapshotBlockCommand,
  ListChangedBlocksCommand,
  ListSnapshotBlocksCommand,
  PutSnapshotBlockCommand,
} from '@aws-sdk/client-ebs';
import {
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeInstanceCreditSpecificationsCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeNetworkInterfacesCommand,
  ModifyNetworkInterfaceAttributeCommand,
  CopySnapshotCommand,
  CreateSnapshotCommand,
  CreateSnapshotsCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DeleteSnapshotCommand,
  DeleteVolumeCommand,
  DeregisterImageCommand,
  DescribeInstanceStatusCommand,
  GetConsoleOutputCommand,
  TerminateInstancesCommand,
  GetInstanceUefiDataCommand,
  DescribeAvailabilityZonesCommand,
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypesCommand,
  DescribeKeyPairsCommand,
  DescribePlacementGroupsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSnapshotsCommand,
  DescribeSubnetsCommand,
  DescribeVolumesCommand,
  RegisterImageCommand,
  RunInstancesCommand,
  _InstanceType,
} from '@aws-sdk/client-ec2';
import { GetInstanceProfileCommand } from '@aws-sdk/client-iam';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { identityClients } from '../aws/launch-checks.js';
import { type AwsClients, createClients, lazyEndpoint, resolveRegion } from '../aws/clients.js';
import { endpointFor } from '../aws/endpoints.js';
import { checkKmsKey } from '../aws/kms.js';
import { TAG } from '../format/tags.js';
import { type ChainLink, volumeLinks } from '../backup/links.js';
import { planUnit } from '../backup/plan.js';
import type { Config } from '../config.js';
import { describeAwsFailure } from '../aws/failure.js';
import { describeError, RuntimeFailure } from '../errors.js';
import { errorCode, errorName } from '../retry.js';
import { selectedUnits, type Unit } from '../selection.js';
import type { CommandContext } from './context.js';

export interface DoctorOptions {
  json: boolean;
  /** The Bacula file daemon's config, whose Plugin Directory must hold bpipe-fd.so. */
  baculaFdConf?: string;
}

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

/** One line of the checklist: what was checked, what was found, and what to do when it failed. */
export interface Check {
  area: 'setup' | 'aws' | 'backup' | 'dr copies' | 'restore';
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

/** Where Debian's and Bacula's own packages put the file daemon's config. */
const FD_CONFS = ['/etc/bacula/bacula-fd.conf', '/opt/bacula/etc/bacula-fd.conf'];

/**
 * Ids of the right shape that name nothing: a probe of a call that needs a resource when the
 * config has none yet. IAM decides before the service looks the resource up, so an answer other
 * than "access denied" shows the permission is there.
 */
const PLACEHOLDER = {
  snapshot: 'snap-00000000000000000',
  image: 'ami-00000000000000000',
  instance: 'i-00000000000000000',
  volume: 'vol-00000000000000000',
  networkInterface: 'eni-00000000000000000',
  allocation: 'eipalloc-00000000000000000',
};

/**
 * IAM has no DryRun: NoSuchEntity for an unknown profile says IAM let the call through, and
 * AccessDenied that it did not (IAM API reference, GetInstanceProfile, "Errors").
 */
const IAM_PROBE: ProbeAnswers = {
  // The SDK names the NoSuchEntity error NoSuchEntityException.
  allowed: new Set(['NoSuchEntity', 'NoSuchEntityException']),
  denied: 'AccessDenied',
};

/** What a permission probe found: allowed, denied, or an answer that proves neither. */
type Probe = { allowed: true } | { allowed: false; denied: boolean; reason: string };

/** How a service answers a call IAM let through (besides success), and one IAM refused. */
interface ProbeAnswers {
  allowed: ReadonlySet<string>;
  denied: string;
}

/** EC2 with DryRun: DryRunOperation means allowed, UnauthorizedOperation denied (every action's reference). */
const EC2_DRY_RUN: ProbeAnswers = { allowed: new Set(['DryRunOperation']), denied: 'UnauthorizedOperation' };

/**
 * The EBS direct APIs have no DryRun. AccessDeniedException says "not allowed"; an answer about
 * the request itself (no such snapshot, a bad token or parameter, a conflict) says IAM let it
 * through. Anything else (throttling, a network failure) proves neither.
 */
const EBS_PROBE: ProbeAnswers = {
  allowed: new Set(['ResourceNotFoundException', 'ValidationException', 'ConflictException']),
  denied: 'AccessDeniedException',
};

async function probe(answers: ProbeAnswers, send: () => Promise<unknown>): Promise<Probe> {
  try {
    await send();
    return { allowed: true };
  } catch (err) {
    const name = errorName(err);
    if (answers.allowed.has(name)) return { allowed: true };
    return { allowed: false, denied: name === answers.denied, reason: describeError(err) };
  }
}

const dryRun = (send: () => Promise<unknown>): Promise<Probe> => probe(EC2_DRY_RUN, send);
const ebsProbe = (send: () => Promise<unknown>): Promise<Probe> => probe(EBS_PROBE, send);

function permission(area: Check['area'], action: string, purpose: string, probe: Probe, who: string): Check {
  const name = `${action} (${purpose})`;
  if (probe.allowed) return { area, name, status: 'ok', detail: 'allowed' };
  if (probe.denied) {
    return {
      area,
      name,
      status: 'fail',
      detail: 'not allowed',
      fix: `grant ${action} to ${who} (examples/bacula/iam-policy.json has every statement ec2-bpipe needs)`,
    };
  }
  return { area, name, status: 'warn', detail: `could not be checked: ${probe.reason}` };
}

function nodeCheck(): Check {
  const version = process.versions.node;
  const major = Number(version.split('.')[0]);
  if (major >= 22) return { area: 'setup', name: 'Node.js', status: 'ok', detail: version };
  return {
    area: 'setup',
    name: 'Node.js',
    status: 'warn',
    detail: `${version}: Node 20 is past its end of life, and AWS SDK releases after January 2027 need Node 22`,
    fix: 'install Node 22 or 24 before updating ec2-bpipe',
  };
}

function stateDirCheck(config: Config): Check {
  const dir = config.bacula.stateDir;
  const name = `state directory ${dir}`;
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK);
    return { area: 'setup', name, status: 'ok', detail: 'writable' };
  } catch (err) {
    return {
      area: 'setup',
      name,
      status: 'fail',
      detail: `not a writable directory (${errorCode(err) ?? describeError(err)})`,
      fix: `mkdir -p ${dir} && chown bacula: ${dir} (the user bacula-fd runs as), or set [bacula] state-dir`,
    };
  }
}

/** The file daemon's Plugin Directory must hold bpipe-fd.so, or Bacula cannot run ec2-bpipe. */
function baculaCheck(given: string | undefined): Check {
  const name = 'Bacula bpipe plugin';
  const conf = given ?? FD_CONFS.find((f) => existsSync(f));
  if (conf === undefined) {
    return {
      area: 'setup',
      name,
      status: 'skip',
      detail: `no Bacula file daemon config here (${FD_CONFS.join(', ')}); fine when ec2-bpipe runs by hand or from cron`,
    };
  }
  let text: string;
  try {
    text = readFileSync(conf, 'utf8');
  } catch (err) {
    return {
      area: 'setup',
      name,
      status: 'fail',
      detail: `${conf}: cannot read it (${errorCode(err) ?? describeError(err)})`,
      fix: 'run the check as a user who can read the file daemon config, or pass --bacula-fd-conf',
    };
  }
  const dir = /^\s*Plugin\s*Directory\s*=\s*"?([^"\n#]+?)"?\s*$/im.exec(text)?.[1];
  if (dir === undefined) {
    return {
      area: 'setup',
      name,
      status: 'fail',
      detail: `${conf} sets no Plugin Directory`,
      fix: `add "Plugin Directory = /usr/lib/bacula" (where bpipe-fd.so is) to the FileDaemon resource of ${conf}, then restart bacula-fd`,
    };
  }
  const plugin = join(dir, 'bpipe-fd.so');
  if (!existsSync(plugin)) {
    return {
      area: 'setup',
      name,
      status: 'fail',
      detail: `${plugin} is missing (Plugin Directory of ${conf})`,
      fix: 'install the bpipe plugin (Debian: bacula-fd ships it in /usr/lib/bacula) or point Plugin Directory at it',
    };
  }
  return { area: 'setup', name, status: 'ok', detail: `${plugin} (${conf})` };
}

/** What the backup probes work on: the config's units, and its newest and oldest own snapshots. */
interface Subjects {
  units: Unit[];
  instanceId?: string;
  volumeId?: string;
  newest?: ChainLink;
  oldest?: ChainLink;
}

async function subjects(config: Config, clients: AwsClients, region: string): Promise<Subjects> {
  const units = await selectedUnits(config, clients.ec2);
  const found: Subjects = { units };
  for (const unit of units) {
    if (unit.kind === 'instance') found.instanceId ??= unit.instanceId;
    const plan = await planUnit(clients.ec2, config, region, unit);
    for (const volume of plan.volumes) {
      if (unit.kind === 'volumes') found.volumeId ??= volume.volumeId;
      const links = await volumeLinks(clients.ec2, config, volume.volumeId);
      const [newest] = links;
      if (newest !== undefined && found.newest === undefined) {
        found.newest = newest;
        found.oldest = links.at(-1);
      }
    }
  }
  return found;
}

/** The backup's checks, and the snapshot of this config later probes may name (the newest). */
async function backupChecks(
  config: Config,
  clients: AwsClients,
  region: string,
  who: string,
): Promise<{ checks: Check[]; newest?: string }> {
  const { ec2, ebs } = clients;
  const checks: Check[] = [];
  const add = (action: string, purpose: string, probe: Probe): void => {
    checks.push(permission('backup', action, purpose, probe, who));
  };
  add(
    'ec2:DescribeInstances',
    'find the instances and their volumes',
    await dryRun(() => ec2.send(new DescribeInstancesCommand({ DryRun: true }))),
  );
  add(
    'ec2:DescribeVolumes',
    'find the volumes',
    await dryRun(() => ec2.send(new DescribeVolumesCommand({ DryRun: true }))),
  );
  add(
    'ec2:DescribeSnapshots',
    'chains, bases and retention',
    await dryRun(() => ec2.send(new DescribeSnapshotsCommand({ DryRun: true, OwnerIds: ['self'] }))),
  );
  let found: Subjects;
  try {
    found = await subjects(config, clients, region);
  } catch (err) {
    checks.push({
      area: 'backup',
      name: 'units of the config',
      status: 'fail',
      detail: describeAwsFailure(err) ?? describeError(err),
      fix: `fix the selection in [backup] (instance-ids, instance-tags, volume-ids, volume-tags), the Region (${region}: [aws] region), or the permissions above`,
    });
    return { checks };
  }
  checks.push({
    area: 'backup',
    name: 'units of the config',
    status: found.units.length ? 'ok' : config.bacula.allowEmpty ? 'warn' : 'fail',
    detail: found.units.length
      ? `${found.units.length} in ${region}: ${found.units.map((u) => u.resourceId).join(', ')}`
      : `nothing selected in ${region}`,
    ...(found.units.length === 0 && { fix: 'check [backup] selection keys and [aws] region' }),
  });
  // Tag-on-create is authorized with the create call, so the probes carry the tool's tags.
  const tagSpecifications = [
    { ResourceType: 'snapshot' as const, Tags: [{ Key: TAG.config, Value: config.name }] },
  ];
  if (found.instanceId !== undefined) {
    const InstanceId = found.instanceId;
    add(
      'ec2:CreateSnapshots',
      `snapshot ${InstanceId}, with its tags`,
      await dryRun(() =>
        ec2.send(
          new CreateSnapshotsCommand({
            DryRun: true,
            InstanceSpecification: { InstanceId },
            TagSpecifications: tagSpecifications,
          }),
        ),
      ),
    );
  }
  if (found.instanceId !== undefined) {
    const InstanceId = found.instanceId;
    add(
      'ec2:DescribeInstanceAttribute',
      `keep the user data of ${InstanceId}`,
      await dryRun(() =>
        ec2.send(new DescribeInstanceAttributeCommand({ DryRun: true, InstanceId, Attribute: 'userData' })),
      ),
    );
    add(
      'ec2:GetInstanceUefiData',
      `keep the UEFI variables of ${InstanceId}`,
      await dryRun(() => ec2.send(new GetInstanceUefiDataCommand({ DryRun: true, InstanceId }))),
    );
    add(
      'ec2:DescribeAddresses',
      `keep the Elastic IPs of ${InstanceId}`,
      await dryRun(() => ec2.send(new DescribeAddressesCommand({ DryRun: true }))),
    );
    add(
      'ec2:DescribeInstanceCreditSpecifications',
      `keep the CPU credits of ${InstanceId}`,
      await dryRun(() =>
        ec2.send(
          new DescribeInstanceCreditSpecificationsCommand({ DryRun: true, InstanceIds: [InstanceId] }),
        ),
      ),
    );
  }
  if (found.volumeId !== undefined) {
    const VolumeId = found.volumeId;
    add(
      'ec2:CreateSnapshot',
      `snapshot ${VolumeId}, with its tags`,
      await dryRun(() =>
        ec2.send(new CreateSnapshotCommand({ DryRun: true, VolumeId, TagSpecifications: tagSpecifications })),
      ),
    );
  }
  const { newest, oldest } = found;
  if (newest === undefined || oldest === undefined) {
    checks.push({
      area: 'backup',
      name: 'ec2:CreateTags, ec2:DeleteSnapshot (stream state, retention)',
      status: 'skip',
      detail: 'no snapshot of this config yet to check them on; the first backup uses them',
    });
  } else {
    add(
      'ec2:CreateTags',
      `mark ${newest.snapshotId} complete`,
      await dryRun(() =>
        ec2.send(
          new CreateTagsCommand({
            DryRun: true,
            Resources: [newest.snapshotId],
            Tags: [{ Key: TAG.state, Value: 'complete' }],
          }),
        ),
      ),
    );
    add(
      'ec2:DeleteSnapshot',
      `retention, on ${oldest.snapshotId}`,
      await dryRun(() =>
        ec2.send(new DeleteSnapshotCommand({ DryRun: true, SnapshotId: oldest.snapshotId })),
      ),
    );
  }
  const SnapshotId = newest?.snapshotId ?? PLACEHOLDER.snapshot;
  add(
    'ebs:ListSnapshotBlocks',
    'a Full',
    await ebsProbe(() => ebs.send(new ListSnapshotBlocksCommand({ SnapshotId, MaxResults: 100 }))),
  );
  add(
    'ebs:ListChangedBlocks',
    'an Incremental or Differential',
    await ebsProbe(() =>
      ebs.send(new ListChangedBlocksCommand({ SecondSnapshotId: SnapshotId, MaxResults: 100 })),
    ),
  );
  add(
    'ebs:GetSnapshotBlock',
    'read blocks',
    await ebsProbe(() =>
      ebs.send(new GetSnapshotBlockCommand({ SnapshotId, BlockIndex: 0, BlockToken: 'probe' })),
    ),
  );
  return { checks, ...(newest !== undefined && { newest: newest.snapshotId }) };
}

async function copyChecks(config: Config, region: string, who: string, newest: string): Promise<Check[]> {
  const copyRegion = config.backup.copyToRegion;
  if (copyRegion === undefined) return [];
  const clients = createClients(config.aws, { region: copyRegion, purpose: 'checking the DR copies' });
  try {
    const checks = [
      permission(
        'dr copies',
        'ec2:CopySnapshot',
        `copy to ${copyRegion}, with its tags`,
        await dryRun(() =>
          clients.ec2.send(
            new CopySnapshotCommand({
              DryRun: true,
              SourceRegion: region,
              SourceSnapshotId: newest,
              TagSpecifications: [
                { ResourceType: 'snapshot', Tags: [{ Key: TAG.config, Value: config.name }] },
              ],
            }),
          ),
        ),
        who,
      ),
    ];
    const key = config.backup.copyKmsKeyId;
    if (key !== undefined)
      checks.push(await keyCheck('dr copies', clients, key, copyRegion, '[backup] copy-kms-key-id'));
    return checks;
  } finally {
    clients.destroy();
  }
}

async function keyCheck(
  area: Check['area'],
  clients: AwsClients,
  key: string,
  region: string,
  setting: string,
): Promise<Check> {
  const name = `${setting} ${key}`;
  try {
    await checkKmsKey(clients.kms, key, region, setting);
    return { area, name, status: 'ok', detail: `enabled in ${region}` };
  } catch (err) {
    return {
      area,
      name,
      status: 'fail',
      detail: describeError(err),
      fix: `use an enabled key of ${region}, and grant kms:DescribeKey on it`,
    };
  }
}

async function restoreChecks(config: Config, region: string, who: string): Promise<Check[]> {
  const clients = createClients(config.aws, { region });
  const { ec2, ebs } = clients;
  const checks: Check[] = [];
  const add = (action: string, purpose: string, probe: Probe): void => {
    checks.push(permission('restore', action, `${purpose}, in ${region}`, probe, who));
  };
  try {
    checks.push({
      area: 'restore',
      name: 'ebs:StartSnapshot (write a volume)',
      status: 'skip',
      detail:
        'cannot be checked without creating a snapshot; the first restore to AWS stops at once without it',
    });
    const SnapshotId = PLACEHOLDER.snapshot;
    const empty = Buffer.alloc(0);
    add(
      'ebs:PutSnapshotBlock',
      'write blocks',
      await ebsProbe(() =>
        ebs.send(
          new PutSnapshotBlockCommand({
            SnapshotId,
            BlockIndex: 0,
            BlockData: empty,
            DataLength: 524288,
            Checksum: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
            ChecksumAlgorithm: 'SHA256',
          }),
        ),
      ),
    );
    add(
      'ebs:CompleteSnapshot',
      'complete a written snapshot',
      await ebsProbe(() => ebs.send(new CompleteSnapshotCommand({ SnapshotId, ChangedBlocksCount: 0 }))),
    );
    for (const [action, purpose, send] of [
      [
        'ec2:DescribeInstanceTypes',
        'check the instance type',
        () => ec2.send(new DescribeInstanceTypesCommand({ DryRun: true })),
      ],
      [
        'ec2:DescribeSubnets',
        'check the subnet',
        () => ec2.send(new DescribeSubnetsCommand({ DryRun: true })),
      ],
      [
        'ec2:DescribeSecurityGroups',
        'check the security groups',
        () => ec2.send(new DescribeSecurityGroupsCommand({ DryRun: true })),
      ],
      [
        'ec2:DescribeKeyPairs',
        'check the key pair',
        () => ec2.send(new DescribeKeyPairsCommand({ DryRun: true })),
      ],
      [
        'ec2:DescribePlacementGroups',
        'check the placement group',
        () => ec2.send(new DescribePlacementGroupsCommand({ DryRun: true })),
      ],
      [
        'ec2:DescribeAvailabilityZones',
        'check the zone',
        () => ec2.send(new DescribeAvailabilityZonesCommand({ DryRun: true })),
      ],
      [
        'ec2:DescribeInstanceTypeOfferings',
        'check the type is offered in the zone',
        () => ec2.send(new DescribeInstanceTypeOfferingsCommand({ DryRun: true })),
      ],
      [
        'ec2:DescribeNetworkInterfaces',
        'check a private IP to keep is free',
        () => ec2.send(new DescribeNetworkInterfacesCommand({ DryRun: true })),
      ],
      [
        'ec2:ModifyNetworkInterfaceAttribute',
        'keep a source/destination check off',
        () =>
          ec2.send(
            new ModifyNetworkInterfaceAttributeCommand({
              DryRun: true,
              NetworkInterfaceId: PLACEHOLDER.networkInterface,
              SourceDestCheck: { Value: false },
            }),
          ),
      ],
      [
        'ec2:AssociateAddress',
        'bring back an Elastic IP',
        () =>
          ec2.send(
            new AssociateAddressCommand({
              DryRun: true,
              AllocationId: PLACEHOLDER.allocation,
              NetworkInterfaceId: PLACEHOLDER.networkInterface,
              AllowReassociation: false,
            }),
          ),
      ],
      [
        'ec2:DescribeImages',
        'find an AMI a rerun made',
        () => ec2.send(new DescribeImagesCommand({ DryRun: true, Owners: ['self'] })),
      ],
    ] as const) {
      add(action, purpose, await dryRun(send));
    }
    add(
      'ec2:RegisterImage',
      'an AMI to launch from',
      await dryRun(() =>
        ec2.send(
          new RegisterImageCommand({
            DryRun: true,
            Name: 'ec2-bpipe-doctor',
            RootDeviceName: '/dev/xvda',
            BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId } }],
          }),
        ),
      ),
    );
    add(
      'ec2:RunInstances',
      'launch the restored instance',
      await dryRun(() =>
        ec2.send(
          new RunInstancesCommand({
            DryRun: true,
            ImageId: PLACEHOLDER.image,
            // The configured type, where the SDK knows it: a policy may limit ec2:InstanceType.
            InstanceType:
              Object.values(_InstanceType).find((t) => t === config.restore.instanceType) ??
              _InstanceType.t3_micro,
            MinCount: 1,
            MaxCount: 1,
          }),
        ),
      ),
    );
    const identity = identityClients(config.aws, clients);
    try {
      const profile = config.restore.iamInstanceProfile;
      const name =
        profile === undefined || profile === 'none'
          ? 'ec2-bpipe-doctor'
          : (profile.split('/').pop() ?? profile);
      add(
        'iam:GetInstanceProfile',
        'check the instance profile',
        await probe(IAM_PROBE, () =>
          identity.iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name })),
        ),
      );
    } finally {
      identity.destroy();
    }
    const profile = config.restore.iamInstanceProfile;
    if (profile !== undefined && profile !== 'none') {
      // A RunInstances dry run that names the profile is refused without iam:PassRole on its role.
      add(
        'iam:PassRole',
        `launch with instance profile ${profile}`,
        await dryRun(() =>
          ec2.send(
            new RunInstancesCommand({
              DryRun: true,
              ImageId: PLACEHOLDER.image,
              InstanceType: _InstanceType.t3_micro,
              MinCount: 1,
              MaxCount: 1,
              IamInstanceProfile: profile.startsWith('arn:') ? { Arn: profile } : { Name: profile },
            }),
          ),
        ),
      );
    } else {
      checks.push({
        area: 'restore',
        name: 'iam:PassRole (launch with the stored instance profile)',
        status: 'skip',
        detail:
          'checked when [restore] iam-instance-profile names the profile; RunInstances refuses a launch without it',
      });
    }
    add(
      'ec2:DeregisterImage',
      'drop the AMI after launch',
      await dryRun(() => ec2.send(new DeregisterImageCommand({ DryRun: true, ImageId: PLACEHOLDER.image }))),
    );
    // Restore tests (restore --test): the checks and console of the instance, then its end.
    add(
      'ec2:DescribeInstanceStatus',
      'restore tests: status checks',
      await dryRun(() => ec2.send(new DescribeInstanceStatusCommand({ DryRun: true }))),
    );
    add(
      'ec2:GetConsoleOutput',
      'restore tests: console output',
      await dryRun(() =>
        ec2.send(new GetConsoleOutputCommand({ DryRun: true, InstanceId: PLACEHOLDER.instance })),
      ),
    );
    add(
      'ec2:TerminateInstances',
      'restore tests: end the test instance',
      await dryRun(() =>
        ec2.send(new TerminateInstancesCommand({ DryRun: true, InstanceIds: [PLACEHOLDER.instance] })),
      ),
    );
    add(
      'ec2:DeleteVolume',
      'restore tests: delete the volumes left',
      await dryRun(() => ec2.send(new DeleteVolumeCommand({ DryRun: true, VolumeId: PLACEHOLDER.volume }))),
    );
    if (config.restore.createVolume) {
      add(
        'ec2:CreateVolume',
        '[restore] create-volume',
        await dryRun(() =>
          ec2.send(
            new CreateVolumeCommand({
              DryRun: true,
              AvailabilityZone: config.restore.availabilityZone ?? `${region}a`,
              Size: 1,
            }),
          ),
        ),
      );
    }
    const key = config.restore.kmsKeyId;
    if (key !== undefined)
      checks.push(await keyCheck('restore', clients, key, region, '[restore] kms-key-id'));
    return checks;
  } finally {
    clients.destroy();
  }
}

/** The caller, from STS GetCallerIdentity, which needs no permission: a failure is the credentials'. */
async function identity(
  config: Config,
  clients: AwsClients,
  region: string,
): Promise<{ check: Check; who?: string }> {
  const sts = new STSClient({
    region,
    credentials: clients.credentials,
    ...lazyEndpoint(config.aws, 'sts', region, 'doctor'),
  });
  try {
    const me = await sts.send(new GetCallerIdentityCommand({}));
    const who = me.Arn ?? 'the caller';
    return {
      who,
      check: {
        area: 'aws',
        name: 'credentials',
        status: 'ok',
        detail: `${who} (account ${me.Account ?? '?'})`,
      },
    };
  } catch (err) {
    return {
      check: {
        area: 'aws',
        name: 'credentials',
        status: 'fail',
        detail: describeError(err),
        fix: 'set [aws] profile, access-key-id and secret-access-key, or role-arn; or give the host an instance role',
      },
    };
  } finally {
    sts.destroy();
  }
}

const MARK: Record<CheckStatus, string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

export function checklist(checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.area.length));
  return checks
    .map((c) => {
      const line = `${MARK[c.status]}  ${c.area.padEnd(width)}  ${c.name}: ${c.detail}`;
      return c.fix === undefined ? line : `${line}\n      fix: ${c.fix}`;
    })
    .join('\n');
}

/**
 * `ec2-bpipe doctor`: checks what a first job needs, before Bacula runs one: Node, the state
 * directory, the bpipe plugin, the credentials, and every permission the configured operations
 * use (EC2 with DryRun; the EBS direct APIs, which have none, by a probe only IAM can refuse).
 * Creates, tags and deletes nothing. Exit 1 when any check failed.
 */
/** How requests reach AWS: the CA bundle, the proxy and the endpoints in use, as set. */
function networkCheck(config: Config, clients: AwsClients, region: string): Check {
  const { caBundle, proxy } = clients.network;
  const endpoints = (['ec2', 'ebs', 'sts', 'kms', 'iam'] as const).flatMap((service) => {
    try {
      const url = endpointFor(config.aws, service, region, 'doctor');
      return url === undefined ? [] : [`${service} ${url}`];
    } catch {
      return [];
    }
  });
  return {
    area: 'aws',
    name: 'network',
    status: 'ok',
    detail: [
      caBundle === undefined
        ? "the system's certificate authorities"
        : `CA bundle ${caBundle.file} (${caBundle.from})`,
      proxy === undefined ? 'no proxy' : `proxy ${proxy.url} (${proxy.from})`,
      endpoints.length === 0 ? "AWS's public endpoints" : `endpoints: ${endpoints.join(', ')}`,
    ].join('; '),
  };
}

export async function doctorCommand(ctx: CommandContext, options: DoctorOptions): Promise<void> {
  const { config } = ctx;
  const checks: Check[] = [
    nodeCheck(),
    {
      area: 'setup',
      name: 'config',
      status: 'ok',
      detail: `${config.file ?? 'command line and defaults'} (name ${config.name})`,
    },
    stateDirCheck(config),
    baculaCheck(options.baculaFdConf),
  ];
  let region: string | undefined;
  try {
    region = await resolveRegion(config.aws);
    checks.push({ area: 'aws', name: 'region', status: 'ok', detail: region });
  } catch (err) {
    checks.push({ area: 'aws', name: 'region', status: 'fail', detail: describeError(err) });
  }
  if (region !== undefined) {
    const clients = createClients(config.aws, { region });
    try {
      checks.push(networkCheck(config, clients, region));
      const { check, who } = await identity(config, clients, region);
      checks.push(check);
      if (who !== undefined) {
        const backup = await backupChecks(config, clients, region, who);
        checks.push(...backup.checks);
        checks.push(...(await copyChecks(config, region, who, backup.newest ?? PLACEHOLDER.snapshot)));
        checks.push(...(await restoreChecks(config, config.restore.region ?? region, who)));
      }
    } finally {
      clients.destroy();
    }
  }
  const failed = checks.filter((c) => c.status === 'fail').length;
  ctx.stdout.write(
    options.json
      ? `${JSON.stringify({ failed, checks }, null, 2)}\n`
      : `${checklist(checks)}\n${failed ? '' : '\nall checks passed.\n'}`,
  );
  if (failed) throw new RuntimeFailure(`${failed} check(s) failed: see the fix under each FAIL line`);
}
