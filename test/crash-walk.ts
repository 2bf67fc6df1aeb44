/**
 * The crash-point walk of a restore to files (docs/DESIGN.md, "Crash safety"): the restore is
 * stopped before its 1st durable step, then before its 2nd, and so on until it runs through; after
 * each stop the next restore into the directory must find every image at the old point or every
 * image at the new one, with the state file saying which, and a rerun must finish at the new one.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, type CliResult, imageDigest, tempDir } from './helpers.js';
import { block, buildStream, ZERO } from './stream-builder.js';

export const INSTANCE = 'i-0123456789abcdef0';
export const VOLUMES = ['vol-0a000000000000001', 'vol-0a000000000000002', 'vol-0a000000000000003'];

type Blocks = Map<number, Buffer>;

/** One restore point: its stream on disk and what each volume's image holds once it is restored. */
export interface Point {
  job: string;
  file: string;
  images: Blocks[];
}

/** The admin digest of an image that holds `blocks` (zero blocks are holes). */
function digestOf(blocks: Blocks): string {
  const hash = createHash('sha256');
  const index = Buffer.alloc(8);
  for (const at of [...blocks.keys()].sort((a, b) => a - b)) {
    const data = blocks.get(at);
    if (data === undefined || data.equals(ZERO)) continue;
    index.writeBigUInt64BE(BigInt(at));
    hash.update(index).update(createHash('sha256').update(data).digest());
  }
  return hash.digest('hex');
}

/** Three volumes, a few blocks each, seeded: the old Full, a new Full, and an Incremental on the old one. */
export async function points(dir: string): Promise<{ full: Point; nextFull: Point; incremental: Point }> {
  const fullImages = VOLUMES.map((_, v) => new Map([0, 3, 7].map((i) => [i, block(100 * v + i)] as const)));
  const nextFullImages = VOLUMES.map(
    (_, v) => new Map([0, 2, 9].map((i) => [i, block(1000 + 100 * v + i)] as const)),
  );
  // The Incremental's changes: a new block, a block overwritten, and a block zeroed (an explicit change).
  const changes = VOLUMES.map(
    (_, v) =>
      new Map<number, Buffer>([
        [1, block(5000 + v)],
        [3, block(6000 + v)],
        [7, ZERO],
      ]),
  );
  const incrementalImages = fullImages.map((image, v) => new Map([...image, ...(changes[v] ?? new Map())]));
  const write = async (
    job: string,
    images: Blocks[],
    level?: 'Incremental',
    baseJob?: string,
    createdAt?: string,
  ): Promise<Point> => {
    const file = join(dir, `${job}.tar`);
    writeFileSync(
      file,
      await buildStream({
        job,
        ...(level && { level, baseJob: baseJob ?? null }),
        ...(createdAt && { createdAt }),
        instanceId: INSTANCE,
        volumes: VOLUMES.map((volumeId, v) => ({
          volumeId,
          blocks: (level ? changes : images)[v] ?? new Map(),
        })),
      }),
    );
    return { job, file, images };
  };
  return {
    full: await write('full-a', fullImages),
    nextFull: await write('full-b', nextFullImages, undefined, undefined, '2026-11-03T00:00:00.000Z'),
    incremental: await write(
      'inc-a1',
      incrementalImages,
      'Incremental',
      'full-a',
      '2026-11-02T12:00:00.000Z',
    ),
  };
}

/** Every block index any point writes: the digests read only those (the images are 1 GiB, sparse). */
const INDICES = [0, 1, 2, 3, 7, 9];

/** Which of `candidates` the directory holds, whole: the state names one job for every volume, and every image has its data. */
export async function heldPoint(out: string, candidates: Point[]): Promise<string> {
  const dir = join(out, INSTANCE);
  const state = JSON.parse(readFileSync(join(dir, 'ec2-bpipe-state.json'), 'utf8')) as {
    volumes: Record<string, { job: string }>;
  };
  const jobs = new Set(VOLUMES.map((v) => state.volumes[v]?.job));
  expect(jobs.size, `one job for every volume: ${JSON.stringify(state.volumes)}`).toBe(1);
  const job = [...jobs][0];
  const point = candidates.find((p) => p.job === job);
  expect(point, `the state names ${job}`).toBeDefined();
  for (const [v, volumeId] of VOLUMES.entries()) {
    const image = join(dir, `${volumeId}.ebs`);
    const { digest } = await imageDigest(image, INDICES);
    expect(digest, `${image} holds job ${job}`).toBe(digestOf(point?.images[v] ?? new Map()));
  }
  expect(
    existsSync(join(dir, 'ec2-bpipe-journal.json')),
    'no journal is left once the directory was opened',
  ).toBe(false);
  return job ?? '';
}

export type Way = 'SIGKILL' | 'SIGTERM' | 'ENOSPC';

/** What a stop in each way must look like from outside. */
function expectStopped(result: CliResult, way: Way, step: number): void {
  const said = `step ${step}: ${result.stderr}`;
  expect(result.stderr, said).toContain(`crash point ${step} (${way})`);
  if (way === 'SIGKILL') expect(result.code, said).toBe(-1);
  if (way === 'SIGTERM') {
    expect(result.code, said).toBe(143);
    expect(result.stderr, said).toMatch(
      /interrupted by SIGTERM; (files of job .* removed; the images are as they were|job .* was interrupted while it was installed in .*; the next restore into that directory finishes it)/,
    );
  }
  if (way === 'ENOSPC') {
    expect(result.code, said).toBe(1);
    expect(result.stderr, said).toMatch(
      /ENOSPC: no space left on device, .*(nothing of job .* was installed, the images in .* are as they were|job .* is committed in .* but not installed yet)/,
    );
  }
}

/**
 * Walks every durable step of restoring `next` over a directory that holds `base`: a copy of
 * `prepared` (the directory after restoring `base`) for each step. Returns the steps walked.
 */
export async function walk(
  work: string,
  prepared: string,
  base: Point,
  next: Point,
  way: Way,
): Promise<{ steps: number; rolledBack: number; rolledForward: number }> {
  let rolledBack = 0;
  let rolledForward = 0;
  for (let step = 1; ; step++) {
    const out = join(work, `${way}-${step}`);
    expect(spawnSync('cp', ['-a', '--sparse=always', prepared, out]).status).toBe(0);
    const crashed = await cli(['restore', `--to-dir=${out}`, next.file], {
      env: { EC2_BPIPE_CRASH_AT: `${step}:${way}` },
    });
    if (!crashed.stderr.includes('crash point')) {
      // Past the last step: the restore ran through.
      expect(crashed.code, crashed.stderr).toBe(0);
      expect(await heldPoint(out, [next])).toBe(next.job);
      spawnSync('rm', ['-rf', out]);
      return { steps: step - 1, rolledBack, rolledForward };
    }
    expectStopped(crashed, way, step);
    // The next restore into the directory settles it first: the base's stream with replace=never
    // writes nothing of its own, so what it leaves is what the settling left.
    const settle = await cli(['restore', `--to-dir=${out}`, '--replace=never', base.file]);
    expect(settle.code, `step ${step}: ${settle.stderr}`).toBe(0);
    const held = await heldPoint(out, [base, next]);
    if (held === base.job) rolledBack++;
    else rolledForward++;
    // The rerun of the interrupted restore ends at the new point, exit 0, whichever way it settled.
    const rerun = await cli(['restore', `--to-dir=${out}`, next.file]);
    expect(rerun.code, `step ${step}: ${rerun.stderr}`).toBe(0);
    expect(await heldPoint(out, [next])).toBe(next.job);
    spawnSync('rm', ['-rf', out]);
  }
}

/** The directory after restoring `base`, for the walks to copy. */
export async function prepare(work: string, base: Point): Promise<string> {
  const prepared = join(work, `prepared-${base.job}`);
  const result = await cli(['restore', `--to-dir=${prepared}`, base.file]);
  expect(result.code, result.stderr).toBe(0);
  return prepared;
}

/**
 * A walk runs the binary three times per step, over 30 and more steps: about 110 s alone on 2
 * cores, and the crash tier runs three walks at once. The limit is there to catch a hang, not to
 * time the walk (CI once stopped a sound walk at the default 120 s).
 */
const WALK_TIMEOUT_MS = 600_000;

/**
 * Crash safety of a restore to files: a stop before each durable step, in the given way (SIGKILL
 * as a power cut, SIGTERM as Bacula's cancel, ENOSPC as a full disk), leaves the old point or the
 * new one for all volumes together, and a rerun finishes the new one. One test file per way, so
 * that the runner spreads them over the cores.
 */
export function describeWalks(way: Way): void {
  describe(`a restore to files stopped by ${way} at every durable step`, () => {
    it.each([
      [
        'a 3-volume Full over a Full: old or new point, never mixed; the rerun ends at the new one',
        'nextFull',
      ],
      [
        'a 3-volume Incremental: old or new point, never mixed; the rerun exits 0 at the new one',
        'incremental',
      ],
    ] as const)(
      '%s',
      async (_title, which) => {
        const work = tempDir();
        try {
          const all = await points(work.path);
          const prepared = await prepare(work.path, all.full);
          const walked = await walk(work.path, prepared, all.full, all[which], way);
          // 3 images (or redo files) created and fsynced, 8 metadata files, the journal, the renames,
          // the redo applications, the state, the journal's removal: at least 30 steps.
          expect(walked.steps).toBeGreaterThanOrEqual(30);
          expect(walked.rolledBack).toBeGreaterThan(0);
          expect(walked.rolledForward).toBeGreaterThan(0);
        } finally {
          work.cleanup();
        }
      },
      WALK_TIMEOUT_MS,
    );
  });
}
