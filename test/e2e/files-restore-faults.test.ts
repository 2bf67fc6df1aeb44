import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { heldPoint, INSTANCE, points, VOLUMES } from '../crash-walk.js';
import { cli, tempDir } from '../helpers.js';
import { block, buildStream } from '../stream-builder.js';
import { splitMembers } from '../tar-members.js';

/**
 * A restore to files on a full disk, and format 1 streams, through the real binary. The cases
 * that need the crash-point hook are in test/crash/files-cases.test.ts.
 */
describe('a full disk under a restore to files (a real tmpfs)', () => {
  it('names the file, keeps the images as they were and leaves no partial file', async () => {
    const work = tempDir();
    const mount = join(work.path, 'small');
    mkdirSync(mount);
    // Room for the old Full's 9 blocks and its metadata, not for a second Full beside them.
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', mount]);
    expect(mounted.status, `mount a tmpfs (root is needed): ${mounted.stderr.toString()}`).toBe(0);
    try {
      const { full, nextFull } = await points(work.path);
      const out = join(mount, 'out');
      expect((await cli(['restore', `--to-dir=${out}`, full.file])).code).toBe(0);
      const failed = await cli(['restore', `--to-dir=${out}`, nextFull.file]);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toMatch(
        /\.ebs\.partial: ENOSPC: no space left on device.*: nothing of job full-b was installed, the images in .* are as they were\. Fix the cause/,
      );
      expect(failed.stderr).not.toMatch(/\n\s+at /);
      expect(readdirSync(join(out, INSTANCE)).filter((f) => f.endsWith('.partial'))).toEqual([]);
      expect(await heldPoint(out, [full])).toBe('full-a');
    } finally {
      spawnSync('umount', [mount]);
      work.cleanup();
    }
  });
});

describe('format 1 streams', () => {
  it('a format 2 stream forged to say format 1 is refused by verify and by restore; a real one restores only with --accept-format-1', async () => {
    const work = tempDir();
    try {
      const blocks = new Map([[0, block(1)]]);
      const volumes = [{ volumeId: VOLUMES[0] ?? '', blocks }];
      const v2 = await buildStream({ job: 'j2', volumes });
      const manifest = splitMembers(v2).members[0];
      if (manifest === undefined) throw new Error('no manifest');
      const text = v2.subarray(manifest.data, manifest.data + manifest.size).toString();
      const forged = Buffer.from(v2);
      forged.write(
        text
          .replace(/"formatVersion":( ?)2/, '"formatVersion":$11')
          .replace(/"toolVersion":( ?)"test"/, '"toolVersion":$1"0.25"'),
        manifest.data,
      );
      const forgedFile = join(work.path, 'forged.tar');
      writeFileSync(forgedFile, forged);
      for (const args of [['verify'], ['restore', `--to-dir=${join(work.path, 'f')}`, '--accept-format-1']]) {
        const result = await cli([...args, forgedFile]);
        expect(result.code, result.stderr).toBe(1);
        expect(result.stderr).toMatch(/says format version 1, but ec2-bpipe 0\.25 wrote it/);
      }
      expect(existsSync(join(work.path, 'f', INSTANCE, `${VOLUMES[0]}.ebs`))).toBe(false);

      const v1File = join(work.path, 'v1.tar');
      writeFileSync(v1File, await buildStream({ job: 'j1', version: 1, volumes }));
      const refused = await cli(['restore', `--to-dir=${join(work.path, 'r')}`, v1File]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(
        /nothing in a format 1 stream proves where each block belongs.*--accept-format-1/,
      );
      const accepted = await cli([
        'restore',
        `--to-dir=${join(work.path, 'r')}`,
        '--accept-format-1',
        v1File,
      ]);
      expect(accepted.code, accepted.stderr).toBe(0);
      expect(accepted.stderr).toMatch(
        /format version 1, read as accepted: nothing in a format 1 stream proves/,
      );
      const verified = await cli(['verify', v1File]);
      expect(verified.code).toBe(0);
      expect(verified.stderr).toMatch(
        /format version 1, read as accepted: nothing in a format 1 stream proves/,
      );
    } finally {
      rmSync(work.path, { recursive: true, force: true });
    }
  });
});
