import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupJob, cli, withEmulator, writeConfig } from '../helpers.js';

describe('verify: several streams in chain order, and --json', () => {
  it('accepts a chain oldest first, refuses it in another order, and says so in JSON', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 4, seed: 31 } });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\nvolume-ids = ${volumeId}\nkeep-snapshots = 5\n`,
        'ver',
      );
      expect((await backupJob(config, dir.path, 'f1')).code).toBe(0);
      await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 2, seed: 32 } });
      expect((await backupJob(config, dir.path, 'i1', 'Incremental', 'f1')).code).toBe(0);
      await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 2, seed: 33 } });
      expect((await backupJob(config, dir.path, 'i2', 'Incremental', 'i1')).code).toBe(0);
      const [f1, i1, i2] = ['f1', 'i1', 'i2'].map((j) => join(dir.path, `${j}.tar`));

      const inOrder = await cli(['verify', f1!, i1!, i2!]);
      expect(inOrder.code, inOrder.stderr).toBe(0);
      expect(
        inOrder.stdout
          .toString()
          .split('\n')
          .filter((l) => l.startsWith('ok ')),
      ).toHaveLength(3);

      // A link after the Full it is based on, with its own base left out.
      const gap = await cli(['verify', f1!, i2!]);
      expect(gap.code).toBe(1);
      expect(gap.stdout.toString()).toContain(
        `FAILED ${i2}: job i2 (Incremental) is based on job i1, but the stream of ${volumeId} given before it is ${f1} (job f1)`,
      );
      // A base given after the link built on it.
      const reversed = await cli(['verify', i1!, f1!]);
      expect(reversed.code).toBe(1);
      expect(reversed.stdout.toString()).toContain(
        `FAILED ${f1}: job f1 is the base of ${i1}, given before it`,
      );
      expect(reversed.stderr).toContain('1 stream(s) failed verification');

      const json = await cli(['verify', '--json', i1!, f1!]);
      expect(json.code).toBe(1);
      const report = JSON.parse(json.stdout.toString()) as {
        ok: boolean;
        streams: {
          stream: string;
          ok: boolean;
          job: string;
          level: string;
          error?: string;
          volumes: { volumeId: string; blocks: number }[];
        }[];
      };
      expect(report.ok).toBe(false);
      expect(report.streams.map((s) => [s.stream, s.ok, s.job, s.level])).toEqual([
        [i1, true, 'i1', 'Incremental'],
        [f1, false, 'f1', 'Full'],
      ]);
      expect(report.streams[1]!.error).toContain('is the base of');
      expect(report.streams[0]!.volumes[0]).toMatchObject({ volumeId, blocks: 2 });

      const good = await cli(['verify', '--json', f1!, i1!]);
      expect(good.code).toBe(0);
      expect(JSON.parse(good.stdout.toString())).toMatchObject({ ok: true });

      // A restore's last JSON record is its summary: what it wrote, in named fields.
      const out = join(dir.path, 'out');
      const restored = await cli(['restore', '--log-format=json', `--to-dir=${out}`, f1!, i1!]);
      expect(restored.code, restored.stderr).toBe(0);
      const records = restored.stderr
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(records.filter((r) => r.event === 'volume')).toHaveLength(2);
      expect(records.at(-1)).toMatchObject({
        event: 'summary',
        command: 'restore',
        level: 'info',
        to: 'files',
        streams: 2,
        blocks: 4 + 2,
        bytes: 6 * 512 * 1024,
        results: [
          `image ${join(out, volumeId, `${volumeId}.ebs`)}`,
          `image ${join(out, volumeId, `${volumeId}.ebs`)}`,
        ],
      });

      // A stream that is not one: its error in the report, the exit non-zero.
      const cut = join(dir.path, 'cut.tar');
      writeFileSync(cut, readFileSync(f1!).subarray(0, 3000));
      const broken = await cli(['verify', '--json', cut]);
      expect(broken.code).toBe(1);
      expect(JSON.parse(broken.stdout.toString())).toMatchObject({ ok: false, streams: [{ ok: false }] });
    });
  });
});
