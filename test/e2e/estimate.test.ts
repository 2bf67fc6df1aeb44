import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { workersFor } from '../../src/commands/estimate.js';
import { cli, withEmulator, writeConfig } from '../helpers.js';

describe('estimate', () => {
  it('applies docs/DESIGN.md §7: one worker per 0.5 MiB/s, within 1 to 256', () => {
    expect(workersFor(10)).toBe(20);
    expect(workersFor(4.2)).toBe(9);
    expect(workersFor(0.1)).toBe(1);
    expect(workersFor(1000)).toBe(256);
  });

  it('says what a backup would move, from the snapshots that exist, and changes nothing in AWS', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 40, seed: 1 } });
      const config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 5\n', 'est');
      const estimate = async (...args: string[]) => {
        const before = (await em.admin.state()).snapshots.length;
        const result = await cli(['estimate', `--config=${config}`, `--volume=${volumeId}`, ...args]);
        expect(result.code, result.stderr).toBe(0);
        expect((await em.admin.state()).snapshots.length).toBe(before);
        return result.stdout.toString();
      };
      const none = await estimate('--bandwidth=10');
      expect(none).toContain(
        `volume ${volumeId} size=1GiB Full: up to 2048 blocks (1024 MiB); no ec2-bpipe snapshot yet`,
      );
      expect(none).toMatch(/of which 1024 MiB an upper bound/);
      expect(none).toContain('bandwidth 10 MiB/s: workers=20, about 2 min for the data');

      const backup = (job: string, level: string) =>
        cli(['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${job}`, `--level=${level}`], {
          stdoutFile: join(dir.path, `${job}.tar`),
        });
      expect((await backup('e1', 'Full')).code).toBe(0);
      expect(await estimate()).toContain("Full: 40 blocks (20 MiB); written blocks of job e1's snapshot");
      expect(await estimate('--level=Incremental')).toContain(
        'Incremental: at least 0 blocks (0 MiB); no snapshot newer than the base job e1, and no history to predict from',
      );

      await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 5, seed: 2 } });
      expect((await backup('e2', 'Incremental')).code).toBe(0);
      expect(await estimate('--level=Differential')).toContain(
        'Differential: at least 5 blocks (3 MiB); changed from job e1 to job e2',
      );
    });
  });

  it('predicts the next Incremental from the last intervals, within 25% of the real stream at a steady rate', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 2, fill: { blocks: 300, seed: 81 } });
      const config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 10\n', 'steady');
      const backup = (job: string, level: string) =>
        cli(['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${job}`, `--level=${level}`], {
          stdoutFile: join(dir.path, `${job}.tar`),
        });
      // About 40 blocks change between jobs (a steady rate, some jitter).
      const changes = [38, 43, 40, 41];
      expect((await backup('s0', 'Full')).code).toBe(0);
      for (const [i, blocks] of changes.slice(0, 3).entries()) {
        await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks, seed: 90 + i } });
        expect((await backup(`s${i + 1}`, 'Incremental')).code).toBe(0);
      }
      const result = await cli([
        'estimate',
        `--config=${config}`,
        `--volume=${volumeId}`,
        '--level=Incremental',
        '--json',
      ]);
      expect(result.code, result.stderr).toBe(0);
      const report = JSON.parse(result.stdout.toString()) as {
        level: string;
        volumes: { volumeId: string; blocks: number; predicted?: boolean; basis: string }[];
      };
      const [volume] = report.volumes;
      expect(report.level).toBe('Incremental');
      expect(volume?.predicted).toBe(true);
      expect(volume?.basis).toMatch(
        /^predicted: the mean change of the last 3 interval\(s\) between complete jobs \(\d+, \d+, \d+ blocks, newest first\)$/,
      );

      // The real next Incremental, at the same rate.
      await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: changes[3], seed: 99 } });
      expect((await backup('s4', 'Incremental')).code).toBe(0);
      const verify = await cli(['verify', join(dir.path, 's4.tar')]);
      const real = Number(/blocks=(\d+)/.exec(verify.stdout.toString())?.[1]);
      expect(real).toBeGreaterThan(0);
      expect(Math.abs((volume?.blocks ?? 0) - real) / real).toBeLessThanOrEqual(0.25);
    });
  });

  it('refuses a bandwidth that is not a positive number', async () => {
    await withEmulator({}, async (em, dir) => {
      const config = writeConfig(dir.path, em, '', 'bad');
      const result = await cli([
        'estimate',
        `--config=${config}`,
        '--volume=vol-0123456789abcdef0',
        '--bandwidth=fast',
      ]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/--bandwidth=fast: expected MiB\/s, a number above 0/);
    });
  });
});
