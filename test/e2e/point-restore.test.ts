/**
 * Restore from restore points AWS still holds (restore --point) and restore tests (--test),
 * through the real binary, the SDK and the emulator.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateTagsCommand, DeleteSnapshotCommand, EC2Client } from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, backupJob, cli, emulator, sdkConfig, tagOf, tempDir, writeConfig } from '../helpers.js';

type Em = Awaited<ReturnType<typeof emulator>>;

const TEST_TAG = 'ec2-bpipe:restore-test';

describe('restore --point and --test', () => {
  let em: Em;
  const dir = tempDir();
  let config: string;
  let source: { instanceId: string; volumeIds: string[] };
  /** Each job's snapshot of each volume, and its digest. */
  const jobs = new Map<string, Map<string, { snapshotId: string; digest: string }>>();
  let ec2: EC2Client;

  const snapshotsOf = async (job: string) => {
    const out = new Map<string, { snapshotId: string; digest: string }>();
    for (const s of (await em.admin.state()).snapshots) {
      if (tagOf(s, 'ec2-bpipe:job') !== job || tagOf(s, 'ec2-bpipe:restored') !== undefined) continue;
      out.set(s.VolumeId as string, {
        snapshotId: s.SnapshotId as string,
        digest: (await em.admin.snapshotDigest(s.SnapshotId as string)).digest,
      });
    }
    return out;
  };

  /** What a test left: any resource carrying a test tag that still exists. */
  const leftovers = async () => {
    const state = await em.admin.state();
    return [
      ...state.instances
        .filter(
          (i) => tagOf(i, TEST_TAG) !== undefined && (i.State as { Name: string }).Name !== 'terminated',
        )
        .map((i) => i.InstanceId as string),
      ...state.images
        .filter((i) => tagOf(i, TEST_TAG) !== undefined && i.State !== 'deregistered')
        .map((i) => i.ImageId as string),
      ...state.volumes.filter((v) => tagOf(v, TEST_TAG) !== undefined).map((v) => v.VolumeId as string),
      ...state.snapshots.filter((s) => tagOf(s, TEST_TAG) !== undefined).map((s) => s.SnapshotId as string),
    ];
  };

  /**
   * An instance of its own, with its own config and two jobs (a Full and an Incremental), for a
   * test that destroys what it restores from: no other test depends on what it deletes.
   */
  const ownSource = async (name: string) => {
    const own = await em.admin.instance({
      instanceType: 'm5.large',
      volumes: [
        { device: '/dev/xvda', sizeGiB: 1, fill: { blocks: 6, seed: 31 } },
        { device: '/dev/sdf', sizeGiB: 1, fill: { blocks: 4, seed: 32 }, deleteOnTermination: false },
      ],
    });
    const ownConfig = writeConfig(
      dir.path,
      em,
      `[backup]\ninstance-ids = ${own.instanceId}\nkeep-snapshots = 4\n`,
      name,
    );
    expect((await backupJob(ownConfig, dir.path, `${name}-1`)).code).toBe(0);
    const first = await snapshotsOf(`${name}-1`);
    await em.admin.call('POST', `volumes/${own.volumeIds[0]}/mutate`, { write: { blocks: 3, seed: 33 } });
    expect((await backupJob(ownConfig, dir.path, `${name}-2`, 'Incremental', `${name}-1`)).code).toBe(0);
    return { own, ownConfig, first, second: await snapshotsOf(`${name}-2`) };
  };

  beforeAll(async () => {
    em = await emulator({ statusChecksMs: 100 });
    ec2 = new EC2Client(sdkConfig(em));
    source = await em.admin.instance({
      instanceType: 'm5.large',
      tags: { Name: 'web-1', backup: 'yes' },
      volumes: [
        { device: '/dev/xvda', sizeGiB: 1, fill: { blocks: 20, seed: 1 } },
        { device: '/dev/sdf', sizeGiB: 1, fill: { blocks: 9, seed: 2 }, deleteOnTermination: false },
      ],
    });
    config = writeConfig(
      dir.path,
      em,
      `[backup]\ninstance-ids = ${source.instanceId}\nkeep-snapshots = 4\n`,
      'web',
    );
    expect((await backupJob(config, dir.path, 'web-1')).code).toBe(0);
    jobs.set('web-1', await snapshotsOf('web-1'));
    await em.admin.call('POST', `volumes/${source.volumeIds[0]}/mutate`, { write: { blocks: 5, seed: 7 } });
    expect((await backupJob(config, dir.path, 'web-2', 'Incremental', 'web-1')).code).toBe(0);
    jobs.set('web-2', await snapshotsOf('web-2'));
  });
  afterAll(async () => {
    ec2.destroy();
    await em.close();
    dir.cleanup();
  });

  it('keeps a point record per completed job and marks the points live', async () => {
    const record = JSON.parse(
      readFileSync(join(dir.path, 'state', 'points', 'web', source.instanceId, 'web-2.json'), 'utf8'),
    ) as { head: string; instance: { instanceId: string }; volumes: { snapshotId: string }[] };
    expect(record.head).toBe('web-2');
    expect(record.instance.instanceId).toBe(source.instanceId);
    expect(record.volumes.map((v) => v.snapshotId).sort()).toEqual(
      [...jobs.get('web-2')!.values()].map((s) => s.snapshotId).sort(),
    );
    const points = await cli(['points', `--config=${config}`, '--json']);
    expect(points.code, points.stderr).toBe(0);
    const listed = JSON.parse(points.stdout.toString()) as { job: string; live: boolean }[];
    expect(listed.map((p) => [p.job, p.live])).toEqual([
      ['web-2', true],
      ['web-1', true],
    ]);
  });

  it('launches a point from its snapshots: no block written, no snapshot made, the data of that job', async () => {
    await em.admin.call('POST', 'requests/reset');
    const run = await cli([
      'restore',
      `--config=${config}`,
      '--point=web-1',
      `--instance=${source.instanceId}`,
    ]);
    expect(run.code, run.stderr).toBe(0);
    const requests = await em.admin.requests();
    expect(
      Object.keys(requests).filter((k) => /PutSnapshotBlock|StartSnapshot|CreateSnapshot/.test(k)),
    ).toEqual([]);
    expect(requests['ec2:RunInstances']).toBe(1);
    const instanceId = /^instance (i-[0-9a-f]+) source=/m.exec(run.stdout.toString())?.[1];
    const state = await em.admin.state();
    const launched = state.instances.find((i) => i.InstanceId === instanceId)!;
    const web1 = jobs.get('web-1')!;
    for (const mapping of launched.BlockDeviceMappings as {
      DeviceName: string;
      Ebs: { VolumeId: string };
    }[]) {
      const sourceVolume = source.volumeIds[mapping.DeviceName === '/dev/xvda' ? 0 : 1]!;
      const volume = state.volumes.find((v) => v.VolumeId === mapping.Ebs.VolumeId)!;
      expect(volume.SnapshotId).toBe(web1.get(sourceVolume)!.snapshotId);
      expect((await em.admin.volumeDigest(mapping.Ebs.VolumeId)).digest).toBe(web1.get(sourceVolume)!.digest);
    }
    expect(run.stderr).toMatch(/restoring point web-1 \(Full of .*\) from its snapshots in us-east-1/);
  });

  it('refuses a point whose snapshot was retagged for another job, and latest passes over it', async () => {
    const root = jobs.get('web-2')!.get(source.volumeIds[0]!)!.snapshotId;
    await ec2.send(
      new CreateTagsCommand({ Resources: [root], Tags: [{ Key: 'ec2-bpipe:job', Value: 'web-9' }] }),
    );
    try {
      const named = await cli([
        'restore',
        `--config=${config}`,
        '--point=web-2',
        `--instance=${source.instanceId}`,
        '--dry-run',
      ]);
      expect(named.code, named.stderr).toBe(2);
      expect(named.stderr).toContain(`${root} is tagged for job web-9, not web-2`);
      const latest = await cli([
        'restore',
        `--config=${config}`,
        '--point=latest',
        `--instance=${source.instanceId}`,
        '--dry-run',
      ]);
      expect(latest.code, latest.stderr).toBe(0);
      expect(latest.stderr).toMatch(/newer points passed over: web-2 \(/);
      expect(latest.stderr).toContain('restoring point web-1');
    } finally {
      await ec2.send(
        new CreateTagsCommand({ Resources: [root], Tags: [{ Key: 'ec2-bpipe:job', Value: 'web-2' }] }),
      );
    }
  });

  it('refuses a point whose snapshots another config claims, and one with no record', async () => {
    const data = jobs.get('web-2')!.get(source.volumeIds[1]!)!.snapshotId;
    await ec2.send(
      new CreateTagsCommand({ Resources: [data], Tags: [{ Key: 'ec2-bpipe:config', Value: 'other' }] }),
    );
    try {
      const forged = await cli([
        'restore',
        `--config=${config}`,
        '--point=web-2',
        `--instance=${source.instanceId}`,
      ]);
      expect(forged.code, forged.stderr).toBe(2);
      expect(forged.stderr).toContain(
        `${data} is not among config web's snapshots of ${source.volumeIds[1]}`,
      );
    } finally {
      await ec2.send(
        new CreateTagsCommand({ Resources: [data], Tags: [{ Key: 'ec2-bpipe:config', Value: 'web' }] }),
      );
    }
    // A damaged record: named and refused for its own job, passed over by latest.
    const damaged = join(dir.path, 'state', 'points', 'web', source.instanceId, 'web-0.json');
    writeFileSync(damaged, '{"format": "ec2-bpipe-finalizer", "formatVersion": 1, ');
    try {
      const named = await cli([
        'restore',
        `--config=${config}`,
        '--point=web-0',
        `--instance=${source.instanceId}`,
      ]);
      expect(named.code).toBe(1);
      expect(named.stderr).toContain(`${damaged}: not a stream and not a valid finalizer`);
      const latest = await cli([
        'restore',
        `--config=${config}`,
        '--point=latest',
        `--instance=${source.instanceId}`,
        '--dry-run',
      ]);
      expect(latest.code, latest.stderr).toBe(0);
      expect(latest.stderr).toContain('point web-0 passed over');
    } finally {
      rmSync(damaged);
    }
    const none = await cli([
      'restore',
      `--config=${config}`,
      '--point=web-7',
      `--instance=${source.instanceId}`,
    ]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no point record of job web-7 for i-[0-9a-f]+ in .*points\/web\/i-/);
    const withFile = await cli([
      'restore',
      `--config=${config}`,
      '--point=web-1',
      `--instance=${source.instanceId}`,
      'x.tar',
    ]);
    expect(withFile.code).toBe(2);
    expect(withFile.stderr).toContain('give no stream files');
  });

  it('--test passes a good restore and removes all it made', async () => {
    const run = await cli([
      'restore',
      `--config=${config}`,
      '--point=latest',
      `--instance=${source.instanceId}`,
      '--test',
      '--json',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout.toString().slice(run.stdout.toString().indexOf('{'))) as {
      passed: boolean;
      checks: { system: string; instance: string };
      console: string[];
      stages: { stage: string }[];
      removed: { terminated: string[]; deregistered: string[]; left: string[] };
    };
    expect(report.passed).toBe(true);
    expect(report.checks).toEqual({ passed: true, system: 'ok', instance: 'ok' });
    expect(report.console.at(-1)).toMatch(/login:$/);
    expect(report.stages.map((s) => s.stage)).toEqual(['restored', 'running', 'checked', 'removed']);
    expect(report.removed.terminated).toHaveLength(1);
    // The launch deregisters its AMI once the instance runs; the removal finds none left.
    expect(report.removed.deregistered).toEqual([]);
    expect(report.removed.left).toEqual([]);
    expect(await leftovers()).toEqual([]);
    // The test instance took none of the source's tags (a backup selecting backup=yes would take it).
    const tested = (await em.admin.state()).instances.find(
      (i) => i.InstanceId === report.removed.terminated[0],
    )!;
    expect(tagOf(tested, 'backup')).toBeUndefined();
  });

  it('--test fails an unbootable restore from a stream, and still removes all it made', async () => {
    const root = jobs.get('web-1')!.get(source.volumeIds[0]!)!.snapshotId;
    await em.admin.call('POST', 'unbootable', { snapshotId: root });
    const run = await cli([
      'restore',
      `--config=${config}`,
      '--test',
      '--from-snapshots=never',
      join(dir.path, 'web-1.tar'),
    ]);
    expect(run.code, run.stderr).toBe(1);
    const out = run.stdout.toString();
    expect(out).toMatch(
      /^test FAILED: i-[0-9a-f]+ failed its status checks \(system ok, instance impaired\)/m,
    );
    expect(out).toMatch(/^console: .*Kernel panic/m);
    expect(out).toMatch(/^removed: 1 instance\(s\), 0 image\(s\), 0 volume\(s\), 2 snapshot\(s\)/m);
    expect(run.stderr).toMatch(/restore test [0-9a-f-]+ failed/);
    expect(await leftovers()).toEqual([]);
  });

  it('--test interrupted by SIGTERM while waiting for the checks removes what it launched', async () => {
    await em.admin.call('POST', 'faults', { statusChecksMs: 600_000 });
    try {
      const child = spawn(process.execPath, [
        BIN,
        'restore',
        `--config=${config}`,
        '--point=web-1',
        `--instance=${source.instanceId}`,
        '--test',
      ]);
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
      // Signalled once the instance runs and the test waits on its status checks.
      for (let i = 0; i < 400 && !/waiting for it to run/.test(stderr); i++)
        await new Promise((r) => setTimeout(r, 50));
      const live = async () =>
        (await em.admin.state()).instances.some(
          (i) => tagOf(i, TEST_TAG) !== undefined && (i.State as { Name: string }).Name === 'running',
        );
      for (let i = 0; i < 400 && !(await live()); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await live()).toBe(true);
      child.kill('SIGTERM');
      expect(await exited).toBe(143);
      expect(stderr).toMatch(
        /interrupted by SIGTERM; the restore test removed 1 instance\(s\), 0 image\(s\)/,
      );
      expect(await leftovers()).toEqual([]);
    } finally {
      await em.admin.call('POST', 'faults', { statusChecksMs: 100 });
    }
  });

  it('refuses a point whose snapshot was deleted', async () => {
    const { own, ownConfig, first } = await ownSource('gone');
    const data = first.get(own.volumeIds[1]!)!.snapshotId;
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: data }));
    const run = await cli([
      'restore',
      `--config=${ownConfig}`,
      '--point=gone-1',
      `--instance=${own.instanceId}`,
    ]);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(
      `${data} is not among config gone's snapshots of ${own.volumeIds[1]} in us-east-1`,
    );
  });

  it('launches the same point anew after each ended launch, in one walk along the tokens, a tag removed or not', async () => {
    const { own, ownConfig } = await ownSource('again');
    const restore = () =>
      cli(['restore', `--config=${ownConfig}`, '--point=again-2', `--instance=${own.instanceId}`]);
    const launchedBy = (run: Awaited<ReturnType<typeof restore>>) =>
      /^instance (i-[0-9a-f]+) source=/m.exec(run.stdout.toString())?.[1];
    const launched: string[] = [];
    for (let n = 0; n < 4; n++) {
      const run = await restore();
      expect(run.code, run.stderr).toBe(0);
      const id = launchedBy(run);
      expect(id).toBeDefined();
      launched.push(id!);
      // The second instance loses the tag the walk finds launches by: its token is still found
      // by the client-token look-up, so the walk goes on past it.
      if (n === 1) await em.admin.call('POST', `instances/${id}/untag`, { keys: ['ec2-bpipe:source'] });
      await em.admin.call('POST', `instances/${id}/terminate`, {});
    }
    expect(new Set(launched).size).toBe(4);
    // Run again while the last launch still runs: that instance is this launch's, none is added.
    const last = await restore();
    expect(last.code, last.stderr).toBe(0);
    const running = launchedBy(last)!;
    expect(launched).not.toContain(running);
    const again = await restore();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(`was launched by an earlier run as ${running}; not launching again`);
    const requests = await em.admin.requests();
    expect(requests['ec2:RunInstances']).toBeGreaterThanOrEqual(5);
  });

  it('launches the latest point after the disaster: the source instance and its volumes gone', async () => {
    const { own, ownConfig, second } = await ownSource('dr');
    await em.admin.call('POST', `instances/${own.instanceId}/terminate`, {});
    // Its points are still listed, from the volumes its records name.
    const listed = await cli(['points', `--config=${ownConfig}`, `--instance=${own.instanceId}`, '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stderr).toContain(`${own.instanceId} no longer exists: its points are listed`);
    const points = JSON.parse(listed.stdout.toString()) as { job: string; live: boolean }[];
    expect(points.find((p) => p.job === 'dr-2')?.live).toBe(true);
    const run = await cli([
      'restore',
      `--config=${ownConfig}`,
      '--point=latest',
      `--instance=${own.instanceId}`,
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('restoring point dr-2');
    const instanceId = /^instance (i-[0-9a-f]+) source=/m.exec(run.stdout.toString())?.[1];
    const state = await em.admin.state();
    const launched = state.instances.find((i) => i.InstanceId === instanceId)!;
    for (const mapping of launched.BlockDeviceMappings as {
      DeviceName: string;
      Ebs: { VolumeId: string };
    }[]) {
      const sourceVolume = own.volumeIds[mapping.DeviceName === '/dev/xvda' ? 0 : 1]!;
      expect((await em.admin.volumeDigest(mapping.Ebs.VolumeId)).digest).toBe(
        second.get(sourceVolume)!.digest,
      );
    }
  });
});
