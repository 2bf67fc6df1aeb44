import { describe, expect, it } from 'vitest';
import { CreateTagsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { backupJob, cli, sdkConfig, withEmulator, writeConfig } from '../helpers.js';

describe('points (restore points from the snapshot tags)', () => {
  it('lists a Full, an Incremental on it and a failed job, newest first, with their states', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId, volumeIds } = await em.admin.instance({
        volumes: [
          { sizeGiB: 2, fill: { blocks: 8, seed: 61 } },
          { sizeGiB: 1, fill: { blocks: 3, seed: 62 } },
        ],
      });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\nkeep-snapshots = 5\n`,
        'pts',
      );
      const backup = (job: string, level: string, prev?: string) =>
        backupJob(config, dir.path, job, level, prev);
      expect((await backup('f1', 'Full')).code).toBe(0);
      await em.admin.call('POST', `volumes/${volumeIds[0]}/mutate`, { write: { blocks: 2, seed: 63 } });
      expect((await backup('i1', 'Incremental', 'f1')).code).toBe(0);
      await em.admin.call('POST', `volumes/${volumeIds[0]}/mutate`, { write: { blocks: 1, seed: 64 } });
      await em.admin.call('POST', 'fail', {
        action: 'GetSnapshotBlock',
        code: 'AccessDeniedException',
        message: 'not allowed',
        status: 403,
        count: 50,
      });
      expect((await backup('x1', 'Incremental', 'i1')).code).toBe(1);
      await em.admin.call('POST', 'requests/reset');

      const json = await cli(['points', `--config=${config}`, '--json']);
      expect(json.code, json.stderr).toBe(0);
      const points = JSON.parse(json.stdout.toString()) as Record<string, unknown>[];
      expect(
        points.map((p) => [p.unit, p.job, p.level, p.baseJob, p.state, p.volumes, p.sizeGiB, p.region]),
      ).toEqual([
        [instanceId, 'x1', 'Incremental', 'i1', 'incomplete', 2, 3, 'us-east-1'],
        [instanceId, 'i1', 'Incremental', 'f1', 'complete', 2, 3, 'us-east-1'],
        [instanceId, 'f1', 'Full', null, 'complete', 2, 3, 'us-east-1'],
      ]);
      // The data each link's streams held: 8 + 3 blocks for the Full, the 2 changed for i1;
      // nothing for the failed job, whose streams were never whole.
      expect(points.map((p) => p.dataBytes)).toEqual([undefined, 2 * 512 * 1024, 11 * 512 * 1024]);
      // Read-only: it lists, it creates, tags and deletes nothing.
      const requests = await em.admin.requests();
      expect(Object.keys(requests).filter((a) => !/^ec2:Describe/.test(a))).toEqual([]);

      const text = await cli(['points', `--config=${config}`]);
      expect(text.code).toBe(0);
      const lines = text.stdout.toString().trim().split('\n');
      expect(lines[0]).toMatch(
        /^unit\s+job\s+level\s+base\s+state\s+date\s+volumes\s+size\s+data\s+region\s+live$/,
      );
      expect(lines[1]).toMatch(
        new RegExp(
          `^${instanceId}\\s+x1\\s+Incremental\\s+i1\\s+incomplete\\s+\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z\\s+2\\s+3 GiB\\s+-\\s+us-east-1\\s+no$`,
        ),
      );
      // Complete, with the point record this host wrote: restore --point can launch them.
      expect(lines[2]).toMatch(/\s3 GiB\s+1\.0 MiB\s+us-east-1\s+yes$/);
      expect(lines[3]).toMatch(/\s3 GiB\s+5\.5 MiB\s+us-east-1\s+yes$/);
      expect(lines).toHaveLength(4);

      // A block count is read back from a tag anyone with CreateTags can write: a value out of
      // shape (not digits, or more blocks than the volume holds) says no data, never a figure.
      const byJob = (job: string) => points.find((p) => p.job === job)?.snapshotIds as string[];
      const ec2 = new EC2Client(sdkConfig(em));
      await ec2.send(
        new CreateTagsCommand({
          Resources: byJob('f1'),
          Tags: [{ Key: 'ec2-bpipe:blocks', Value: '9999999' }],
        }),
      );
      await ec2.send(
        new CreateTagsCommand({ Resources: byJob('i1'), Tags: [{ Key: 'ec2-bpipe:blocks', Value: '2e3' }] }),
      );
      ec2.destroy();
      const forged = JSON.parse(
        (await cli(['points', `--config=${config}`, '--json'])).stdout.toString(),
      ) as Record<string, unknown>[];
      expect(forged.map((p) => [p.job, p.dataBytes])).toEqual([
        ['x1', undefined],
        ['i1', undefined],
        ['f1', undefined],
      ]);
    });
  });
});
