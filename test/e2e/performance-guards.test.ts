import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backedUp, cli, imageDigest, ROOT, withEmulator } from '../helpers.js';

const BLOCK = 512 * 1024;
const COUNT_HASHING = { NODE_OPTIONS: `--import ${join(ROOT, 'test', 'fixtures', 'count-hashing.mjs')}` };
const COUNT_FLUSHES = { NODE_OPTIONS: `--import ${join(ROOT, 'test', 'fixtures', 'count-flushes.mjs')}` };

/** The count a preload printed on stderr as `<counter> N`. */
function counted(stderr: string, counter = 'hashed-bytes'): number {
  const match = new RegExp(`^${counter} (\\d+)$`, 'm').exec(stderr);
  expect(match, stderr).not.toBeNull();
  return Number(match?.[1]);
}

/** The bundle files a command loads before it runs: cli.js and the chunks it imports statically. */
function startupFiles(): string[] {
  const dir = join(ROOT, 'dist', 'bundle');
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const [, chunk] of readFileSync(join(dir, file), 'utf8').matchAll(
      /(?:from|import) "\.\/(chunk-\w+\.js)"/g,
    ))
      visit(chunk!);
  };
  visit('cli.js');
  return [...seen].map((f) => join(dir, f));
}

/** Small-scale guards of what docs/PERFORMANCE.md measures at scale (issue: performance). */
describe('performance guards', () => {
  it('every command starts without the AWS SDK: the region table and the clients load only where AWS is called', () => {
    const loaded = startupFiles().map((f) => readFileSync(f, 'utf8'));
    expect(loaded.length).toBeGreaterThan(1);
    // The SDK's partition table (it lists ap-southeast-5) and its EC2 client.
    for (const marker of ['"ap-southeast-5"', 'DescribeInstancesCommand'])
      expect(
        loaded.some((text) => text.includes(marker)),
        marker,
      ).toBe(false);
  });

  it('hashes each block once in a backup and once in a restore to AWS', async () => {
    await withEmulator({}, async (em, dir) => {
      const blocks = 40;
      const { config, file, backup } = await backedUp(em, dir.path, {
        blocks,
        seed: 31,
        job: 'g1',
        env: COUNT_HASHING,
      });
      const restore = await cli(['restore', `--config=${config}`, file], { env: COUNT_HASHING });
      expect(restore.code, restore.stderr).toBe(0);
      const data = blocks * BLOCK;
      // Once per block (AWS's checksum in a backup; the stream check in a restore), plus JSON
      // members and SigV4's small strings: well under a second pass over the data. The SigV4
      // payload hash of PutSnapshotBlock reuses the block's digest instead of hashing it again.
      for (const run of [backup, restore]) {
        const hashed = counted(run.stderr);
        expect(hashed).toBeGreaterThanOrEqual(data);
        expect(hashed).toBeLessThan(data * 1.1);
      }
    });
  });

  it('hashes each block once when a backup reads with many workers, and the stream verifies', async () => {
    await withEmulator({}, async (em, dir) => {
      const blocks = 40;
      const { file, backup } = await backedUp(em, dir.path, {
        blocks,
        seed: 32,
        job: 'm1',
        configBody: '[backup]\nworkers = 32\n',
        env: COUNT_HASHING,
      });
      const hashed = counted(backup.stderr);
      expect(hashed).toBeGreaterThanOrEqual(blocks * BLOCK);
      expect(hashed).toBeLessThan(blocks * BLOCK * 1.1);
      const verify = await cli(['verify', file]);
      expect(verify.code, verify.stderr).toBe(0);
      expect(verify.stdout.toString()).toContain(`blocks=${blocks}`);
    });
  });

  it('restore to files flushes an image in the background as it writes it, and the image is the snapshot', async () => {
    await withEmulator({}, async (em, dir) => {
      // 70 MiB: more than one background flush interval (64 MiB) of a single image.
      const { volumeId, file } = await backedUp(em, dir.path, { blocks: 140, seed: 33, job: 'f1' });
      const out = join(dir.path, 'images');
      const restore = await cli(['restore', `--to-dir=${out}`, file], { env: COUNT_FLUSHES });
      expect(restore.code, restore.stderr).toBe(0);
      const flushes = (kind: string, file: string): number =>
        Number(
          new RegExp(`^${kind} ${file.replaceAll('.', '\\.')} (\\d+)$`, 'm').exec(restore.stderr)?.[1] ?? 0,
        );
      // One background flush, then the image's final fsync, while it was still a partial file.
      expect(flushes('datasync', `${volumeId}.ebs.partial`), restore.stderr).toBe(1);
      expect(flushes('sync', `${volumeId}.ebs.partial`), restore.stderr).toBe(1);
      // Its metadata and the state file are on disk before they are renamed into place, and the
      // directory after the renames: a restore that reports success survives a crash right after.
      for (const name of [
        `${volumeId}.json`,
        `${volumeId}.sum.json`,
        'manifest.json',
        'ec2-bpipe-state.json',
      ])
        expect(flushes('sync', `${name}.partial`), `${name}\n${restore.stderr}`).toBe(1);
      expect(flushes('sync', volumeId), restore.stderr).toBeGreaterThanOrEqual(1);
      const snapshot = (await em.admin.state()).snapshots.find((s) => s.VolumeId === volumeId);
      expect(snapshot).toBeDefined();
      expect(await imageDigest(join(out, volumeId, `${volumeId}.ebs`))).toEqual(
        await em.admin.snapshotDigest(snapshot?.SnapshotId ?? ''),
      );
    });
  });
});
