/**
 * Timing under a quota kept in real time: how many requests a block costs depends on how fast
 * this host asks, so the file runs in the slow tier, one file at a time (`npm run test:slow`):
 * beside other test files on 2 cores, a slowed reader asks little and both counts meet.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, withEmulator, writeConfig } from '../helpers.js';

/**
 * AWS throttles the block APIs by request rate. With a fixed worker count every request over the
 * rate is refused and tried again; the adaptive limit runs fewer workers while AWS throttles, so
 * the same blocks cost fewer requests.
 */
describe('worker count under a request-rate quota', () => {
  const BLOCKS = 300;
  const RATE = 100;

  it('backs off: fewer requests per block than fixed workers, exact streams, and says more workers would not help', async () => {
    await withEmulator({ latencyMs: 10 }, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: BLOCKS, seed: 23 } });
      const fixed = writeConfig(dir.path, em, '[backup]\nworkers = 64\nadapt-workers = no\n', 'fixed');
      const adaptive = writeConfig(dir.path, em, '[backup]\nworkers = 64\n', 'adaptive');
      const reads: Record<string, number> = {};
      const logs: Record<string, string> = {};
      for (const [name, config] of [
        ['fixed', fixed],
        ['adaptive', adaptive],
      ] as const) {
        const file = join(dir.path, `${name}.tar`);
        em.options.blockRequestsPerSecond = RATE;
        await em.admin.call('POST', 'requests/reset');
        // How long a refused request waits decides how many requests a fixed worker count
        // wastes, so the back-off is scaled less here than in the other tests (0.2, not 0.01: at
        // 0.01 the fixed run spends its retries at once and fails).
        const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${name}`], {
          stdoutFile: file,
          env: { EC2_BPIPE_BACKOFF_SCALE: '0.2' },
        });
        em.options.blockRequestsPerSecond = 0;
        expect(result.code, result.stderr).toBe(0);
        reads[name] = (await em.admin.requests())['ebs:GetSnapshotBlock'] ?? 0;
        logs[name] = result.stderr;
        const verify = await cli(['verify', file]);
        expect(verify.code, verify.stderr).toBe(0);
        const snapshot = (await em.admin.state()).snapshots.find(
          (s) =>
            s.VolumeId === volumeId &&
            s.Tags?.some(
              (t: { Key: string; Value: string }) => t.Key === 'ec2-bpipe:job' && t.Value === name,
            ),
        );
        const indexed = /sha256-indexed=([0-9a-f]{64})/.exec(verify.stdout.toString())?.[1];
        expect(indexed).toBe((await em.admin.snapshotDigest(snapshot?.SnapshotId)).digest);
      }
      const perBlock = { fixed: (reads.fixed ?? 0) / BLOCKS, adaptive: (reads.adaptive ?? 0) / BLOCKS };
      // 64 workers at 10 ms ask for about 6,400 requests/s against a quota of 100. Measured alone
      // at back-off scale 0.2: fixed 2.26 to 2.40 requests a block, adaptive 1.33 (beside other
      // files on 2 cores: fixed 1.19 to 1.23, adaptive 1.10 to 1.24, hence this tier). With
      // production delays 1.61 to 1.69 against 1.29, docs/DESIGN.md §7.
      expect(perBlock.fixed, logs.fixed).toBeGreaterThan(1.3);
      expect(perBlock.adaptive, JSON.stringify(perBlock)).toBeLessThan(perBlock.fixed * 0.9);
      expect(logs.adaptive).toMatch(
        /% of \d+ EBS requests throttled; AWS's request rate held it to [\d.]+ of 64 workers on average \(lowest \d+\): more workers would not help/,
      );
      expect(logs.fixed).not.toMatch(/more workers would not help/);
    });
  });
});
