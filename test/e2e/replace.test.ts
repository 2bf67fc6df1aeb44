import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, restoredImageDigest, withEmulator, writeConfig } from '../helpers.js';

describe("restore to files honours Bacula's replace code (%r)", () => {
  it('never replaces newer images unless the code allows it, and says what it kept', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 4, seed: 111 } });
      const config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 5\n', 'rep');
      const backup = async (job: string) => {
        const result = await cli(
          ['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${job}`, '--level=Full'],
          {
            stdoutFile: join(dir.path, `${job}.tar`),
          },
        );
        expect(result.code, result.stderr).toBe(0);
        const snapshot = (await em.admin.state()).snapshots.find((s) =>
          s.Tags?.some((t: { Key: string; Value: string }) => t.Key === 'ec2-bpipe:job' && t.Value === job),
        );
        const snapshotId = snapshot?.SnapshotId as string;
        return { digest: (await em.admin.snapshotDigest(snapshotId)).digest, snapshotId };
      };
      const old = await backup('old');
      await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 2, seed: 112 } });
      const young = await backup('new');
      const [older, newer] = [old.digest, young.digest];
      expect(newer).not.toBe(older);

      const out = join(dir.path, 'files');
      const image = join(out, volumeId, `${volumeId}.ebs`);
      /** The image's digest over the blocks of the snapshot it should hold (helpers.ts says why). */
      const held = async (expected: { snapshotId: string }): Promise<string> =>
        (await restoredImageDigest(image, em.admin, expected.snapshotId)).digest;
      const restore = (job: string, replace?: string) =>
        cli([
          'restore',
          `--to-dir=${out}`,
          ...(replace ? [`--replace=${replace}`] : []),
          join(dir.path, `${job}.tar`),
        ]);

      expect((await restore('new')).code).toBe(0);
      expect(await held(young)).toBe(newer);

      // Bacula's letters: n never, w ifnewer, o ifolder, a always.
      for (const code of ['n', 'w']) {
        const kept = await restore('old', code);
        expect(kept.code, kept.stderr).toBe(0);
        expect(kept.stderr).toMatch(/keeps it/);
        // What it kept is said as kept: the image there is not the one of this stream.
        expect(kept.stdout.toString()).toBe(`kept ${image}\n`);
        expect(await held(young)).toBe(newer);
      }
      const ifolder = await restore('old', 'o');
      expect(ifolder.code).toBe(0);
      expect(await held(old)).toBe(older);
      const ifnewer = await restore('new', 'w');
      expect(ifnewer.code).toBe(0);
      expect(await held(young)).toBe(newer);
      const always = await restore('old', 'a');
      expect(always.code).toBe(0);
      expect(await held(old)).toBe(older);

      // By hand, with neither --replace nor --force, a restore that would roll the images back
      // to an older restore point is refused before anything is written.
      const forward = await restore('new');
      expect(forward.code, forward.stderr).toBe(0);
      expect(forward.stdout.toString()).toBe(`image ${image}\n`);
      const rollback = await restore('old');
      expect(rollback.code).toBe(2);
      expect(rollback.stderr).toMatch(
        new RegExp(`${join(out, volumeId)} holds job new of \\S+, not older than job old .*Give --force`),
      );
      expect(rollback.stdout.toString()).toBe('');
      expect(await held(young)).toBe(newer);
      // The same job again is no rollback: a rerun works.
      expect((await restore('new')).code).toBe(0);
      const forced = await cli(['restore', `--to-dir=${out}`, '--force', join(dir.path, 'old.tar')]);
      expect(forced.code, forced.stderr).toBe(0);
      expect(await held(old)).toBe(older);
      const both = await cli([
        'restore',
        `--to-dir=${out}`,
        '--force',
        '--replace=n',
        join(dir.path, 'old.tar'),
      ]);
      expect(both.code).toBe(2);
      expect(both.stderr).toContain('--force overwrites; --replace=n keeps');
      // Under Bacula (--where), %r keeps its meaning: `a` rolls back, as Bacula asked.
      const where = join(dir.path, 'where');
      const bacula = (job: string) =>
        cli(['restore', `--where=${where}`, '--replace=a', join(dir.path, `${job}.tar`)]);
      expect((await bacula('new')).code).toBe(0);
      expect((await bacula('old')).code).toBe(0);

      const bad = await restore('old', 'x');
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--replace=x: expected a Bacula replace code');
    });
  });
});
