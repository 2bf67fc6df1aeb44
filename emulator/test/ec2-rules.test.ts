/**
 * The EC2 rules the emulator takes from AWS's documentation, each through the real SDK: instance
 * types, CPU options, boot modes, client tokens, availability zones.
 */
import {
  CreateSnapshotCommand,
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
import { emulator, sdkConfig } from '../../test/helpers.js';

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
    const err = await errorOf(ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: ['c5.large'] })));
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
});
