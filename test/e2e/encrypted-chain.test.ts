/**
 * An encrypted volume's Full, Incremental and Differential restored to AWS as snapshot chains,
 * against an emulator that, as StartSnapshot does, refuses Encrypted or a key beside
 * ParentSnapshotId: each link inherits its parent's key.
 */
import { DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, sdkConfig, withEmulator, writeConfig } from '../helpers.js';

const KEY = 'arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555';
const OTHER_KEY = 'arn:aws:kms:us-east-1:123456789012:key/99999999-2222-3333-4444-555555555555';

describe('an encrypted chain restored to AWS', () => {
  it('restores Full+Inc and Full+Diff with the heads exact, each link in its parent key; refuses a key a link cannot take', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({
        sizeGiB: 1,
        encrypted: true,
        kmsKeyId: KEY,
        fill: { blocks: 12, seed: 7 },
      });
      const config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 10\n');
      await em.admin.call('POST', 'kms-keys', { keyArn: OTHER_KEY });
      const backup = async (job: string, level: string, prev?: string): Promise<string> => {
        const file = join(dir.path, `${job}.tar`);
        const result = await cli(
          [
            'backup',
            `--config=${config}`,
            `--volume=${volumeId}`,
            `--job=${job}`,
            `--level=${level}`,
            ...(prev ? [`--prev-job=${prev}`] : []),
          ],
          { stdoutFile: file },
        );
        expect(result.code, result.stderr).toBe(0);
        return file;
      };
      const mutate = (seed: number) =>
        em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 3, seed }, unwrite: [] });
      const sourceDigest = async (job: string): Promise<string> => {
        const snap = (await em.admin.state()).snapshots.find(
          (s) =>
            s.VolumeId === volumeId &&
            s.Tags.some((t: { Key: string; Value: string }) => t.Key === 'ec2-bpipe:job' && t.Value === job),
        );
        expect(snap, `the source snapshot of ${job}`).toBeDefined();
        return (await em.admin.snapshotDigest(snap?.SnapshotId)).digest;
      };
      const j1 = await backup('j1', 'Full');
      await mutate(1);
      const j2 = await backup('j2', 'Incremental', 'j1');
      await mutate(2);
      const j3 = await backup('j3', 'Differential', 'j2');

      const ec2 = new EC2Client(sdkConfig(em));
      try {
        const keysOf = async (ids: string[]) =>
          ((await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: ids }))).Snapshots ?? []).map((s) => [
            s.Encrypted,
            s.KmsKeyId,
          ]);
        const restored = (stdout: Buffer, job: string): string =>
          /snapshot (snap-[0-9a-f]+) source=\S+ job=(\S+)/g.exec(
            stdout
              .toString()
              .split('\n')
              .find((l) => l.includes(`job=${job}`)) ?? '',
          )?.[1] ?? '';

        const inc = await cli(['restore', `--config=${config}`, j1, j2]);
        expect(inc.code, inc.stderr).toBe(0);
        const [full1, head2] = [restored(inc.stdout, 'j1'), restored(inc.stdout, 'j2')];
        expect((await em.admin.snapshotDigest(head2)).digest).toBe(await sourceDigest('j2'));
        expect(await keysOf([full1, head2])).toEqual([
          [true, KEY],
          [true, KEY],
        ]);

        const diff = await cli(['restore', `--config=${config}`, j1, j3]);
        expect(diff.code, diff.stderr).toBe(0);
        const head3 = restored(diff.stdout, 'j3');
        expect((await em.admin.snapshotDigest(head3)).digest).toBe(await sourceDigest('j3'));
        expect(await keysOf([head3])).toEqual([[true, KEY]]);

        // A link cannot be re-keyed: refused before anything is created, naming what to do.
        const before = (await em.admin.state()).snapshots.length;
        const rekey = await cli(['restore', `--config=${config}`, `--kms-key-id=${OTHER_KEY}`, j2]);
        expect(rekey.code).toBe(2);
        expect(rekey.stderr).toMatch(
          /a chain link keeps its parent's key.*Restore the whole chain, from its Full/,
        );
        expect((await em.admin.state()).snapshots.length).toBe(before);
      } finally {
        ec2.destroy();
      }
    });
  });
});
