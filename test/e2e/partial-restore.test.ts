// The restores to AWS here write every block (--from-snapshots=never): they test the stream's way
// into new snapshots. Restoring from the snapshots AWS still holds: from-snapshots.test.ts.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, imageDigest, withEmulator, writeConfig } from '../helpers.js';

describe('restore --volume (some volumes of an instance stream)', () => {
  it('writes only the chosen images, or only their snapshots and volumes in AWS, exact, and launches nothing', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId, volumeIds } = await em.admin.instance({
        volumes: [
          { device: '/dev/xvda', sizeGiB: 1, fill: { blocks: 3, seed: 121 } },
          { device: '/dev/sdf', sizeGiB: 1, fill: { blocks: 4, seed: 122 } },
          { device: '/dev/sdg', sizeGiB: 1, fill: { blocks: 5, seed: 123 } },
        ],
      });
      const [root, data1, data2] = volumeIds as [string, string, string];
      const config = writeConfig(dir.path, em, `[backup]\ninstance-ids = ${instanceId}\n`, 'part');
      const tar = join(dir.path, 'p1.tar');
      expect((await cli(['backup', `--config=${config}`, '--job=p1'], { stdoutFile: tar })).code).toBe(0);
      const source = new Map<string, string>();
      for (const s of (await em.admin.state()).snapshots)
        source.set(s.VolumeId, (await em.admin.snapshotDigest(s.SnapshotId)).digest);

      const out = join(dir.path, 'files');
      const files = await cli(['restore', `--to-dir=${out}`, `--volume=${data1}`, tar]);
      expect(files.code, files.stderr).toBe(0);
      expect(existsSync(join(out, instanceId, `${root}.ebs`))).toBe(false);
      expect(existsSync(join(out, instanceId, `${data2}.ebs`))).toBe(false);
      expect((await imageDigest(join(out, instanceId, `${data1}.ebs`))).digest).toBe(source.get(data1));

      const before = await em.admin.state();
      const aws = await cli([
        'restore',
        '--from-snapshots=never',
        `--config=${config}`,
        `--volume=${data1},${data2}`,
        '--create-volume',
        '--availability-zone=us-east-1a',
        tar,
      ]);
      expect(aws.code, aws.stderr).toBe(0);
      expect(aws.stderr).toContain('(--volume): no instance is launched');
      const after = await em.admin.state();
      expect(after.instances).toHaveLength(before.instances.length);
      expect(after.images).toHaveLength(before.images.length);
      const restored = after.snapshots.filter(
        (s) => !before.snapshots.some((b) => b.SnapshotId === s.SnapshotId),
      );
      expect(restored).toHaveLength(2);
      const sources = restored
        .map((s) => s.Tags?.find((t: { Key: string }) => t.Key === 'ec2-bpipe:source-volume')?.Value)
        .sort();
      expect(sources).toEqual([data1, data2].sort());
      for (const snapshot of restored) {
        const from = snapshot.Tags?.find((t: { Key: string }) => t.Key === 'ec2-bpipe:source-volume')?.Value;
        expect((await em.admin.snapshotDigest(snapshot.SnapshotId)).digest).toBe(source.get(from));
      }
      expect(after.volumes.length - before.volumes.length).toBe(2);

      const unknown = await cli(['restore', `--to-dir=${out}`, '--volume=vol-0123456789abcdef0', tar]);
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain('--volume=vol-0123456789abcdef0: not in the stream of job p1');
    });
  });
});
