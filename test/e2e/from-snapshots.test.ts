/**
 * [restore] from-snapshots = auto: a stream whose snapshots AWS still holds is restored from them,
 * read and verified to its end all the same, through the real binary and the emulator.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteSnapshotCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdminRecord,
  BIN,
  backupJob,
  cli,
  emulator,
  sdkConfig,
  tagOf,
  tempDir,
  withEmulator,
  writeConfig,
} from '../helpers.js';
import { splitMembers } from '../tar-members.js';

type Em = Awaited<ReturnType<typeof emulator>>;

describe('restore with from-snapshots = auto', () => {
  let em: Em;
  const dir = tempDir();
  let config: string;
  let source: { instanceId: string; volumeIds: string[] };
  let stream: Buffer;
  /** The job's own snapshot of each volume. */
  let snapshots: Map<string, string>;
  let ec2: EC2Client;

  beforeAll(async () => {
    em = await emulator();
    ec2 = new EC2Client(sdkConfig(em));
    source = await em.admin.instance({
      instanceType: 'm5.large',
      volumes: [
        { device: '/dev/xvda', sizeGiB: 1, fill: { blocks: 12, seed: 11 } },
        { device: '/dev/sdf', sizeGiB: 1, fill: { blocks: 16, seed: 12 } },
      ],
    });
    config = writeConfig(dir.path, em, `[backup]\ninstance-ids = ${source.instanceId}\n`, 'app');
    expect((await backupJob(config, dir.path, 'app-1')).code).toBe(0);
    stream = readFileSync(join(dir.path, 'app-1.tar'));
    snapshots = new Map(
      (await em.admin.state()).snapshots
        .filter((s) => tagOf(s, 'ec2-bpipe:job') === 'app-1')
        .map((s) => [s.VolumeId as string, s.SnapshotId as string]),
    );
    expect(snapshots.size).toBe(2);
  });
  afterAll(async () => {
    ec2.destroy();
    await em.close();
    dir.cleanup();
  });

  /** Where the last volume's data starts and ends in the stream: after its metadata member. */
  const lastData = (): { start: number; end: number } => {
    const data = splitMembers(stream).members.filter((m) => m.name.endsWith('.ebs'));
    const last = data.at(-1)!;
    return { start: last.data, end: last.data + last.size };
  };

  /** Runs a restore reading `first` from stdin, then, once `ready` holds, the rest. */
  function restoreInTwoParts(first: Buffer, rest: Buffer, ready: () => Promise<boolean>) {
    const child = spawn(process.execPath, [BIN, 'restore', `--config=${config}`]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin.write(first);
    const done = (async () => {
      let sawReady = false;
      for (let i = 0; i < 600 && !sawReady; i++) {
        sawReady = await ready();
        if (!sawReady) await new Promise((r) => setTimeout(r, 50));
      }
      child.stdin.end(rest);
      return { sawReady, code: await code, stdout: () => stdout, stderr: () => stderr };
    })();
    return done;
  }

  const running = async (): Promise<AdminRecord | undefined> =>
    (await em.admin.state()).instances.find(
      (i) =>
        tagOf(i, 'ec2-bpipe:source') === source.instanceId &&
        (i.State as { Name: string }).Name === 'running',
    );

  it('launches from the live snapshots before the stream is fully read, writes no block, verifies the stream', async () => {
    await em.admin.call('POST', 'requests/reset');
    const cut = Math.floor((lastData().start + lastData().end) / 2);
    const run = await restoreInTwoParts(
      stream.subarray(0, cut),
      stream.subarray(cut),
      async () => (await running()) !== undefined,
    );
    expect(run.sawReady, run.stderr()).toBe(true);
    expect(run.code, run.stderr()).toBe(0);
    const requests = await em.admin.requests();
    expect(Object.keys(requests).filter((k) => /PutSnapshotBlock|StartSnapshot/.test(k))).toEqual([]);
    expect(run.stderr()).toMatch(
      /launching from job app-1's snapshots in us-east-1 while the stream is read and verified/,
    );
    expect(run.stderr()).toMatch(
      /read and verified to its end; 2 volume\(s\) restored from their live snapshots/,
    );
    for (const [volumeId, snapshotId] of snapshots)
      expect(run.stdout()).toContain(
        `snapshot ${snapshotId} source=${volumeId} job=app-1 region=us-east-1 from=live`,
      );
    const instance = (await running())!;
    const state = await em.admin.state();
    const fromSnapshots = (instance.BlockDeviceMappings as { Ebs: { VolumeId: string } }[]).map(
      (m) => state.volumes.find((v) => v.VolumeId === m.Ebs.VolumeId)?.SnapshotId as string,
    );
    expect(fromSnapshots.sort()).toEqual([...snapshots.values()].sort());
    await em.admin.call('POST', `instances/${instance.InstanceId as string}/terminate`, {});
  });

  it('a stream damaged after the launch still fails, and says the instance came from the snapshots', async () => {
    const damaged = Buffer.from(stream);
    const { end } = lastData();
    damaged[end - 1000] = (damaged[end - 1000] ?? 0) ^ 0xff;
    const cut = end - 4096;
    const run = await restoreInTwoParts(
      damaged.subarray(0, cut),
      damaged.subarray(cut),
      async () => (await running()) !== undefined,
    );
    expect(run.code, run.stderr()).toBe(1);
    expect(run.stderr()).toMatch(
      /Before the stream was found damaged, instance i-[0-9a-f]+ was launched from job app-1's snapshots in us-east-1, which AWS holds intact/,
    );
    const instance = (await running())!;
    expect(instance).toBeDefined();
    await em.admin.call('POST', `instances/${instance.InstanceId as string}/terminate`, {});
  });

  it('under Bacula: the data writer restores from the live snapshots, and restore.json launches from them', async () => {
    const finalizer = await cli(['backup', `--config=${config}`, '--job=app-1', '--finalizer'], {
      stdoutFile: join(dir.path, 'restore.json'),
    });
    expect(finalizer.code, finalizer.stderr).toBe(0);
    await em.admin.call('POST', 'requests/reset');
    const data = await cli(
      ['restore', `--config=${config}`, '--where=/', '--no-launch', '--skip-incomplete'],
      { stdin: stream },
    );
    expect(data.code, data.stderr).toBe(0);
    expect(data.stdout.toString()).toMatch(/ from=live$/m);
    const launch = await cli(['restore', `--config=${config}`, '--where=/'], {
      stdin: readFileSync(join(dir.path, 'restore.json')),
    });
    expect(launch.code, launch.stderr).toBe(0);
    expect(
      Object.keys(await em.admin.requests()).filter((k) => /PutSnapshotBlock|StartSnapshot/.test(k)),
    ).toEqual([]);
    const instanceId = /^instance (i-[0-9a-f]+) /m.exec(launch.stdout.toString())?.[1];
    const state = await em.admin.state();
    const instance = state.instances.find((i) => i.InstanceId === instanceId)!;
    const used = (instance.BlockDeviceMappings as { Ebs: { VolumeId: string } }[]).map(
      (m) => state.volumes.find((v) => v.VolumeId === m.Ebs.VolumeId)?.SnapshotId as string,
    );
    expect(used.sort()).toEqual([...snapshots.values()].sort());
    await em.admin.call('POST', `instances/${instanceId}/terminate`, {});
  });

  it('writes from the stream, saying why, where a snapshot is gone; never writes every block', async () => {
    // An instance, config and job of its own: the snapshot deleted here is no other test's.
    const own = await em.admin.instance({
      instanceType: 'm5.large',
      volumes: [
        { device: '/dev/xvda', sizeGiB: 1, fill: { blocks: 5, seed: 13 } },
        { device: '/dev/sdf', sizeGiB: 1, fill: { blocks: 7, seed: 14 } },
      ],
    });
    const ownConfig = writeConfig(dir.path, em, `[backup]\ninstance-ids = ${own.instanceId}\n`, 'gone');
    expect((await backupJob(ownConfig, dir.path, 'gone-1')).code).toBe(0);
    const ownSnapshots = (await em.admin.state()).snapshots
      .filter((s) => tagOf(s, 'ec2-bpipe:config') === 'gone' && tagOf(s, 'ec2-bpipe:job') === 'gone-1')
      .map((s) => [s.VolumeId as string, s.SnapshotId as string] as const);
    const [gone, kept] = ownSnapshots;
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: gone![1] }));
    await em.admin.call('POST', 'requests/reset');
    const file = join(dir.path, 'gone-1.tar');
    const run = await cli(['restore', `--config=${ownConfig}`, '--no-launch', file]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain(`${gone![0]}: no snapshot of job gone-1 is left in us-east-1`);
    expect(run.stdout.toString()).toContain(
      `snapshot ${kept![1]} source=${kept![0]} job=gone-1 region=us-east-1 from=live`,
    );
    expect((await em.admin.requests())['ebs:StartSnapshot']).toBe(1);
    const never = await cli([
      'restore',
      `--config=${ownConfig}`,
      '--no-launch',
      '--from-snapshots=never',
      file,
    ]);
    expect(never.code, never.stderr).toBe(0);
    expect(never.stdout.toString()).not.toContain('from=live');
  });
});

describe('retention beside an image launched from a point with keep-image', () => {
  it('keeps the snapshot the image uses, says why, and prunes the others', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId } = await em.admin.instance({
        instanceType: 'm5.large',
        volumes: [{ device: '/dev/xvda', sizeGiB: 1, fill: { blocks: 3, seed: 31 } }],
      });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\nkeep-snapshots = 1\n`,
        'keep',
      );
      expect((await backupJob(config, dir.path, 'k1')).code).toBe(0);
      const restored = await cli([
        'restore',
        `--config=${config}`,
        '--point=k1',
        `--instance=${instanceId}`,
        '--keep-image',
      ]);
      expect(restored.code, restored.stderr).toBe(0);
      const used = (await em.admin.state()).snapshots.find((s) => tagOf(s, 'ec2-bpipe:job') === 'k1')!
        .SnapshotId as string;
      expect((await backupJob(config, dir.path, 'k2')).code).toBe(0);
      const third = await backupJob(config, dir.path, 'k3');
      expect(third.code, third.stderr).toBe(0);
      expect(third.stderr).toContain(`retention: kept ${used}`);
      expect(third.stderr).toContain('a restore with keep-image');
      const jobs = (await em.admin.state()).snapshots
        .map((s) => tagOf(s, 'ec2-bpipe:job'))
        .filter((j) => j !== undefined)
        .sort();
      // k1 stays for its image, k2 is pruned, k3 is the newest.
      expect(jobs).toEqual(['k1', 'k3']);
    });
  });
});
