import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heldPoint, INSTANCE, type Point, points, prepare, VOLUMES } from '../crash-walk.js';
import { cli, tempDir } from '../helpers.js';

/**
 * The cases of a restore to files that a crash, a full disk or a forged stream used to turn into
 * wrong data behind an exit 0 (the crash-point walks in test/crash prove every step; these name
 * each case once, through the real binary).
 */
describe('a restore to files as one transaction', () => {
  const work = tempDir();
  let full: Point;
  let nextFull: Point;
  let incremental: Point;
  let prepared: string;
  const copy = (name: string): string => {
    const out = join(work.path, name);
    expect(spawnSync('cp', ['-a', '--sparse=always', prepared, out]).status).toBe(0);
    return out;
  };
  const crashAt = (step: number, way = 'SIGKILL') => ({ env: { EC2_BPIPE_CRASH_AT: `${step}:${way}` } });

  beforeAll(async () => {
    ({ full, nextFull, incremental } = await points(work.path));
    prepared = await prepare(work.path, full);
  });
  afterAll(() => work.cleanup());

  it('a kill between two image renames of a Full: the next Incremental on the old Full is refused, the images hold the new Full', async () => {
    const out = copy('between-renames');
    // Step 27 renames the second image into place (the steps are listed in docs/FORMAT.md's order).
    const killed = await cli(['restore', `--to-dir=${out}`, nextFull.file], crashAt(27));
    expect(killed.code).toBe(-1);
    expect(killed.stderr).toMatch(
      /crash point 27 \(SIGKILL\): before rename .*vol-0a000000000000002\.ebs\.partial/,
    );
    const next = await cli(['restore', `--to-dir=${out}`, incremental.file]);
    expect(next.code, next.stderr).toBe(1);
    expect(next.stderr).toContain('finishing the interrupted restore of job full-b');
    expect(next.stderr).toMatch(/job inc-a1 \(Incremental\) is based on job full-a .* holds job full-b/);
    expect(await heldPoint(out, [nextFull])).toBe('full-b');
  });

  it('a kill before the commit: the partial files are removed and the Incremental applies to the old Full', async () => {
    const out = copy('before-commit');
    const killed = await cli(['restore', `--to-dir=${out}`, nextFull.file], crashAt(14));
    expect(killed.code).toBe(-1);
    expect(readdirSync(join(out, INSTANCE)).some((f) => f.endsWith('.partial'))).toBe(true);
    const next = await cli(['restore', `--to-dir=${out}`, incremental.file]);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/removed \d+ file\(s\) an interrupted restore left/);
    expect(await heldPoint(out, [incremental])).toBe('inc-a1');
    expect(
      readdirSync(join(out, INSTANCE)).filter((f) => f.endsWith('.partial') || f.endsWith('.redo')),
    ).toEqual([]);
  });

  it('a kill between two redo applications: the Full again restores (no wedged directory), and the rerun of the Incremental exits 0', async () => {
    const wedged = copy('between-redos');
    // Step 28 applies the second volume's redo; the first is applied, its redo kept until the end.
    const killed = await cli(['restore', `--to-dir=${wedged}`, incremental.file], crashAt(28));
    expect(killed.stderr).toMatch(/before apply .*vol-0a000000000000002\.ebs\.redo/);
    // The journal finishes inc-a1 first; going back to its Full by hand then takes --force.
    const back = await cli(['restore', `--to-dir=${wedged}`, full.file]);
    expect(back.code).toBe(2);
    expect(back.stderr).toMatch(/holds job inc-a1 of .*, not older than job full-a .*Give --force/);
    const again = await cli(['restore', `--to-dir=${wedged}`, '--force', full.file]);
    expect(again.code, again.stderr).toBe(0);
    expect(await heldPoint(wedged, [full])).toBe('full-a');

    const rerun = copy('rerun');
    expect((await cli(['restore', `--to-dir=${rerun}`, incremental.file], crashAt(28))).code).toBe(-1);
    const finished = await cli(['restore', `--to-dir=${rerun}`, incremental.file]);
    expect(finished.code, finished.stderr).toBe(0);
    expect(finished.stderr).toContain('holds job inc-a1 already');
    expect(await heldPoint(rerun, [incremental])).toBe('inc-a1');
  });

  it('a full disk after the commit: the error says the job is committed and how to finish; the rerun exits 0 with exact images', async () => {
    const out = copy('enospc-committed');
    const failed = await cli(['restore', `--to-dir=${out}`, incremental.file], crashAt(30, 'ENOSPC'));
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /ENOSPC: no space left on device, write .*ec2-bpipe-state\.json\.partial: job inc-a1 is committed in .* but not installed yet\. .*run any restore into that directory/,
    );
    const rerun = await cli(['restore', `--to-dir=${out}`, incremental.file]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(await heldPoint(out, [incremental])).toBe('inc-a1');
  });

  it('a directory that ec2-bpipe 0.2 left mid-apply (one redo applied and deleted) is finished, not wedged', async () => {
    const out = copy('legacy');
    const dir = join(out, INSTANCE);
    // What 0.2 left: the state marks the link being applied; the first volume's redo is applied and gone.
    const staged = copy('legacy-staged');
    expect((await cli(['restore', `--to-dir=${staged}`, incremental.file], crashAt(30))).code).toBe(-1);
    const journal = JSON.parse(readFileSync(join(staged, INSTANCE, 'ec2-bpipe-journal.json'), 'utf8')) as {
      state: { volumes: Record<string, { snapshotId: string }> };
    };
    const state = JSON.parse(readFileSync(join(dir, 'ec2-bpipe-state.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    state.applying = {
      job: 'inc-a1',
      level: 'Incremental',
      createdAt: '2026-11-02T00:00:00.000Z',
      volumes: VOLUMES.map((volumeId) => ({
        volumeId,
        snapshotId: journal.state.volumes[volumeId]?.snapshotId,
      })),
    };
    for (const [i, volumeId] of VOLUMES.entries()) {
      const name = `${volumeId}.ebs`;
      // The first image already has its redo applied (as 0.2 left it); the others still have theirs.
      if (i === 0)
        expect(
          spawnSync('cp', ['--sparse=always', join(staged, INSTANCE, name), join(dir, name)]).status,
        ).toBe(0);
      else writeFileSync(join(dir, `${name}.redo`), readFileSync(join(staged, INSTANCE, `${name}.redo`)));
      for (const meta of [`${volumeId}.json`, `${volumeId}.sum.json`])
        writeFileSync(join(dir, meta), readFileSync(join(staged, INSTANCE, meta)));
    }
    writeFileSync(join(dir, 'ec2-bpipe-state.json'), JSON.stringify(state));
    const next = await cli(['restore', `--to-dir=${out}`, incremental.file]);
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toContain('finishing the application of job inc-a1 that ec2-bpipe 0.2 left');
    expect(await heldPoint(out, [incremental])).toBe('inc-a1');
  });

  it('an image whose sidecar names another snapshot than the state is refused with the way out', async () => {
    const out = copy('sidecar');
    const sidecar = join(out, INSTANCE, `${VOLUMES[1]}.json`);
    const meta = JSON.parse(readFileSync(sidecar, 'utf8')) as { snapshotId: string };
    writeFileSync(sidecar, JSON.stringify({ ...meta, snapshotId: 'snap-0fffffffffffffff0' }));
    const result = await cli(['restore', `--to-dir=${out}`, incremental.file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /names snap-0fffffffffffffff0, but ec2-bpipe-state\.json says .* holds job full-a .*Move the directory aside/,
    );
  });

  it('the test hook is refused outside the test suite', async () => {
    const result = await cli(['restore', `--to-dir=${join(work.path, 'hook')}`, full.file], {
      env: { EC2_BPIPE_CRASH_AT: '3', VITEST: undefined },
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('EC2_BPIPE_CRASH_AT is a hook of ec2-bpipe');
    expect(existsSync(join(work.path, 'hook'))).toBe(false);
  });

  it('--to-dir naming a file is a usage error', async () => {
    const file = join(work.path, 'a-file');
    writeFileSync(file, 'x');
    const result = await cli(['restore', `--to-dir=${file}`, full.file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`--to-dir=${file}: it exists and is not a directory`);
  });
});
