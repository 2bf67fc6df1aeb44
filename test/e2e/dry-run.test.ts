// The restores to AWS here write every block (--from-snapshots=never): they test the stream's way
// into new snapshots. Restoring from the snapshots AWS still holds: from-snapshots.test.ts.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, withEmulator, writeConfig } from '../helpers.js';

const CREATING = /^(ec2:(Create|Run|Register|Deregister|Delete|Copy)|ebs:(Start|Put|Complete))/;

describe('restore --dry-run', () => {
  it('verifies a Full + Incremental chain, checks the overrides and prints the plan, creating nothing', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId, volumeIds } = await em.admin.instance({
        instanceType: 'm5.large',
        volumes: [
          { device: '/dev/xvda', sizeGiB: 2, fill: { blocks: 6, seed: 101 } },
          { device: '/dev/sdf', sizeGiB: 1, fill: { blocks: 3, seed: 102 } },
        ],
      });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\nkeep-snapshots = 5\n`,
        'dry',
      );
      const backup = (job: string, level: string) =>
        cli(['backup', `--config=${config}`, `--job=${job}`, `--level=${level}`], {
          stdoutFile: join(dir.path, `${job}.tar`),
        });
      expect((await backup('f1', 'Full')).code).toBe(0);
      await em.admin.call('POST', `volumes/${volumeIds[0]}/mutate`, { write: { blocks: 2, seed: 103 } });
      expect((await backup('i1', 'Incremental')).code).toBe(0);
      const before = await em.admin.state();
      await em.admin.call('POST', 'requests/reset');

      const files = [join(dir.path, 'f1.tar'), join(dir.path, 'i1.tar')];
      const result = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--dry-run',
        '--instance-type=m5.xlarge',
        ...files,
      ]);
      expect(result.code, result.stderr).toBe(0);
      const out = result.stdout.toString();
      expect(out).toContain(
        `snapshot: ${volumeIds[0]} job f1: 2 GiB, 6 blocks, a chain's first snapshot, not encrypted, in us-east-1`,
      );
      expect(out).toContain(
        `snapshot: ${volumeIds[0]} job i1: 2 GiB, 2 blocks, on (new snapshot of ${volumeIds[0]} job f1), in its key`,
      );
      expect(out).toMatch(
        /^verified .*i1\.tar: job i1 \(Incremental\) of i-[0-9a-f]+, 2 volume\(s\); nothing was created$/m,
      );
      expect(out).toMatch(/^image: from the restored snapshots of i-[0-9a-f]+, architecture x86_64/m);
      expect(out).toMatch(/^instance: type m5\.xlarge, /m);
      expect(out).toContain(
        `volume: /dev/xvda from (new snapshot of ${volumeIds[0]} job i1) (source ${volumeIds[0]})`,
      );
      expect(out.trim().split('\n').at(-1)).toBe('dry run: nothing was created');

      const after = await em.admin.state();
      for (const kind of ['snapshots', 'images', 'instances', 'volumes'] as const) {
        expect(after[kind]).toHaveLength(before[kind].length);
      }
      expect(Object.keys(await em.admin.requests()).filter((a) => CREATING.test(a))).toEqual([]);

      // It checks the overrides as the real restore would: an unknown type is refused (exit 2).
      const unknown = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        '--dry-run',
        '--instance-type=zz9.huge',
        ...files,
      ]);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain('zz9.huge');
    });
  });
});
