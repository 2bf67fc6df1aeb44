import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, ROOT, withEmulator, writeConfig } from '../helpers.js';

const BLOCK = 512 * 1024;
const COUNT_HASHING = { NODE_OPTIONS: `--import ${join(ROOT, 'test', 'fixtures', 'count-hashing.mjs')}` };

function hashedBytes(stderr: string, counter = 'hashed-bytes'): number {
  const match = new RegExp(`^${counter} (\\d+)$`, 'm').exec(stderr);
  expect(match, stderr).not.toBeNull();
  return Number(match?.[1]);
}

/** Small-scale guards of what docs/PERFORMANCE.md measures at scale (issue: performance). */
describe('performance guards', () => {
  it('hashes each block once in a backup and once in a restore to AWS', async () => {
    await withEmulator({}, async (em, dir) => {
      const blocks = 40;
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks, seed: 31 } });
      const config = writeConfig(dir.path, em);
      const file = join(dir.path, 'g.tar');
      const backup = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=g1'], {
        stdoutFile: file,
        env: COUNT_HASHING,
      });
      expect(backup.code, backup.stderr).toBe(0);
      const restore = await cli(['restore', `--config=${config}`, file], { env: COUNT_HASHING });
      expect(restore.code, restore.stderr).toBe(0);
      const data = blocks * BLOCK;
      // Once per block (AWS's checksum in a backup; the stream check in a restore), plus JSON
      // members and SigV4's small strings: well under a second pass over the data. The SigV4
      // payload hash of PutSnapshotBlock reuses the block's digest instead of hashing it again.
      for (const run of [backup, restore]) {
        const hashed = hashedBytes(run.stderr);
        expect(hashed).toBeGreaterThanOrEqual(data);
        expect(hashed).toBeLessThan(data * 1.1);
        // 8 workers, the default: the main thread hashes (HASH_THREAD_MIN_WORKERS).
        expect(hashedBytes(run.stderr, 'thread-hashed-bytes')).toBe(0);
      }
    });
  });

  it('hashes each block once on the hashing thread when a backup reads with many workers, and the stream verifies', async () => {
    await withEmulator({}, async (em, dir) => {
      const blocks = 40;
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks, seed: 32 } });
      const config = writeConfig(dir.path, em, '[backup]\nworkers = 32\n', 'many');
      const file = join(dir.path, 'm.tar');
      const backup = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=m1'], {
        stdoutFile: file,
        env: COUNT_HASHING,
      });
      expect(backup.code, backup.stderr).toBe(0);
      const hashed = hashedBytes(backup.stderr);
      expect(hashed).toBeGreaterThanOrEqual(blocks * BLOCK);
      expect(hashed).toBeLessThan(blocks * BLOCK * 1.1);
      expect(hashedBytes(backup.stderr, 'thread-hashed-bytes')).toBe(blocks * BLOCK);
      const verify = await cli(['verify', file]);
      expect(verify.code, verify.stderr).toBe(0);
      expect(verify.stdout.toString()).toContain(`blocks=${blocks}`);
    });
  });
});
