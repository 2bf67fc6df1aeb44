/**
 * The crash-point walk of a backup's point record (docs/FORMAT.md, "Point records"): the backup is
 * stopped before each durable step of the record's write, by SIGKILL, SIGTERM and a full disk.
 * After each stop the job's record is whole or absent: `restore --point` either launches the
 * point (dry run) or refuses it for want of a record, never reads half a file.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, emulator, tempDir, writeConfig } from '../helpers.js';

describe('a backup stopped at each step of its point record', () => {
  for (const how of ['SIGKILL', 'SIGTERM', 'ENOSPC'] as const) {
    it(`leaves the record whole or absent (${how})`, async () => {
      const em = await emulator();
      const dir = tempDir();
      try {
        const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 4, seed: 3 } });
        const config = writeConfig(dir.path, em, '', 'rec');
        const records = join(dir.path, 'state', 'points', 'rec', volumeId);
        let stops = 0;
        for (let step = 1; step < 20; step++) {
          const job = `j${step}`;
          const backup = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${job}`], {
            stdoutFile: join(dir.path, `${job}.tar`),
            env: { EC2_BPIPE_CRASH_AT: `${step}:${how}` },
          });
          const stopped = /crash point \d+ \(\w+\): before (write|rename|fsync) .*points/.test(backup.stderr);
          if (!/crash point/.test(backup.stderr)) {
            expect(backup.code, backup.stderr).toBe(0);
            break;
          }
          if (!stopped) continue;
          stops++;
          // A full disk fails the record only: the stream is whole, the job succeeds and says so.
          if (how === 'ENOSPC') {
            expect(backup.code, backup.stderr).toBe(0);
            expect(backup.stderr).toContain(`the point record of job ${job} could not be written`);
          } else expect(backup.code).not.toBe(0);
          const point = await cli([
            'restore',
            `--config=${config}`,
            `--point=${job}`,
            `--volume=${volumeId}`,
            '--dry-run',
          ]);
          const whole = existsSync(join(records, `${job}.json`));
          if (whole) expect(point.code, point.stderr).toBe(0);
          else {
            expect(point.code, point.stderr).toBe(2);
            expect(point.stderr).toContain(`no point record of job ${job}`);
          }
        }
        // Three durable steps: the write, the rename and the directory's flush.
        expect(stops).toBe(3);
        // The next complete job writes its record; a leftover temporary file is no record.
        const after = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=last'], {
          stdoutFile: join(dir.path, 'last.tar'),
        });
        expect(after.code, after.stderr).toBe(0);
        expect(readdirSync(records)).toContain('last.json');
        const latest = await cli([
          'restore',
          `--config=${config}`,
          '--point=latest',
          `--volume=${volumeId}`,
          '--dry-run',
        ]);
        expect(latest.code, latest.stderr).toBe(0);
        expect(latest.stderr).toContain('restoring point last');
      } finally {
        await em.close();
        dir.cleanup();
      }
    });
  }
});
