import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, emulator, tempDir, writeConfig } from '../helpers.js';

type Em = Awaited<ReturnType<typeof emulator>>;

/** Errors the SDK does not retry by itself, and that ec2-bpipe must. */
describe('retries the SDK leaves to us', () => {
  let em: Em;
  const dir = tempDir();
  let config: string;
  let volumeId: string;
  let tarFile: string;

  beforeAll(async () => {
    em = await emulator();
    ({ volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 16, seed: 5 } }));
    config = writeConfig(dir.path, em);
    tarFile = join(dir.path, 'v.tar');
  });
  afterAll(async () => {
    await em.close();
    dir.cleanup();
  });

  it('backup retries ConcurrentLimitExceededException on GetSnapshotBlock', async () => {
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
    em.options.startDelayMs = 1200;
    try {
      await em.admin.call('POST', 'requests/reset');
      // A tenth of the real back-off: the scaled-down default would give up before 1.2 s pass.
      const result = await cli(['restore', `--config=${config}`, tarFile], {
        env: { EC2_BPIPE_BACKOFF_SCALE: '0.1' },
      });
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
