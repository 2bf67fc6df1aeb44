/**
 * The EC2 rules the emulator takes from AWS's documentation, each through the real SDK: instance
 * types, CPU options, boot modes, client tokens, availability zones.
 */
import { EBSClient, ListSnapshotBlocksCommand } from '@aws-sdk/client-ebs';
import {
  CopySnapshotCommand,
  CreateSnapshotCommand,
  DescribeSnapshotsCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInstanceTypesCommand,
  EC2Client,
  RegisterImageCommand,
  RunInstancesCommand,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { presignedCopyUrl } from '../../src/aws/copy.js';
import { credentials, emulator, sdkConfig } from '../../test/helpers.js';

type Em = Awaited<ReturnType<typeof emulator>>;

const errorOf = (p: Promise<unknown>): Promise<Error> =>
  p.then(
    () => {
      throw new Error('the call succeeded');
    },
    (err: unknown) => err as Error,
  );

describe('EC2 rules of the emulator', () => {
  let em: Em;
  let ec2: EC2Client;
  let image: (
    bootMode?: 'uefi' | 'legacy-bios' | 'uefi-preferred',
    architecture?: 'x86_64' | 'arm64',
    ena?: boolean,
  ) => Promise<string>;

  beforeAll(async () => {
    em = await emulator({ pendingMs: 0 });
    ec2 = new EC2Client(sdkConfig(em));
    const { volumeId } = await em.admin.volume({ sizeGiB: 1 });
    const { SnapshotId } = await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
    image = async (bootMode, architecture = 'x86_64', ena = true) =>
      (
        await ec2.send(
          new RegisterImageCommand({
            Name: `img-${Math.random()}`,
            Architecture: architecture,
            RootDeviceName: '/dev/xvda',
            VirtualizationType: 'hvm',
            EnaSupport: ena,
            ...(bootMode && { BootMode: bootMode }),
            BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId } }],
          }),
        )
      ).ImageId!;
  });
  afterAll(async () => {
    ec2.destroy();
    await em.close();
  });

  const run = (input: Partial<RunInstancesCommandInput>) =>
    ec2.send(new RunInstancesCommand({ MinCount: 1, MaxCount: 1, ...input }));

  it('DescribeInstanceTypes describes known types and refuses unknown ones with InvalidInstanceType', async () => {
    const { InstanceTypes = [] } = await ec2.send(
      new DescribeInstanceTypesCommand({ InstanceTypes: ['t2.micro', 'm5.metal'] }),
    );
    expect(
      InstanceTypes.map((t) => [
        t.InstanceType,
        t.BareMetal,
        t.NetworkInfo?.EnaSupport,
        t.SupportedBootModes,
      ]),
    ).toEqual([
      ['t2.micro', false, 'unsupported', ['legacy-bios']],
      ['m5.metal', true, 'required', ['legacy-bios', 'uefi']],
    ]);
    const err = await errorOf(
      ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: ['u-6tb1.metal'] })),
    );
    expect(err.name).toBe('InvalidInstanceType');
  });

  it('RunInstances refuses an unknown type, another architecture, an unsupported boot mode, and ENA or EBS optimization a type lacks', async () => {
    const x86 = await image('uefi');
    expect((await errorOf(run({ ImageId: x86, InstanceType: 'zz9.huge' as never }))).name).toBe(
      'InvalidParameterValue',
    );
    expect((await errorOf(run({ ImageId: x86, InstanceType: 'm6g.large' }))).message).toMatch(/architecture/);
    expect((await errorOf(run({ ImageId: x86, InstanceType: 't2.micro' }))).message).toMatch(
      /boot mode uefi/,
    );
    const legacy = await image('legacy-bios');
    expect((await errorOf(run({ ImageId: legacy, InstanceType: 't2.micro' }))).message).toMatch(/ENA/);
    const noEna = await image('uefi-preferred', 'x86_64', false);
    expect(
      (await errorOf(run({ ImageId: noEna, InstanceType: 't2.micro', EbsOptimized: true }))).message,
    ).toMatch(/EBS-optimized/);
    const ok = await run({ ImageId: noEna, InstanceType: 't2.micro' });
    expect(ok.Instances?.[0]?.InstanceType).toBe('t2.micro');
  });

  it('RunInstances takes CPU options only together, valid for the type, and never on bare metal', async () => {
    const ami = await image('uefi');
    const cases: [
      RunInstancesCommandInput['InstanceType'],
      RunInstancesCommandInput['CpuOptions'],
      string,
    ][] = [
      ['m5.metal', { CoreCount: 2, ThreadsPerCore: 2 }, 'InvalidParameterCombination'],
      ['m5.xlarge', { CoreCount: 2 }, 'InvalidParameterCombination'],
      ['m5.xlarge', { CoreCount: 3, ThreadsPerCore: 2 }, 'InvalidCpuOptions'],
    ];
    for (const [type, cpu, code] of cases) {
      expect(
        (await errorOf(run({ ImageId: ami, InstanceType: type, CpuOptions: cpu }))).name,
        JSON.stringify(cpu),
      ).toBe(code);
    }
    const ok = await run({
      ImageId: ami,
      InstanceType: 'm5.xlarge',
      CpuOptions: { CoreCount: 2, ThreadsPerCore: 1 },
    });
    expect(ok.Instances?.[0]?.CpuOptions).toEqual({ CoreCount: 2, ThreadsPerCore: 1 });
  });

  it('RunInstances and CreateVolume answer a repeated client token with the first result, and other parameters with IdempotentParameterMismatch', async () => {
    const ami = await image('uefi');
    const first = await run({ ImageId: ami, InstanceType: 'm5.large', ClientToken: 'launch-1' });
    const again = await run({ ImageId: ami, InstanceType: 'm5.large', ClientToken: 'launch-1' });
    expect(again.Instances?.[0]?.InstanceId).toBe(first.Instances?.[0]?.InstanceId);
    const other = await errorOf(run({ ImageId: ami, InstanceType: 'm5.xlarge', ClientToken: 'launch-1' }));
    expect(other.name).toBe('IdempotentParameterMismatch');
    const volume = (input: { Size: number }) =>
      ec2.send(
        new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', ClientToken: 'volume-1', ...input }),
      );
    const a = await volume({ Size: 2 });
    expect((await volume({ Size: 2 })).VolumeId).toBe(a.VolumeId);
    expect((await errorOf(volume({ Size: 3 }))).name).toBe('IdempotentParameterMismatch');
  });

  it('DescribeAvailabilityZones refuses an unknown ZoneNames entry, and an unknown zone-name filter matches nothing', async () => {
    const err = await errorOf(ec2.send(new DescribeAvailabilityZonesCommand({ ZoneNames: ['us-east-1z'] })));
    expect(err.name).toBe('InvalidParameterValue');
    const { AvailabilityZones = [] } = await ec2.send(
      new DescribeAvailabilityZonesCommand({ Filters: [{ Name: 'zone-name', Values: ['us-east-1z'] }] }),
    );
    expect(AvailabilityZones).toEqual([]);
    const named = await ec2.send(new DescribeAvailabilityZonesCommand({ ZoneNames: ['us-east-1b'] }));
    expect(named.AvailabilityZones?.map((z) => z.ZoneName)).toEqual(['us-east-1b']);
  });

  it('CreateVolume applies the sizes, IOPS ranges and ratios of each volume type, and the admin API seeds only valid volumes', async () => {
    const create = (input: {
      VolumeType: 'gp3' | 'io1' | 'io2';
      Size: number;
      Iops?: number;
      Throughput?: number;
    }) => ec2.send(new CreateVolumeCommand({ AvailabilityZone: 'us-east-1a', ...input }));
    for (const bad of [
      { VolumeType: 'gp3', Size: 2, Iops: 4000 },
      { VolumeType: 'io2', Size: 4, Iops: 5000 },
      { VolumeType: 'io1', Size: 3, Iops: 100 },
      { VolumeType: 'gp3', Size: 100, Iops: 3000, Throughput: 800 },
      { VolumeType: 'gp3', Size: 100, Iops: 2000 },
    ] as const) {
      expect((await errorOf(create(bad))).name, JSON.stringify(bad)).toBe('InvalidParameterValue');
    }
    const ok = await create({ VolumeType: 'gp3', Size: 8, Iops: 4000, Throughput: 250 });
    expect(ok).toMatchObject({ Size: 8, Iops: 4000, Throughput: 250 });
    await expect(em.admin.volume({ sizeGiB: 4, volumeType: 'io2', iops: 5000 })).rejects.toThrow(/too high/);
  });

  it('refuses more than 50 tags on a resource, at creation and by CreateTags', async () => {
    const tags = (n: number, prefix = 'k') =>
      Array.from({ length: n }, (_, i) => ({ Key: `${prefix}${i}`, Value: 'v' }));
    const tooMany = await errorOf(
      ec2.send(
        new CreateVolumeCommand({
          AvailabilityZone: 'us-east-1a',
          Size: 1,
          TagSpecifications: [{ ResourceType: 'volume', Tags: tags(51) }],
        }),
      ),
    );
    expect(tooMany.name).toBe('TagLimitExceeded');
    const volume = await ec2.send(
      new CreateVolumeCommand({
        AvailabilityZone: 'us-east-1a',
        Size: 1,
        TagSpecifications: [{ ResourceType: 'volume', Tags: tags(50) }],
      }),
    );
    const more = await errorOf(
      ec2.send(new CreateTagsCommand({ Resources: [volume.VolumeId!], Tags: tags(1, 'extra') })),
    );
    expect(more.name).toBe('TagLimitExceeded');
  });

  it('RegisterImage refuses TPM v2.0 on an AMI that does not boot UEFI', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1 });
    const { SnapshotId } = await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
    const register = (BootMode: 'uefi' | 'legacy-bios') =>
      ec2.send(
        new RegisterImageCommand({
          Name: `tpm-${BootMode}`,
          Architecture: 'x86_64',
          RootDeviceName: '/dev/xvda',
          VirtualizationType: 'hvm',
          BootMode,
          TpmSupport: 'v2.0',
          BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId } }],
        }),
      );
    expect((await errorOf(register('legacy-bios'))).name).toBe('InvalidParameterCombination');
    expect((await register('uefi')).ImageId).toMatch(/^ami-/);
  });

  it('RegisterImage takes UefiData of at most 64,000 characters', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1 });
    const { SnapshotId } = await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
    const register = (UefiData: string) =>
      ec2.send(
        new RegisterImageCommand({
          Name: `uefi-${UefiData.length}`,
          Architecture: 'x86_64',
          RootDeviceName: '/dev/xvda',
          BootMode: 'uefi',
          UefiData,
          BlockDeviceMappings: [{ DeviceName: '/dev/xvda', Ebs: { SnapshotId } }],
        }),
      );
    expect((await register('A'.repeat(64_000))).ImageId).toMatch(/^ami-/);
    expect((await errorOf(register('A'.repeat(64_004)))).message).toMatch(/at most 64000 characters/);
  });

  it('CopySnapshot copies a completed snapshot into the Region it is sent to, with the tags asked for and the rules of encryption', async () => {
    const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 3, seed: 7 } });
    const source = await ec2.send(
      new CreateSnapshotCommand({
        VolumeId: volumeId,
        TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'kept', Value: 'no' }] }],
      }),
    );
    const west = new EC2Client(sdkConfig(em, 'eu-west-1'));
    try {
      const copy = (input: Partial<ConstructorParameters<typeof CopySnapshotCommand>[0]> = {}) =>
        west.send(
          new CopySnapshotCommand({
            SourceRegion: 'us-east-1',
            SourceSnapshotId: source.SnapshotId,
            ...input,
          }),
        );
      // pendingMs is 0 here, so the source is completed at the next call; pending is refused.
      // The SDK's own PresignedUrl of a request with tags carries TagSpecifications=[object
      // Object]: AWS cannot authenticate it, and the copy fails asynchronously.
      const tagSpecifications = [
        { ResourceType: 'snapshot' as const, Tags: [{ Key: 'copy', Value: 'yes' }] },
      ];
      const broken = await copy({ TagSpecifications: tagSpecifications });
      const [failed] =
        (await west.send(new DescribeSnapshotsCommand({ SnapshotIds: [broken.SnapshotId!] }))).Snapshots ??
        [];
      expect(failed).toMatchObject({ State: 'error' });
      expect(failed?.StateMessage).toMatch(/TagSpecifications, which is no parameter of CopySnapshot/);
      // A PresignedUrl built as the reference describes it (src/aws/copy.ts) lets the copy land.
      const presign = (snapshotId: string, destinationRegion = 'eu-west-1') =>
        presignedCopyUrl({
          source: ec2,
          sourceRegion: 'us-east-1',
          snapshotId,
          destinationRegion,
          credentials: () => Promise.resolve(credentials),
        });
      const made = await copy({
        TagSpecifications: tagSpecifications,
        DestinationRegion: 'eu-west-1',
        PresignedUrl: await presign(source.SnapshotId!),
      });
      // One for another snapshot, or another destination, or tampered with, fails the copy.
      const other = await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
      const signed = new URL(await presign(source.SnapshotId!));
      signed.searchParams.set('Description', 'changed after signing');
      for (const [url, reason] of [
        [await presign(other.SnapshotId!), /SourceSnapshotId .* does not match/],
        [await presign(source.SnapshotId!, 'eu-central-1'), /DestinationRegion .* does not match/],
        [signed.href, /signature does not match/],
      ] as const) {
        const refused = await copy({ DestinationRegion: 'eu-west-1', PresignedUrl: url });
        const [state] =
          (await west.send(new DescribeSnapshotsCommand({ SnapshotIds: [refused.SnapshotId!] }))).Snapshots ??
          [];
        expect(state?.State).toBe('error');
        expect(state?.StateMessage).toMatch(reason);
      }
      const [described] =
        (await west.send(new DescribeSnapshotsCommand({ SnapshotIds: [made.SnapshotId!] }))).Snapshots ?? [];
      expect(described).toMatchObject({
        State: 'completed',
        VolumeId: 'vol-ffffffff',
        VolumeSize: 1,
        Encrypted: false,
        Tags: [{ Key: 'copy', Value: 'yes' }],
      });
      expect((await em.admin.snapshotDigest(made.SnapshotId!)).digest).toBe(
        (await em.admin.snapshotDigest(source.SnapshotId!)).digest,
      );
      // "If KmsKeyId is specified, the encrypted state must be true."
      const keyArn = 'arn:aws:kms:eu-west-1:123456789012:key/dr-key';
      await em.admin.call('POST', 'kms-keys', { keyArn });
      expect((await errorOf(copy({ KmsKeyId: keyArn }))).name).toBe('InvalidParameterDependency');
      const encrypted = await copy({ Encrypted: true, KmsKeyId: keyArn });
      // An unknown key is accepted, and the copy fails later: AWS checks the key asynchronously.
      const badKey = await copy({ Encrypted: true, KmsKeyId: 'arn:aws:kms:eu-west-1:123456789012:key/none' });
      const after = await west.send(
        new DescribeSnapshotsCommand({ SnapshotIds: [encrypted.SnapshotId!, badKey.SnapshotId!] }),
      );
      const byId = new Map(after.Snapshots?.map((s) => [s.SnapshotId, s]));
      expect(byId.get(encrypted.SnapshotId)).toMatchObject({
        Encrypted: true,
        KmsKeyId: keyArn,
        State: 'completed',
      });
      expect(byId.get(badKey.SnapshotId)?.State).toBe('error');
      // A key disabled while the copy runs fails it too (pendingMs is 0: it completes at the next call).
      const disabledKey = 'arn:aws:kms:eu-west-1:123456789012:key/dr-disabled-later';
      await em.admin.call('POST', 'kms-keys', { keyArn: disabledKey });
      const late = await copy({ Encrypted: true, KmsKeyId: disabledKey });
      await em.admin.call('POST', 'kms-keys', { keyArn: disabledKey, state: 'Disabled' });
      const [lateCopy] =
        (await west.send(new DescribeSnapshotsCommand({ SnapshotIds: [late.SnapshotId!] }))).Snapshots ?? [];
      expect(lateCopy?.State).toBe('error');
      // The source must exist in SourceRegion, and the Region must be one.
      expect((await errorOf(copy({ SourceRegion: 'eu-central-1' }))).name).toBe('InvalidSnapshot.NotFound');
      expect((await errorOf(copy({ SourceRegion: 'xx-nowhere-1' }))).name).toBe('InvalidParameterValue');
    } finally {
      west.destroy();
    }
  });

  it('CopySnapshot refuses a snapshot that is still pending', async () => {
    const slow = await emulator({ pendingMs: 60_000 });
    const east = new EC2Client(sdkConfig(slow));
    const west = new EC2Client(sdkConfig(slow, 'eu-west-1'));
    try {
      const { volumeId } = await slow.admin.volume({ sizeGiB: 1 });
      const { SnapshotId } = await east.send(new CreateSnapshotCommand({ VolumeId: volumeId }));
      const refused = await errorOf(
        west.send(new CopySnapshotCommand({ SourceRegion: 'us-east-1', SourceSnapshotId: SnapshotId })),
      );
      expect(refused.name).toBe('IncorrectState');
    } finally {
      east.destroy();
      west.destroy();
      await slow.close();
    }
  });

  it('answers DryRun with DryRunOperation, and an action the policy lacks with UnauthorizedOperation or AccessDeniedException', async () => {
    const denied = await emulator({ deniedActions: ['ec2:CreateSnapshot', 'ebs:ListSnapshotBlocks'] });
    const client = new EC2Client(sdkConfig(denied));
    const ebs = new EBSClient(sdkConfig(denied));
    const sts = new STSClient(sdkConfig(denied));
    try {
      const { volumeId } = await denied.admin.volume({ sizeGiB: 1 });
      const dry = await errorOf(
        client.send(new DescribeSnapshotsCommand({ DryRun: true, OwnerIds: ['self'] })),
      );
      expect(dry.name).toBe('DryRunOperation');
      expect((dry as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(412);
      for (const DryRun of [true, false]) {
        const refused = await errorOf(client.send(new CreateSnapshotCommand({ VolumeId: volumeId, DryRun })));
        expect(refused.name).toBe('UnauthorizedOperation');
        expect(refused.message).toContain('ec2:CreateSnapshot');
      }
      expect((await denied.admin.state()).snapshots).toHaveLength(0);
      const list = await errorOf(
        ebs.send(new ListSnapshotBlocksCommand({ SnapshotId: 'snap-0123456789abcdef0' })),
      );
      expect(list.name).toBe('AccessDeniedException');
      // GetCallerIdentity needs no permission.
      const me = await sts.send(new GetCallerIdentityCommand({}));
      expect(me).toMatchObject({ Account: '123456789012', Arn: 'arn:aws:iam::123456789012:user/emulator' });
    } finally {
      client.destroy();
      ebs.destroy();
      sts.destroy();
      await denied.close();
    }
  });
});
