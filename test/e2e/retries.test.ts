// The restores to AWS here write every block (--from-snapshots=never): they test the stream's way
// into new snapshots. Restoring from the snapshots AWS still holds: from-snapshots.test.ts.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, emulator, tempDir, withEmulator, writeConfig } from '../helpers.js';

type Em = Awaited<ReturnType<typeof emulator>>;

/** Errors the SDK does not retry by itself, and that ec2-bpipe must. */
describe('retries the SDK leaves to us', () => {
  let em: Em;
  const dir = tempDir();
  let config: string;
  let volumeId: string;
  let tarFile: string;
  const baseFile = join(dir.path, 'base.tar');

  beforeAll(async () => {
    em = await emulator();
    ({ volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 16, seed: 5 } }));
    config = writeConfig(dir.path, em);
    tarFile = join(dir.path, 'v.tar');
    // The stream the restore test reads, made here so that it does not depend on the backup test.
    const made = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=base'], {
      stdoutFile: baseFile,
    });
    expect(made.code, made.stderr).toBe(0);
  });
  afterAll(async () => {
    await em.close();
    dir.cleanup();
  });

  it('backup retries ConcurrentLimitExceededException on GetSnapshotBlock', async () => {
    await em.admin.call('POST', 'requests/reset');
    await em.admin.call('POST', 'fail', {
      action: 'GetSnapshotBlock',
      code: 'ConcurrentLimitExceededException',
      message: 'You have reached the limit for concurrent API requests',
      count: 4,
    });
    const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=c1'], {
      stdoutFile: tarFile,
    });
    expect(result.code, result.stderr).toBe(0);
    expect((await em.admin.requests())['ebs:GetSnapshotBlock']).toBe(16 + 4);
    expect((await cli(['verify', tarFile])).code).toBe(0);
  });

  it('restore retries ResourceNotFoundException while a just-started snapshot is not yet visible', async () => {
    // Not visible for ten minutes of AWS's time: only the clock moved on below makes it so.
    em.options.startDelayMs = 600_000;
    try {
      await em.admin.call('POST', 'requests/reset');
      // A tenth of the real back-off: about 12 s of block-write retries, ample time to see the
      // first refused write and move the emulator's clock past the delay.
      const running = cli(['restore', '--from-snapshots=never', `--config=${config}`, baseFile], {
        env: { EC2_BPIPE_BACKOFF_SCALE: '0.1' },
      });
      const refused = async () => ((await em.admin.requests())['ebs:PutSnapshotBlock'] ?? 0) > 0;
      for (let i = 0; i < 400 && !(await refused()); i++) await new Promise((r) => setTimeout(r, 25));
      expect(await refused()).toBe(true);
      await em.admin.advance(600_000);
      const result = await running;
      expect(result.code, result.stderr).toBe(0);
      const counts = await em.admin.requests();
      expect(counts['ebs:PutSnapshotBlock']).toBeGreaterThan(16);
      const snapshotId = result.stdout.toString().split(' ')[1]!;
      const state = await em.admin.state();
      expect(state.snapshots.find((s) => s.SnapshotId === snapshotId)!.State).toBe('completed');
      const source = state.snapshots.find((s) => s.VolumeId === volumeId)!;
      expect(await em.admin.snapshotDigest(snapshotId)).toEqual(
        await em.admin.snapshotDigest(source.SnapshotId),
      );
    } finally {
      em.options.startDelayMs = 0;
    }
  });
});

describe('block tokens that expire during a backup', () => {
  it('are renewed by listing again from the block, and the stream is exact', async () => {
    // Tokens live 150 ms; with 20 ms per request and two workers, most expire before their read.
    await withEmulator({ blockTokenTtlMs: 150, latencyMs: 20 }, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 40, seed: 21 } });
      const config = writeConfig(dir.path, em, '[backup]\nworkers = 2\n');
      const file = join(dir.path, 'tokens.tar');
      const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=t1'], {
        stdoutFile: file,
      });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(/40 blocks streamed in .*\((\d+) expired block token\(s\) renewed\)/);
      const verify = await cli(['verify', file]);
      expect(verify.code).toBe(0);
      const snapshot = (await em.admin.state()).snapshots.find((s) => s.VolumeId === volumeId);
      const indexed = /sha256-indexed=([0-9a-f]{64})/.exec(verify.stdout.toString())?.[1];
      expect(indexed).toBe((await em.admin.snapshotDigest(snapshot?.SnapshotId)).digest);
    });
  });
});

describe('throttling', () => {
  it('shows, per volume, the share of EBS requests that AWS throttled', async () => {
    await withEmulator({ throttleRate: 0.3 }, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 30, seed: 22 } });
      const config = writeConfig(dir.path, em);
      const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=th1'], {
        stdoutFile: join(dir.path, 'th1.tar'),
      });
      expect(result.code, result.stderr).toBe(0);
      const line =
        /30 blocks streamed in [\d.]+s, effective [\d.]+ MiB\/s, (\d+)% of (\d+) EBS requests throttled/.exec(
          result.stderr,
        );
      expect(line, result.stderr).not.toBeNull();
      const [share, requests] = [Number(line![1]), Number(line![2])];
      // 30 reads and the listings, each tried again when throttled: a share near the 30% injected.
      expect(requests).toBeGreaterThan(30);
      expect(share).toBeGreaterThan(10);
      expect(share).toBeLessThan(50);
      const counted = (await em.admin.requests())['ebs:GetSnapshotBlock'] ?? 0;
      expect(counted).toBeGreaterThan(30);
    });
  });
});
