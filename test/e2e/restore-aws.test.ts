// The restores to AWS here write every block (--from-snapshots=never): they test the stream's way
// into new snapshots. Restoring from the snapshots AWS still holds: from-snapshots.test.ts.

import { readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AdminRecord, cli, emulator, tempDir, writeConfig } from '../helpers.js';

type Em = Awaited<ReturnType<typeof emulator>>;

const KEY_EAST = 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';
const KEY_EAST_2 = 'arn:aws:kms:us-east-1:123456789012:key/99999999-2222-3333-4444-555555555555';
const KEY_WEST = 'arn:aws:kms:eu-west-1:123456789012:key/66666666-2222-3333-4444-555555555555';
const PROFILE = 'arn:aws:iam::123456789012:instance-profile/web';

const tagMap = (tags: { Key: string; Value: string }[] = []) =>
  Object.fromEntries(tags.map((t) => [t.Key, t.Value]));

describe('restore to AWS', () => {
  let em: Em;
  const dir = tempDir();
  let config: string;
  let source: { instanceId: string; volumeIds: string[] };
  let original: AdminRecord;
  let tarFile: string;
  let sourceDigests: Map<string, string>;

  beforeAll(async () => {
    em = await emulator();
    // The keys the overrides below re-encrypt with (restore checks them with KMS DescribeKey).
    for (const keyArn of [KEY_EAST_2, KEY_WEST]) await em.admin.call('POST', 'kms-keys', { keyArn });
    await em.admin.call('POST', 'placement-groups', {
      region: 'us-east-1',
      groupName: 'spread-web',
      strategy: 'partition',
      partitionCount: 3,
    });
    source = await em.admin.instance({
      instanceType: 'm5.large',
      keyName: 'ops',
      tags: { Name: 'web-1', Env: 'prod' },
      userData: Buffer.from('#cloud-config\n').toString('base64'),
      attributes: {
        IamInstanceProfile: { Arn: PROFILE, Id: 'AIPAEXAMPLE' },
        CpuOptions: { CoreCount: 1, ThreadsPerCore: 1 },
        MetadataOptions: {
          State: 'applied',
          HttpTokens: 'required',
          HttpPutResponseHopLimit: 3,
          HttpEndpoint: 'enabled',
          HttpProtocolIpv6: 'disabled',
          InstanceMetadataTags: 'enabled',
        },
      },
      volumes: [
        {
          device: '/dev/xvda',
          // gp3 above 3,000 IOPS needs a GiB per 500 IOPS; io2 takes at most 1,000 IOPS per GiB.
          sizeGiB: 8,
          volumeType: 'gp3',
          iops: 4000,
          throughput: 250,
          fill: { blocks: 25, seed: 1 },
          tags: { Role: 'root' },
        },
        {
          device: '/dev/sdf',
          sizeGiB: 8,
          volumeType: 'io2',
          iops: 5000,
          fill: { blocks: 8, seed: 2 },
          deleteOnTermination: false,
        },
        {
          device: '/dev/sdg',
          sizeGiB: 1,
          encrypted: true,
          kmsKeyId: KEY_EAST,
          fill: { blocks: 12, seed: 3 },
        },
      ],
    });
    original = (await em.admin.state()).instances.find((i) => i.InstanceId === source.instanceId)!;
    config = writeConfig(dir.path, em, '[restore]\nworkers = 4\n', 'web');
    tarFile = join(dir.path, 'full.tar');
    const backup = await cli(
      ['backup', `--config=${config}`, `--instance=${source.instanceId}`, '--job=web-full'],
      { stdoutFile: tarFile },
    );
    expect(backup.code).toBe(0);
    const state = await em.admin.state();
    sourceDigests = new Map();
    for (const volumeId of source.volumeIds) {
      const snap = state.snapshots.find((s) => s.VolumeId === volumeId)!;
      sourceDigests.set(volumeId, (await em.admin.snapshotDigest(snap.SnapshotId)).digest);
    }
  });
  afterAll(async () => {
    await em.close();
    dir.cleanup();
  });

  /** Runs a restore and returns the new instance and its volumes, as the emulator sees them. */
  async function restore(args: string[] = [], file = tarFile) {
    const result = await cli(['restore', '--from-snapshots=never', `--config=${config}`, ...args, file]);
    const lines = result.stdout.toString().trim().split('\n').filter(Boolean);
    const instanceLine = lines.find((l) => l.startsWith('instance '));
    const state = await em.admin.state();
    const instance = instanceLine
      ? state.instances.find((i) => i.InstanceId === instanceLine.split(' ')[1])
      : undefined;
    return { result, lines, state, instance };
  }

  it('rebuilds the instance as it was: properties, tags, devices, data, and removes the AMI', async () => {
    // Other tests keep AMIs (--keep-image) or restore other jobs: this one counts only its own.
    const liveImages = (images: AdminRecord[]) => images.filter((img) => img.State !== 'deregistered');
    const imagesBefore = liveImages((await em.admin.state()).images).length;
    const { result, lines, state, instance } = await restore();
    expect(result.code, result.stderr).toBe(0);
    expect(instance).toBeDefined();
    expect(instance!.InstanceId).not.toBe(source.instanceId);
    for (const field of [
      'InstanceType',
      'SubnetId',
      'VpcId',
      'KeyName',
      'EbsOptimized',
      'Architecture',
      'BootMode',
      'EnaSupport',
      'RootDeviceName',
    ] as const) {
      expect(instance![field], field).toEqual(original[field]);
    }
    expect(instance!.Placement.AvailabilityZone).toBe(original.Placement.AvailabilityZone);
    expect(instance!.SecurityGroups.map((g: AdminRecord) => g.GroupId)).toEqual(
      original.SecurityGroups.map((g: AdminRecord) => g.GroupId),
    );
    expect(instance!.UserData).toBe(original.UserData);
    expect(instance!.IamInstanceProfile.Arn).toBe(PROFILE);
    expect(instance!.CpuOptions).toEqual({ CoreCount: 1, ThreadsPerCore: 1 });
    const { State: _s, ...metadata } = instance!.MetadataOptions;
    const { State: _o, ...originalMetadata } = original.MetadataOptions;
    expect(metadata).toEqual(originalMetadata);
    const tags = tagMap(instance!.Tags);
    expect(tags).toMatchObject({
      Name: 'web-1',
      Env: 'prod',
      'ec2-bpipe:restored': 'true',
      'ec2-bpipe:source': source.instanceId,
    });
    expect(tags['ec2-bpipe:restore-date']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(instance!.BlockDeviceMappings.map((m: AdminRecord) => m.DeviceName)).toEqual([
      '/dev/xvda',
      '/dev/sdf',
      '/dev/sdg',
    ]);
    expect(instance!.BlockDeviceMappings.map((m: AdminRecord) => m.Ebs.DeleteOnTermination)).toEqual([
      true,
      false,
      false,
    ]);
    for (const [i, mapping] of instance!.BlockDeviceMappings.entries()) {
      const volume = state.volumes.find((v) => v.VolumeId === mapping.Ebs.VolumeId)!;
      expect((await em.admin.volumeDigest(volume.VolumeId)).digest).toBe(
        sourceDigests.get(source.volumeIds[i]!),
      );
      expect(tagMap(volume.Tags)['ec2-bpipe:source']).toBe(source.volumeIds[i]);
      if (i === 0) {
        expect(volume).toMatchObject({ VolumeType: 'gp3', Iops: 4000, Throughput: 250, Size: 8 });
        expect(tagMap(volume.Tags).Role).toBe('root');
      }
      if (i === 1) expect(volume).toMatchObject({ VolumeType: 'io2', Iops: 5000, Size: 8 });
      if (i === 2) expect(volume).toMatchObject({ Encrypted: true, KmsKeyId: KEY_EAST });
    }
    expect(liveImages(state.images)).toHaveLength(imagesBefore);
    const printed = lines.filter((l) => l.startsWith('snapshot ')).map((l) => l.split(' ')[1]);
    expect(printed).toHaveLength(3);
    for (const id of printed) {
      const snapshot = state.snapshots.find((s) => s.SnapshotId === id);
      expect(snapshot?.State, id).toBe('completed');
      expect(tagMap(snapshot?.Tags)['ec2-bpipe:restored'], id).toBe('true');
    }
    expect(lines.filter((l) => l.startsWith('volume '))).toHaveLength(3);
    expect(lines.some((l) => l.startsWith('image '))).toBe(false);
  });

  it('keeps the AMI with --keep-image', async () => {
    const { result, lines, state } = await restore(['--keep-image']);
    expect(result.code, result.stderr).toBe(0);
    const imageId = lines.find((l) => l.startsWith('image '))!.split(' ')[1];
    expect(state.images.find((i) => i.ImageId === imageId)!.State).toBe('available');
  });

  it('each override changes exactly its property', async () => {
    const base = (await restore()).instance!;
    const compare = (changed: AdminRecord, except: string[]) => {
      const pick = (i: AdminRecord) => ({
        InstanceType: i.InstanceType,
        SubnetId: i.SubnetId,
        AvailabilityZone: i.Placement.AvailabilityZone,
        SecurityGroups: i.SecurityGroups.map((g: AdminRecord) => g.GroupId),
        KeyName: i.KeyName,
        GroupName: i.Placement.GroupName,
        PartitionNumber: i.Placement.PartitionNumber,
      });
      const a = pick(base) as Record<string, unknown>;
      const b = pick(changed) as Record<string, unknown>;
      for (const key of Object.keys(a)) if (!except.includes(key)) expect(b[key], key).toEqual(a[key]);
    };

    const type = (await restore(['--instance-type=m5.xlarge'])).instance!;
    expect(type.InstanceType).toBe('m5.xlarge');
    // SMT off (1 core x 1 thread on m5.large) stays off on m5.xlarge, with its default 2 cores.
    expect(type.CpuOptions).toEqual({ CoreCount: 2, ThreadsPerCore: 1 });
    compare(type, ['InstanceType']);

    const state = await em.admin.state();
    const otherSubnet = (
      await em.admin.call<{ SubnetId: string }>('POST', 'subnets', {
        region: 'us-east-1',
        availabilityZone: 'us-east-1c',
        cidr: '10.0.9.0/24',
      })
    ).SubnetId;
    void state;
    const moved = (await restore([`--subnet-id=${otherSubnet}`])).instance!;
    expect(moved.SubnetId).toBe(otherSubnet);
    expect(moved.Placement.AvailabilityZone).toBe('us-east-1c');
    compare(moved, ['SubnetId', 'AvailabilityZone']);

    const group = (
      await em.admin.call<{ GroupId: string }>('POST', 'security-groups', {
        region: 'us-east-1',
        groupName: 'web-restore',
      })
    ).GroupId;
    const grouped = (await restore([`--security-group-ids=${group}`])).instance!;
    expect(grouped.SecurityGroups.map((g: AdminRecord) => g.GroupId)).toEqual([group]);
    compare(grouped, ['SecurityGroups']);

    await em.admin.call('POST', 'key-pairs', { region: 'us-east-1', keyName: 'restore-key' });
    const keyed = (await restore(['--key-name=restore-key'])).instance!;
    expect(keyed.KeyName).toBe('restore-key');
    compare(keyed, ['KeyName']);

    const placed = (await restore(['--placement-group=spread-web', '--partition-number=2'])).instance!;
    expect(placed.Placement).toMatchObject({ GroupName: 'spread-web', PartitionNumber: 2 });
    compare(placed, ['GroupName', 'PartitionNumber']);
  });

  it('refuses overrides that do not exist in the target region, before creating anything', async () => {
    const before = (await em.admin.state()).snapshots.length;
    for (const [args, pattern] of [
      [
        ['--subnet-id=subnet-0123456789abcdef0'],
        /subnet subnet-0123456789abcdef0 \(--subnet-id\) does not exist in us-east-1/,
      ],
      [['--key-name=nobody'], /key pair nobody \(--key-name\) does not exist in us-east-1/],
      [['--placement-group=nowhere'], /placement group nowhere \(--placement-group\) does not exist/],
    ] as const) {
      const { result } = await restore([...args]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(pattern);
    }
    const eu = await em.admin.call<{ GroupId: string }>('POST', 'security-groups', {
      region: 'eu-west-1',
      vpcId: 'vpc-00000000000000000',
      groupName: 'x',
    });
    void eu;
    const foreignGroup = (
      await em.admin.call<{ GroupId: string }>('POST', 'security-groups', {
        region: 'us-east-1',
        vpcId: 'vpc-0aaaaaaaaaaaaaaaa',
        groupName: 'other-vpc',
      })
    ).GroupId;
    const { result } = await restore([`--security-group-ids=${foreignGroup}`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      new RegExp(`security groups ${foreignGroup} \\(--security-group-ids\\) are not in vpc-`),
    );
    expect((await em.admin.state()).snapshots.length).toBe(before);
  });

  it('restores an instance to another region only with subnet, groups and KMS key there, and says what is missing', async () => {
    const before = (await em.admin.state()).snapshots.filter((s) => s.Region === 'eu-west-1').length;
    const refused = await restore(['--region=eu-west-1']);
    expect(refused.result.code).toBe(2);
    expect(refused.result.stderr).toMatch(
      /needs \[restore\] subnet-id, security-group-ids, kms-key-id \(for encrypted vol-/,
    );
    expect((await em.admin.state()).snapshots.filter((s) => s.Region === 'eu-west-1').length).toBe(before);

    const subnet =
      (await em.admin.state()) &&
      (await em.admin.call<{ SubnetId: string; VpcId: string }>('POST', 'subnets', {
        region: 'eu-west-1',
        availabilityZone: 'eu-west-1b',
        cidr: '10.2.0.0/24',
      }));
    const group = (
      await em.admin.call<{ GroupId: string }>('POST', 'security-groups', {
        region: 'eu-west-1',
        vpcId: subnet.VpcId,
        groupName: 'web-eu',
      })
    ).GroupId;
    const { result, instance, state } = await restore([
      '--region=eu-west-1',
      `--subnet-id=${subnet.SubnetId}`,
      `--security-group-ids=${group}`,
      `--kms-key-id=${KEY_WEST}`,
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(instance!.Region).toBe('eu-west-1');
    expect(instance!.Placement.AvailabilityZone).toBe('eu-west-1b');
    expect(instance!.KeyName).toBeUndefined();
    for (const [i, mapping] of instance!.BlockDeviceMappings.entries()) {
      const volume = state.volumes.find((v) => v.VolumeId === mapping.Ebs.VolumeId)!;
      expect(volume.Region).toBe('eu-west-1');
      expect((await em.admin.volumeDigest(volume.VolumeId)).digest).toBe(
        sourceDigests.get(source.volumeIds[i]!),
      );
      expect(volume.Encrypted).toBe(true);
      expect(volume.KmsKeyId).toBe(KEY_WEST);
    }
  });

  it('restores a volume stream to another region, and re-encrypts with --kms-key-id', async () => {
    const volumeTar = join(dir.path, 'volume.tar');
    const encrypted = source.volumeIds[2]!;
    const backup = await cli(['backup', `--config=${config}`, `--volume=${encrypted}`, '--job=vol-1'], {
      stdoutFile: volumeTar,
    });
    expect(backup.code).toBe(0);
    const volumeSnapshot = (await em.admin.state()).snapshots.find(
      (s) => s.VolumeId === encrypted && tagMap(s.Tags)['ec2-bpipe:job'] === 'vol-1',
    )!;
    const digest = (await em.admin.snapshotDigest(volumeSnapshot.SnapshotId)).digest;

    const refused = await restore(['--region=eu-west-1'], volumeTar);
    expect(refused.result.code).toBe(2);
    expect(refused.result.stderr).toMatch(/needs \[restore\] kms-key-id/);

    const west = await restore(['--region=eu-west-1', `--kms-key-id=${KEY_WEST}`], volumeTar);
    expect(west.result.code, west.result.stderr).toBe(0);
    const westId = west.lines.find((l) => l.startsWith('snapshot '))!.split(' ')[1]!;
    const westSnap = west.state.snapshots.find((s) => s.SnapshotId === westId)!;
    expect(westSnap).toMatchObject({
      Region: 'eu-west-1',
      State: 'completed',
      Encrypted: true,
      KmsKeyId: KEY_WEST,
    });
    expect((await em.admin.snapshotDigest(westId)).digest).toBe(digest);

    const rekeyed = await restore(
      [`--kms-key-id=${KEY_EAST_2}`, '--create-volume', '--availability-zone=us-east-1b'],
      volumeTar,
    );
    expect(rekeyed.result.code, rekeyed.result.stderr).toBe(0);
    const snapId = rekeyed.lines.find((l) => l.startsWith('snapshot '))!.split(' ')[1]!;
    expect(rekeyed.state.snapshots.find((s) => s.SnapshotId === snapId)).toMatchObject({
      Encrypted: true,
      KmsKeyId: KEY_EAST_2,
    });
    const volumeId = rekeyed.lines.find((l) => l.startsWith('volume '))!.split(' ')[1]!;
    const volume = rekeyed.state.volumes.find((v) => v.VolumeId === volumeId)!;
    expect(volume).toMatchObject({ AvailabilityZone: 'us-east-1b', Encrypted: true, KmsKeyId: KEY_EAST_2 });
    expect((await em.admin.volumeDigest(volumeId)).digest).toBe(digest);
  });

  it('deregisters the AMI when RunInstances fails, and names the snapshots it kept', async () => {
    await em.admin.call('POST', 'fail', {
      action: 'RunInstances',
      code: 'InsufficientInstanceCapacity',
      message: 'no capacity',
    });
    // A launch of its own: a restore with the settings of another test finds that instance.
    const live = (images: AdminRecord[]) => images.filter((i) => i.State !== 'deregistered');
    const before = live((await em.admin.state()).images).length;
    const { result, state } = await restore(['--instance-type=t3.micro']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /launching i-[0-9a-f]+ failed \(.*no capacity\)\. us-east-1[a-c] cannot run t3\.micro now \(InsufficientInstanceCapacity\)\. Run the same restore again later, .*AMI ami-[0-9a-f]+ was deregistered; the restored snapshots are kept: snap-/,
    );
    const named = /AMI (ami-[0-9a-f]+) was deregistered/.exec(result.stderr)?.[1];
    expect(state.images.find((i) => i.ImageId === named)?.State).toBe('deregistered');
    // Whatever other tests registered and kept, this launch left no AMI of its own.
    expect(live(state.images)).toHaveLength(before);
  });

  it('never completes a snapshot from a corrupted or truncated stream', async () => {
    // A job of its own: the restores above already completed snapshots for job web-full, and a
    // restore of the same source reuses them.
    const fresh = join(dir.path, 'fresh.tar');
    const backup = await cli(
      ['backup', `--config=${config}`, `--instance=${source.instanceId}`, '--job=web-corrupt'],
      { stdoutFile: fresh },
    );
    expect(backup.code).toBe(0);
    const flipped = join(dir.path, 'flipped.tar');
    const bytes = readFileSync(fresh);
    const at = bytes.length - 6 * 512 * 1024;
    bytes[at] = bytes[at]! ^ 0x10;
    writeFileSync(flipped, bytes);
    const truncated = join(dir.path, 'truncated.tar');
    writeFileSync(truncated, readFileSync(fresh));
    truncateSync(truncated, Math.floor(statSync(truncated).size * 0.6));
    const instances = (await em.admin.state()).instances.length;
    const ofJob = (state: { snapshots: AdminRecord[] }) =>
      state.snapshots.filter((s) => tagMap(s.Tags)['ec2-bpipe:source-job'] === 'web-corrupt');
    // The flipped stream reaches its last volume, so all three snapshots were started; none may be
    // completed, and since the stream was damaged they are abandoned: no later attempt resumes them.
    const damaged = await restore([], flipped);
    expect(damaged.result.code).toBe(1);
    expect(damaged.result.stderr).toMatch(/the blocks do not match their aggregate checksum/);
    const abandoned = ofJob(damaged.state);
    expect(abandoned).toHaveLength(3);
    for (const s of abandoned) {
      expect(s.State).toBe('pending');
      expect(tagMap(s.Tags)['ec2-bpipe:abandoned']).toBe('damaged-stream');
    }
    // The truncated stream starts new snapshots for the volumes it reaches, and completes none.
    const cut = await restore([], truncated);
    expect(cut.result.code).toBe(1);
    expect(cut.result.stderr).toMatch(/left by an attempt that read a damaged stream, is not resumed/);
    const after = ofJob(cut.state);
    const started = after.filter((s) => !abandoned.some((a) => a.SnapshotId === s.SnapshotId));
    expect(started.length).toBeGreaterThan(0);
    for (const s of after) expect(s.State).toBe('pending');
    for (const s of started) expect(tagMap(s.Tags)['ec2-bpipe:abandoned']).toBeUndefined();
    expect(cut.state.instances.length).toBe(instances);
  });

  it('resumes the same snapshot after a crash at PutSnapshotBlock, and completes it only once whole', async () => {
    const volumeTar = join(dir.path, 'resume.tar');
    const backup = await cli(
      ['backup', `--config=${config}`, `--volume=${source.volumeIds[0]}`, '--job=resume-1'],
      { stdoutFile: volumeTar },
    );
    expect(backup.code).toBe(0);
    await em.admin.call('POST', 'fail', {
      action: 'PutSnapshotBlock',
      code: 'ValidationException',
      status: 400,
      count: 1,
      message: 'simulated crash',
    });
    const first = await restore([], volumeTar);
    expect(first.result.code).toBe(1);
    expect(first.result.stderr).toMatch(/could not be written to snapshot snap-[0-9a-f]+/);
    const started = first.state.snapshots.filter(
      (s) => tagMap(s.Tags)['ec2-bpipe:source-job'] === 'resume-1',
    );
    expect(started).toHaveLength(1);
    expect(started[0]!.State).toBe('pending');

    const second = await restore([], volumeTar);
    expect(second.result.code, second.result.stderr).toBe(0);
    const after = second.state.snapshots.filter((s) => tagMap(s.Tags)['ec2-bpipe:source-job'] === 'resume-1');
    expect(after.map((s) => s.SnapshotId)).toEqual([started[0]!.SnapshotId]);
    expect(after[0]!.State).toBe('completed');
    expect((await em.admin.snapshotDigest(after[0]!.SnapshotId)).digest).toBe(
      sourceDigests.get(source.volumeIds[0]!),
    );
  });
});
