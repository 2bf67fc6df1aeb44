import { join } from 'node:path';
import { CreateTagsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { pointsOf } from '../../src/commands/points.js';
import type { ChainLink } from '../../src/backup/links.js';
import { backupJob, cli, sdkConfig, withEmulator, writeConfig, type AdminRecord } from '../helpers.js';

const tag = (s: AdminRecord, key: string): string | undefined =>
  (s.Tags as { Key: string; Value: string }[] | undefined)?.find((t) => t.Key === key)?.Value;

describe('DR copies ([backup] copy-to-region)', () => {
  it('copies each complete stream to the other Region, tagged as a link of the chain, pruned there, and listed by points', async () => {
    await withEmulator({ pendingMs: 0 }, async (em, dir) => {
      const { instanceId, volumeIds } = await em.admin.instance({
        tags: { Team: 'web' },
        volumes: [
          { sizeGiB: 2, fill: { blocks: 8, seed: 71 } },
          { sizeGiB: 1, fill: { blocks: 3, seed: 72 } },
        ],
      });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\nkeep-snapshots = 1\ncopy-to-region = eu-west-1\n` +
          'snapshot-tags = CostCenter=42\n',
        'dr',
      );
      const backup = (job: string, level: string, prev?: string) =>
        backupJob(config, dir.path, job, level, prev);
      const first = await backup('j1', 'Full');
      expect(first.code, first.stderr).toBe(0);
      expect(first.stderr).toMatch(/DR copy of snap-\w+ \(vol-\w+\) started in eu-west-1: snap-\w+/);

      let { snapshots } = await em.admin.state();
      const sources = snapshots.filter((s) => s.VolumeId !== 'vol-ffffffff');
      const copies = snapshots.filter((s) => s.VolumeId === 'vol-ffffffff');
      expect(copies).toHaveLength(2);
      for (const source of sources) {
        const copy = copies.find((c) => tag(c, 'ec2-bpipe:copy-of') === `us-east-1/${source.SnapshotId}`);
        expect(copy, `the copy of ${source.SnapshotId}`).toBeDefined();
        // The copy is a link of the same chain: same config, job, level, volume, state; the
        // user's snapshot tags too.
        for (const key of [
          'ec2-bpipe:config',
          'ec2-bpipe:job',
          'ec2-bpipe:level',
          'ec2-bpipe:volume',
          'CostCenter',
        ])
          expect(tag(copy!, key), key).toBe(tag(source, key));
        expect(tag(copy!, 'ec2-bpipe:state')).toBe('complete');
        expect((await em.admin.snapshotDigest(copy!.SnapshotId as string)).digest).toBe(
          (await em.admin.snapshotDigest(source.SnapshotId as string)).digest,
        );
      }
      const requests = await em.admin.requests();
      expect(requests['ec2:CopySnapshot']).toBe(2);
      // The PresignedUrl the emulator received names the copy and nothing a URL cannot carry
      // (the SDK's own would hold TagSpecifications=[object Object]).
      for (const copy of copies) {
        const url = new URL(String(copy.PresignedUrl));
        expect(url.href).not.toContain('object');
        const [region, source] = String(tag(copy, 'ec2-bpipe:copy-of')).split('/');
        expect(Object.fromEntries([...url.searchParams].filter(([k]) => !k.startsWith('X-Amz-')))).toEqual({
          Action: 'CopySnapshot',
          Version: '2016-11-15',
          SourceRegion: region,
          SourceSnapshotId: source,
          DestinationRegion: 'eu-west-1',
        });
        expect(url.searchParams.get('X-Amz-Credential')).toMatch(/\/us-east-1\/ec2\/aws4_request$/);
      }

      await em.admin.call('POST', `volumes/${volumeIds[0]}/mutate`, { write: { blocks: 2, seed: 73 } });
      expect((await backup('j2', 'Incremental', 'j1')).code).toBe(0);
      await em.admin.call('POST', `volumes/${volumeIds[0]}/mutate`, { write: { blocks: 1, seed: 74 } });
      const third = await backup('j3', 'Incremental', 'j2');
      expect(third.code, third.stderr).toBe(0);
      // keep-snapshots = 1 in both Regions, the newest complete Full kept: j2 goes, there as here.
      expect(third.stderr).toMatch(
        /retention of the DR copies in eu-west-1: deleted snap-\w+ of vol-\w+ \(job j2/,
      );
      ({ snapshots } = await em.admin.state());
      const jobsIn = (copy: boolean) =>
        snapshots
          .filter((s) => (s.VolumeId === 'vol-ffffffff') === copy)
          .map((s) => tag(s, 'ec2-bpipe:job'))
          .sort();
      expect(jobsIn(true)).toEqual(['j1', 'j1', 'j3', 'j3']);
      expect(jobsIn(false)).toEqual(['j1', 'j1', 'j3', 'j3']);

      const listed = await cli(['points', `--config=${config}`, '--json']);
      expect(listed.code, listed.stderr).toBe(0);
      const points = JSON.parse(listed.stdout.toString()) as Record<string, unknown>[];
      expect(points.map((p) => [p.job, p.state, p.region, p.copyOf ?? null, p.volumes])).toEqual([
        ['j3', 'complete', 'us-east-1', null, 2],
        ['j1', 'complete', 'us-east-1', null, 2],
        ['j3', 'complete', 'eu-west-1', 'us-east-1', 2],
        ['j1', 'complete', 'eu-west-1', 'us-east-1', 2],
      ]);
      // Each source point says where its copy stands, snapshot by snapshot.
      expect(points.slice(0, 2).map((p) => p.copy)).toEqual(['copied', 'copied']);
      for (const point of points.slice(0, 2)) {
        const linkCopies = point.copies as { snapshotId: string; state: string; copyId: string }[];
        expect(linkCopies.map((c) => c.snapshotId)).toEqual(point.snapshotIds);
        expect(linkCopies.every((c) => c.state === 'copied' && /^snap-/.test(c.copyId))).toBe(true);
      }
      const shown = await cli(['points', `--config=${config}`]);
      expect(shown.stdout.toString()).toMatch(/^unit .* region\s+live\s+copy$/m);
      expect(shown.stdout.toString()).toMatch(/ j3 .* us-east-1\s+yes\s+copied$/m);
      expect(shown.stdout.toString()).toMatch(/ j3 .* eu-west-1\s+yes\s+copy of us-east-1$/m);

      // The source Region lost: the chain restores from Bacula's streams into the copy Region,
      // with a subnet and group there (the originals are us-east-1's).
      const subnet = await em.admin.call<{ SubnetId: string; VpcId: string }>('POST', 'subnets', {
        region: 'eu-west-1',
        availabilityZone: 'eu-west-1b',
        cidr: '10.3.0.0/24',
      });
      const group = await em.admin.call<{ GroupId: string }>('POST', 'security-groups', {
        region: 'eu-west-1',
        vpcId: subnet.VpcId,
        groupName: 'web-dr',
      });
      const restore = await cli([
        'restore',
        `--config=${config}`,
        '--region=eu-west-1',
        `--subnet-id=${subnet.SubnetId}`,
        `--security-group-ids=${group.GroupId}`,
        ...['j1', 'j2', 'j3'].map((job) => join(dir.path, `${job}.tar`)),
      ]);
      expect(restore.code, restore.stderr).toBe(0);
      const after = await em.admin.state();
      const launched = after.instances.find((i) => i.InstanceId !== instanceId);
      expect(launched?.Placement?.AvailabilityZone).toBe('eu-west-1b');
      const headSnapshots = new Map(
        after.snapshots
          .filter((s) => s.VolumeId !== 'vol-ffffffff' && tag(s, 'ec2-bpipe:job') === 'j3')
          .map((s) => [s.VolumeId as string, s.SnapshotId as string]),
      );
      expect(headSnapshots.size).toBe(2);
      const mappings = (launched?.BlockDeviceMappings ?? []) as { Ebs: { VolumeId: string } }[];
      expect(mappings).toHaveLength(2);
      for (const mapping of mappings) {
        const volume = after.volumes.find((v) => v.VolumeId === mapping.Ebs.VolumeId);
        const source = tag(volume ?? {}, 'ec2-bpipe:source') ?? '';
        expect((await em.admin.volumeDigest(mapping.Ebs.VolumeId)).digest).toBe(
          (await em.admin.snapshotDigest(headSnapshots.get(source) ?? '')).digest,
        );
      }
    });
  });

  it('refuses a copy key of another Region or without copy-to-region, and a copy to the Region backed up, before any snapshot', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId } = await em.admin.instance({
        volumes: [{ sizeGiB: 1, fill: { blocks: 1, seed: 75 } }],
      });
      const cases: [string, RegExp][] = [
        [
          'copy-to-region = eu-west-1\ncopy-kms-key-id = arn:aws:kms:us-east-1:123456789012:key/k1\n',
          /copy-kms-key-id .* another Region than copy-to-region eu-west-1/,
        ],
        [
          'copy-kms-key-id = arn:aws:kms:eu-west-1:123456789012:key/k1\n',
          /copy-kms-key-id needs copy-to-region/,
        ],
        ['copy-to-region = us-east-1\n', /copy-to-region is \[aws\] region \(us-east-1\)/],
      ];
      for (const [extra, message] of cases) {
        const config = writeConfig(dir.path, em, `[backup]\ninstance-ids = ${instanceId}\n${extra}`, 'bad');
        const result = await cli(['backup', `--config=${config}`, '--job=b1'], {
          stdoutFile: join(dir.path, 'b1.tar'),
        });
        expect(result.code, extra).toBe(2);
        expect(result.stderr).toMatch(message);
      }
      expect((await em.admin.state()).snapshots).toHaveLength(0);
    });
  });

  it('warns when the copy Region cannot be reached, and still succeeds and lists the source Region', async () => {
    await withEmulator({ pendingMs: 0 }, async (em, dir) => {
      const { instanceId } = await em.admin.instance({
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 77 } }],
      });
      // A Region the emulator does not serve stands for one that is down or not enabled.
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\ncopy-to-region = ap-south-1\n`,
        'drx',
        ['ap-south-1'],
      );
      const backup = await cli(['backup', `--config=${config}`, '--job=x1'], {
        stdoutFile: join(dir.path, 'x1.tar'),
      });
      expect(backup.code, backup.stderr).toBe(0);
      expect(backup.stderr).toMatch(/DR cop(y of snap-\w+ \(vol-\w+\) to|ies to) ap-south-1 failed/);
      const points = await cli(['points', `--config=${config}`, '--json']);
      expect(points.code, points.stderr).toBe(0);
      expect(points.stderr).toMatch(/the DR copies of i-\w+ in ap-south-1 could not be listed/);
      const listed = JSON.parse(points.stdout.toString()) as Record<string, unknown>[];
      expect(listed.map((p) => [p.job, p.state, p.region])).toEqual([['x1', 'complete', 'us-east-1']]);
    });
  });

  it('warns, and copies nothing, when the copy key is not usable; the backup itself succeeds', async () => {
    await withEmulator({ pendingMs: 0 }, async (em, dir) => {
      const { instanceId } = await em.admin.instance({
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 76 } }],
      });
      const key = 'arn:aws:kms:eu-west-1:123456789012:key/dr-disabled';
      await em.admin.call('POST', 'kms-keys', { keyArn: key, state: 'Disabled' });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\ncopy-to-region = eu-west-1\ncopy-kms-key-id = ${key}\n`,
        'drk',
      );
      const result = await cli(['backup', `--config=${config}`, '--job=k1'], {
        stdoutFile: join(dir.path, 'k1.tar'),
      });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(
        /DR copies to eu-west-1 failed \(KMS key .* is Disabled, not Enabled; choose another \[backup\] copy-kms-key-id/,
      );
      expect((await em.admin.requests())['ec2:CopySnapshot']).toBeUndefined();
      const verify = await cli(['verify', join(dir.path, 'k1.tar')]);
      expect(verify.code, verify.stderr).toBe(0);
    });
  });
});

describe('DR copies that AWS failed later', () => {
  it("are reported by the next job with AWS's reason, deleted and made again, when their key was disabled while they ran; hostile tags stay out of the log", async () => {
    // Copies stay pending until the test moves the emulator's clock on, after disabling the key.
    await withEmulator({ copyPendingMs: 3_600_000 }, async (em, dir) => {
      const { instanceId } = await em.admin.instance({
        volumes: [
          { sizeGiB: 1, fill: { blocks: 2, seed: 78 } },
          { sizeGiB: 1, fill: { blocks: 2, seed: 79 } },
        ],
      });
      const key = 'arn:aws:kms:eu-west-1:123456789012:key/dr-revoked';
      await em.admin.call('POST', 'kms-keys', { keyArn: key });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\ncopy-to-region = eu-west-1\ncopy-kms-key-id = ${key}\nkeep-snapshots = 3\n`,
        'drr',
      );
      const backup = (job: string) =>
        cli(['backup', `--config=${config}`, `--job=${job}`], { stdoutFile: join(dir.path, `${job}.tar`) });
      expect((await backup('r1')).code).toBe(0);
      // The key is disabled before the copies complete: AWS fails them.
      await em.admin.call('POST', 'kms-keys', { keyArn: key, state: 'Disabled' });
      await em.admin.advance(3_600_000);
      const [failed, forged] = (await em.admin.state()).snapshots.filter((s) => s.Region === 'eu-west-1');
      expect([failed?.State, forged?.State]).toEqual(['error', 'error']);
      const failedId = String(failed?.SnapshotId);
      const forgedId = String(forged?.SnapshotId);
      // Tags are anyone's text: one copy's are rewritten to forge a log line.
      const west = new EC2Client(sdkConfig(em, 'eu-west-1'));
      await west.send(
        new CreateTagsCommand({
          Resources: [forgedId],
          Tags: [
            { Key: 'ec2-bpipe:copy-of', Value: 'us-east-1/snap-0\nerror: forged line' },
            { Key: 'ec2-bpipe:job', Value: 'r1\nerror: forged job' },
          ],
        }),
      );
      west.destroy();
      await em.admin.call('POST', 'kms-keys', { keyArn: key });
      const next = await backup('r2');
      expect(next.code, next.stderr).toBe(0);
      expect(next.stderr).toContain(
        `DR copy ${failedId} of ${String(tag(failed ?? {}, 'ec2-bpipe:copy-of'))} (job r1) failed in eu-west-1`,
      );
      expect(next.stderr).toContain(`DR copy ${forgedId} of a snapshot (job ?) failed in eu-west-1`);
      // AWS's own reason is in the line.
      expect(next.stderr).toContain(`("The KMS key ${key} of the snapshot copy is not usable")`);
      expect(next.stderr).not.toContain('forged');
      // The failed copies were deleted and r1's links copied again, beside r2's own.
      const copies = (await em.admin.state()).snapshots.filter((s) => s.Region === 'eu-west-1');
      expect(copies.map((s) => tag(s, 'ec2-bpipe:job')).sort()).toEqual(['r1', 'r1', 'r2', 'r2']);
      expect(copies.map((s) => s.SnapshotId)).not.toContain(failedId);
    });
  });
});

describe("DR copies under AWS's quota of 20 copies in flight per Region", () => {
  it('starts 20 of 30, never more in flight, and says the rest wait for a later job', async () => {
    // Copies stay pending a minute: all 20 places are held while the job runs.
    await withEmulator({ pendingMs: 0, copyPendingMs: 60_000 }, async (em, dir) => {
      const { instanceId } = await em.admin.instance({
        volumes: Array.from({ length: 30 }, (_, i) => ({ sizeGiB: 1, fill: { blocks: 1, seed: 100 + i } })),
      });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\ncopy-to-region = eu-west-1\n`,
        'quota',
      );
      const result = await backupJob(config, dir.path, 'q1', 'Full');
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(
        /DR copies to eu-west-1: 10 of 30 left for a later job, since AWS makes at most 20 snapshot copies into a Region at once \(0 of this config were under way before this job, 20 started now\)/,
      );
      // The emulator refuses a 21st copy in flight (ResourceLimitExceeded): none was even asked.
      expect((await em.admin.requests())['ec2:CopySnapshot']).toBe(20);
      const copies = (await em.admin.state()).snapshots.filter((s) => s.Region === 'eu-west-1');
      expect(copies.filter((s) => s.State === 'pending')).toHaveLength(20);
      const listed = JSON.parse(
        (await cli(['points', `--config=${config}`, '--json'])).stdout.toString(),
      ) as {
        copy?: string;
        copies?: { state: string }[];
      }[];
      expect(listed[0]?.copy).toBe('missing');
      expect(listed[0]?.copies?.filter((c) => c.state === 'copying')).toHaveLength(20);
      expect(listed[0]?.copies?.filter((c) => c.state === 'missing')).toHaveLength(10);
    });
  });

  it("copies an earlier job's link the quota left out, in the next job", async () => {
    await withEmulator({ pendingMs: 0 }, async (em, dir) => {
      const { instanceId, volumeIds } = await em.admin.instance({
        volumes: [{ sizeGiB: 1, fill: { blocks: 2, seed: 90 } }],
      });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\ncopy-to-region = eu-west-1\nkeep-snapshots = 2\n`,
        'later',
      );
      // Other tools' copies hold every place when the first job asks.
      await em.admin.call('POST', 'fail', {
        action: 'CopySnapshot',
        code: 'ResourceLimitExceeded',
        message: 'You have exceeded the limit of concurrent snapshot copies.',
      });
      const first = await backupJob(config, dir.path, 'a1', 'Full');
      expect(first.code, first.stderr).toBe(0);
      expect(first.stderr).toMatch(/DR copies to eu-west-1: 1 of 1 left for a later job/);
      const [a1] = (await em.admin.state()).snapshots.filter((s) => s.Region === 'us-east-1');
      await em.admin.call('POST', `volumes/${volumeIds[0]}/mutate`, { write: { blocks: 1, seed: 91 } });
      const second = await backupJob(config, dir.path, 'a2', 'Incremental', 'a1');
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toContain(
        `DR copy of ${String(a1?.SnapshotId)} (${volumeIds[0]}) started in eu-west-1`,
      );
      const copies = (await em.admin.state()).snapshots.filter((s) => s.Region === 'eu-west-1');
      expect(copies.map((s) => tag(s, 'ec2-bpipe:job')).sort()).toEqual(['a1', 'a2']);
      expect(copies.find((s) => tag(s, 'ec2-bpipe:job') === 'a1')?.State).toBe('completed');
    });
  });
});

describe('points of DR copies still under way', () => {
  it('calls a job whose copies AWS has not finished "copying", and one with an unfinished stream "incomplete"', () => {
    const link = (job: string, complete: boolean, pending: boolean, i: number): ChainLink => ({
      snapshotId: `snap-${String(i).padStart(17, '0')}`,
      volumeId: `vol-${String(i).padStart(17, '0')}`,
      job,
      baseJob: null,
      level: 'Full',
      complete,
      pending,
      sizeGiB: 1,
      startTime: new Date(Date.UTC(2026, 10, 1, 0, i)),
    });
    const unit = {
      kind: 'instance',
      resourceId: 'i-0123456789abcdef0',
      instanceId: 'i-0123456789abcdef0',
    } as const;
    const points = pointsOf(unit, 'eu-west-1', [
      link('a', true, false, 1),
      link('a', false, true, 2),
      link('b', false, false, 3),
      link('b', false, true, 4),
      link('c', true, false, 5),
    ]);
    expect(points.map((p) => [p.job, p.state])).toEqual([
      ['c', 'complete'],
      ['b', 'incomplete'],
      ['a', 'copying'],
    ]);
  });
});
