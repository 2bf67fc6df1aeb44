import {
  CopySnapshotCommand,
  CreateSnapshotCommand,
  CreateTagsCommand,
  DescribeSnapshotsCommand,
  EC2Client,
  type Tag,
} from '@aws-sdk/client-ec2';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupJob, cli, sdkConfig, withEmulator, writeConfig } from '../helpers.js';

const tagsOf = (tags: Tag[] | undefined): Record<string, string> =>
  Object.fromEntries((tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));

/** A pre-snapshot hook that holds the job until the test writes a line into `fifo`. */
function holdingHook(dir: string): { fifo: string; body: string; started: string } {
  const fifo = join(dir, 'hold.fifo');
  const started = join(dir, 'hook-started');
  expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
  return { fifo, started, body: `pre-snapshot-command = touch ${started} && read line < ${fifo}\n` };
}

describe('one job per unit at a time', () => {
  it('a second backup of the unit on this host is refused, naming the running job; the lock goes with the job, and a dead job’s lock is taken over', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 4, seed: 71 } });
      const hold = holdingHook(dir.path);
      const config = writeConfig(dir.path, em, `[backup]\nvolume-ids = ${volumeId}\n${hold.body}`, 'lock');
      const first = backupJob(config, dir.path, 'first');
      await expect.poll(() => existsSync(hold.started), { timeout: 20_000 }).toBe(true);
      const second = await backupJob(config, dir.path, 'second');
      expect(second.code).toBe(1);
      expect(second.stderr).toMatch(
        new RegExp(
          `${volumeId} of config lock is being backed up by job first \\(pid \\d+ on ${hostname()}, since .*\\): one job per unit at a time`,
        ),
      );
      writeFileSync(hold.fifo, 'go\n');
      expect((await first).code).toBe(0);
      expect(readdirSync(join(dir.path, 'state', 'locks'))).toEqual([]);

      // A job killed with its lock held: the next finds its pid gone and takes the lock over.
      const locks = join(dir.path, 'state', 'locks');
      const gone = spawnSync(process.execPath, [
        '-e',
        'process.stdout.write(String(process.pid))',
      ]).stdout.toString();
      const name =
        'lock.' +
        (await import('node:crypto')).createHash('sha256').update(volumeId).digest('hex').slice(0, 20) +
        '.lock';
      writeFileSync(
        join(locks, name),
        JSON.stringify({
          job: 'killed',
          pid: Number(gone),
          host: hostname(),
          since: new Date().toISOString(),
          resourceId: volumeId,
        }),
      );
      const config2 = writeConfig(dir.path, em, `[backup]\nvolume-ids = ${volumeId}\n`, 'lock');
      const third = await backupJob(config2, dir.path, 'third', 'Incremental');
      expect(third.code, third.stderr).toBe(0);
      expect(third.stderr).toMatch(
        /taking over the lock of .*: its job killed \(pid \d+\) ended without removing it/,
      );
    });
  });

  it('another host’s running job refuses the backup; retention keeps its snapshots and the Full it is based on', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 4, seed: 72 } });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\nvolume-ids = ${volumeId}\nkeep-snapshots = 1\n`,
        'hosts',
      );
      expect((await backupJob(config, dir.path, 'F1')).code).toBe(0);
      const ec2 = new EC2Client(sdkConfig(em));
      try {
        const f1 = (await em.admin.state()).snapshots.find((s) => tagsOf(s.Tags)['ec2-bpipe:job'] === 'F1');
        // What a job on another backup host leaves while it streams: its snapshot, based on F1.
        const running = (await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }))).SnapshotId ?? '';
        const runningTags = {
          'ec2-bpipe:config': 'hosts',
          'ec2-bpipe:config-path': config,
          'ec2-bpipe:job': 'I2-elsewhere',
          'ec2-bpipe:base-job': 'F1',
          'ec2-bpipe:level': 'Incremental',
          'ec2-bpipe:volume': volumeId,
          'ec2-bpipe:state': 'streaming',
          'ec2-bpipe:host': 'backup-2.example.net',
          'ec2-bpipe:snapshot-id': running,
        };
        await ec2.send(
          new CreateTagsCommand({
            Resources: [running],
            Tags: Object.entries(runningTags).map(([Key, Value]) => ({ Key, Value })),
          }),
        );
        const refused = await backupJob(config, dir.path, 'I3', 'Incremental');
        expect(refused.code).toBe(1);
        expect(refused.stderr).toMatch(
          new RegExp(
            `${volumeId} is being backed up by job I2-elsewhere on backup-2\\.example\\.net since .* \\(its snapshot ${running} is streaming\\)`,
          ),
        );

        // The other job started after this one checked: this one runs through, and its retention
        // (keep 1) keeps the running job's snapshot and F1, its base, though both are past the count.
        const hold = holdingHook(dir.path);
        const held = writeConfig(
          dir.path,
          em,
          `[backup]\nvolume-ids = ${volumeId}\nkeep-snapshots = 1\n${hold.body}`,
          'hosts',
        );
        await ec2.send(
          new CreateTagsCommand({
            Resources: [running],
            Tags: [{ Key: 'ec2-bpipe:state', Value: 'failed' }],
          }),
        );
        const full = backupJob(held, dir.path, 'F3');
        await expect.poll(() => existsSync(hold.started), { timeout: 20_000 }).toBe(true);
        await ec2.send(
          new CreateTagsCommand({
            Resources: [running],
            Tags: [{ Key: 'ec2-bpipe:state', Value: 'streaming' }],
          }),
        );
        writeFileSync(hold.fifo, 'go\n');
        const result = await full;
        expect(result.code, result.stderr).toBe(0);
        expect(result.stderr).toContain(
          `kept ${running} of ${volumeId} (job I2-elsewhere): job I2-elsewhere may still be running on backup-2.example.net`,
        );
        expect(result.stderr).toContain(
          `kept ${f1?.SnapshotId} of ${volumeId} (job F1): job I2-elsewhere, which may still be running, is based on it`,
        );
        const left = (await em.admin.state()).snapshots.map((s) => s.SnapshotId);
        expect(left).toContain(running);
        expect(left).toContain(f1?.SnapshotId);

        // Once that job says it failed, the next retention deletes both.
        writeConfig(dir.path, em, `[backup]\nvolume-ids = ${volumeId}\nkeep-snapshots = 1\n`, 'hosts');
        await ec2.send(
          new CreateTagsCommand({
            Resources: [running],
            Tags: [{ Key: 'ec2-bpipe:state', Value: 'failed' }],
          }),
        );
        const next = await backupJob(config, dir.path, 'F4');
        expect(next.code, next.stderr).toBe(0);
        const after = (await em.admin.state()).snapshots.map((s) => s.SnapshotId);
        expect(after).not.toContain(running);
        expect(after).not.toContain(f1?.SnapshotId);
      } finally {
        ec2.destroy();
      }
    });
  });
});

describe('retention deletes only what it can prove it took', () => {
  it('keeps a same-Region copy made with our tags and a snapshot of another volume tagged as ours, and names them', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 4, seed: 73 } });
      const { volumeId: otherVolume } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 74 } });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\nvolume-ids = ${volumeId}\nkeep-snapshots = 1\n`,
        'proof',
      );
      expect((await backupJob(config, dir.path, 'F1')).code).toBe(0);
      const ec2 = new EC2Client(sdkConfig(em));
      try {
        const source = (await em.admin.state()).snapshots.find(
          (s) => tagsOf(s.Tags)['ec2-bpipe:job'] === 'F1',
        );
        const sourceTags = (
          await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [source?.SnapshotId ?? ''] }))
        ).Snapshots?.[0]?.Tags;
        expect(tagsOf(sourceTags)['ec2-bpipe:snapshot-id']).toBe(source?.SnapshotId);
        // A user's copy, "copy tags" on: it carries every ec2-bpipe tag of F1. (Tagged after the
        // copy: the SDK's own presigned URL of a request with tags fails the copy.)
        const copy =
          (
            await ec2.send(
              new CopySnapshotCommand({ SourceRegion: 'us-east-1', SourceSnapshotId: source?.SnapshotId }),
            )
          ).SnapshotId ?? '';
        await ec2.send(new CreateTagsCommand({ Resources: [copy], Tags: sourceTags }));
        // A snapshot of another volume, tagged by hand as F1's (no snapshot-id tag, as 0.2 wrote none).
        const forged =
          (await ec2.send(new CreateSnapshotCommand({ VolumeId: otherVolume }))).SnapshotId ?? '';
        await ec2.send(
          new CreateTagsCommand({
            Resources: [forged],
            Tags: (sourceTags ?? []).filter((t) => t.Key !== 'ec2-bpipe:snapshot-id'),
          }),
        );
        await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 1, seed: 75 } });
        const f2 = await backupJob(config, dir.path, 'F2');
        expect(f2.code, f2.stderr).toBe(0);
        expect(f2.stderr).toContain(`deleted ${source?.SnapshotId} of ${volumeId} (job F1`);
        expect(f2.stderr).toMatch(
          new RegExp(
            `kept ${copy}, which carries the tags of proof for ${volumeId}: it carries the tags of ${source?.SnapshotId}: a copy made with its tags`,
          ),
        );
        expect(f2.stderr).toMatch(
          new RegExp(
            `kept ${forged}, which carries the tags of proof for ${volumeId}: it is a snapshot of ${otherVolume}`,
          ),
        );
        const left = (await em.admin.state()).snapshots.map((s) => s.SnapshotId);
        expect(left).toContain(copy);
        expect(left).toContain(forged);
        // Neither is a link: the chain of the next Incremental is based on F2, not on the copy.
        const points = await cli(['points', `--config=${config}`, '--json']);
        expect(points.stdout.toString()).not.toContain(copy);
        expect(points.stdout.toString()).not.toContain(forged);
        expect(readFileSync(join(dir.path, 'F2.tar')).length).toBeGreaterThan(0);
      } finally {
        ec2.destroy();
      }
    });
  });
});
