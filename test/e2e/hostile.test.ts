/**
 * The eight findings of the integrity review, each reproduced against the real binary: a stream
 * (or a config, or a process event) that used to be accepted, or to end in a stack trace, is now
 * refused with one clear line, exit 1 (2 for config problems), and nothing made final.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK_SIZE } from '../../src/format/container.js';
import { CreateSnapshotCommand, CreateTagsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { BIN, cli, ROOT, sdkConfig, tempDir, withEmulator, writeConfig } from '../helpers.js';
import { block, buildStream, ZERO } from '../stream-builder.js';
import { fixChecksum, rebuild, splitMembers } from '../tar-members.js';

const VOL = 'vol-0123456789abcdef0';
const VOL2 = 'vol-0fedcba9876543210';

/** Files anywhere under `root`, relative, without directories. */
const filesUnder = (root: string): string[] =>
  readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
    .sort();

/** No stack trace reaches the job log: only short lines. */
function expectNoTrace(stderr: string): void {
  expect(stderr).not.toMatch(/^\s+at /m);
  expect(stderr.trim().split('\n').length, stderr).toBeLessThanOrEqual(6);
}

describe('hostile and damaged streams', () => {
  const dir = tempDir();
  let full: Buffer;
  const write = (name: string, data: Buffer): string => {
    const path = join(dir.path, name);
    writeFileSync(path, data);
    return path;
  };

  /** verify and restore --to-dir both refuse, with `pattern`, and leave no final-named file. */
  async function expectRefused(file: string, pattern: RegExp): Promise<void> {
    const verify = await cli(['verify', file]);
    expect(verify.code, verify.stderr).toBe(1);
    expect(verify.stderr).toMatch(pattern);
    expectNoTrace(verify.stderr);
    const out = join(dir.path, `out-${file.split('/').pop()}`);
    const restore = await cli(['restore', `--to-dir=${out}`, file]);
    expect(restore.code, restore.stderr).toBe(1);
    expect(restore.stderr).toMatch(pattern);
    expectNoTrace(restore.stderr);
    mkdirSync(out, { recursive: true });
    expect(filesUnder(out)).toEqual([]);
  }

  beforeAll(async () => {
    full = await buildStream({
      job: 'full-1',
      volumes: [
        {
          volumeId: VOL,
          blocks: new Map([
            [0, block(1)],
            [5, block(2)],
          ]),
        },
        { volumeId: VOL2, blocks: new Map([[3, block(3)]]) },
      ],
    });
  });
  afterAll(() => dir.cleanup());

  it('1. a negative base-256 size in any member header is refused, not taken for an empty success', async () => {
    for (const name of ['manifest.json', `${VOL}.ebs`, 'end.json']) {
      const bytes = Buffer.from(full);
      const member = splitMembers(bytes).members.find((m) => m.name === name)!;
      bytes[member.header + 124] = 0xc4;
      fixChecksum(bytes, member.header);
      const file = write(`negative-${name}.tar`, bytes);
      await expectRefused(file, /header field size is a negative or malformed base-256 number/);
    }
  });

  it('2. a region moved to another free offset is refused: the index-bound digest covers offsets', async () => {
    const bytes = Buffer.from(full);
    const ebs = splitMembers(bytes).members.find((m) => m.name === `${VOL}.ebs`)!;
    const map = bytes.toString('latin1', ebs.data, ebs.data + 512);
    const moved = map.replace(`\n${5 * BLOCK_SIZE}\n`, `\n${6 * BLOCK_SIZE}\n`);
    expect(moved).not.toBe(map);
    bytes.write(moved, ebs.data, 'latin1');
    const file = write('moved.tar', bytes);
    await expectRefused(file, new RegExp(`${VOL}\\.ebs: the blocks are not where they were`));
  });

  it('3. ids that would reach a path outside the target are refused, and nothing is written outside', async () => {
    const hostile = [
      await buildStream({
        job: 'x',
        instanceId: '../../../x',
        volumes: [{ volumeId: VOL, blocks: new Map([[0, block(1)]]) }],
      }),
      await buildStream({
        job: 'x',
        kind: 'volumes',
        volumes: [{ volumeId: '../../../x', blocks: new Map([[0, block(1)]]) }],
      }),
      await buildStream({ job: '..', volumes: [{ volumeId: VOL, blocks: new Map([[0, block(1)]]) }] }),
    ];
    const root = join(dir.path, 'traversal');
    for (const [i, stream] of hostile.entries()) {
      const file = write(`traversal-${i}.tar`, stream);
      const target = join(root, 'a', 'b', 'target');
      const verify = await cli(['verify', file]);
      expect(verify.code).toBe(1);
      expect(verify.stderr).toMatch(
        /member manifest\.json: (field (volumes\.0|job)|resourceId "\.\.\/\.\.\/\.\.\/x" does not name)/,
      );
      const restore = await cli(['restore', `--to-dir=${target}`, file]);
      expect(restore.code).toBe(1);
      mkdirSync(target, { recursive: true });
      expect(filesUnder(root)).toEqual([]);
    }
  });

  describe('4. metadata is covered: an edited field is refused', () => {
    let chain: string[];
    beforeAll(async () => {
      const volumes = (blocks: [number, Buffer][]) => [{ volumeId: VOL, blocks: new Map(blocks) }];
      chain = [
        write(
          'j1.tar',
          await buildStream({
            job: 'j1',
            volumes: volumes([
              [0, block(1)],
              [1, block(2)],
            ]),
          }),
        ),
        write(
          'j2.tar',
          await buildStream({
            job: 'j2',
            level: 'Incremental',
            baseJob: 'j1',
            volumes: volumes([[1, block(3)]]),
          }),
        ),
        write(
          'j3.tar',
          await buildStream({
            job: 'j3',
            level: 'Incremental',
            baseJob: 'j2',
            volumes: volumes([
              [2, block(4)],
              [0, ZERO],
            ]),
          }),
        ),
      ];
    });

    /** Rewrites `from` to `to` (same length) inside one JSON member, as a text editor would. */
    function edit(file: string, member: string, from: string, to: string): string {
      const bytes = readFileSync(file);
      const m = splitMembers(bytes).members.find((x) => x.name === member)!;
      const text = bytes.toString('utf8', m.data, m.data + m.size);
      expect(text).toContain(from);
      bytes.write(text.replace(from, to), m.data, 'utf8');
      return write(`edited-${member}-${to.replace(/\W/g, '')}.tar`, bytes);
    }

    it('a second Incremental whose baseJob names the Full', async () => {
      const edited = edit(chain[2]!, 'manifest.json', '"baseJob": "j2"', '"baseJob": "j1"');
      const out = join(dir.path, 'chain-edited');
      const result = await cli(['restore', `--to-dir=${out}`, chain[0]!, edited]);
      expect(result.code).toBe(1);
      // Refused by whichever check meets it first: the volume's own record of its base, or the digest.
      expect(result.stderr).toMatch(
        /member (manifest\.json does not match its digest in end\.json|vol-[0-9a-f]+\.json: baseJob j2, the manifest j1)/,
      );
      // The Full restored; the edited link changed nothing.
      const state = JSON.parse(
        readFileSync(join(out, 'i-0123456789abcdef0', 'ec2-bpipe-state.json'), 'utf8'),
      );
      expect(state.volumes[VOL].job).toBe('j1');
    });

    it('an edited instance type, and a level verify and restore both refuse', async () => {
      await expectRefused(
        edit(chain[0]!, 'instance.json', 'm5.large', 't3.large'),
        /member instance\.json does not match its digest/,
      );
      await expectRefused(
        edit(chain[0]!, 'manifest.json', '"level": "Full"', '"level": "FBll"'),
        /member manifest\.json: field level/,
      );
    });
  });

  it('5. damage after end.json leaves no image under its final name', async () => {
    const extra = rebuild(full, (members) => [...members, members[0]!]);
    await expectRefused(write('extra.tar', extra), /member manifest\.json follows end\.json/);
    const trailing = Buffer.concat([full, Buffer.from('garbage after the end')]);
    await expectRefused(write('trailing.tar', trailing), /data follows the end of the archive/);
    // Zero padding after the end records is what tar and Bacula add: accepted.
    const padded = write('padded.tar', Buffer.concat([full, Buffer.alloc(10240)]));
    expect((await cli(['verify', padded])).code).toBe(0);
  });

  it('verify prints the index-bound digest of each volume of a version 2 stream', async () => {
    const result = await cli(['verify', write('full.tar', full)]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.toString()).toMatch(new RegExp(`${VOL} Full .* sha256-indexed=[0-9a-f]{64}`));
  });
});

describe('1 and 2 against a restore to AWS', () => {
  it('a negative size or a moved region exits 1 and completes no snapshot; the intact stream restores', async () => {
    await withEmulator({}, async (em, dir) => {
      const config = writeConfig(dir.path, em);
      const stream = await buildStream({
        job: 'j1',
        kind: 'volumes',
        volumes: [
          {
            volumeId: VOL,
            blocks: new Map([
              [0, block(1)],
              [5, block(2)],
              [9, block(3)],
            ]),
          },
        ],
      });
      const negative = Buffer.from(stream);
      const ebs = splitMembers(negative).members.find((m) => m.name === `${VOL}.ebs`)!;
      negative[ebs.header + 124] = 0xc4;
      fixChecksum(negative, ebs.header);
      const moved = Buffer.from(stream);
      const map = moved.toString('latin1', ebs.data, ebs.data + 512);
      moved.write(map.replace(`\n${5 * BLOCK_SIZE}\n`, `\n${6 * BLOCK_SIZE}\n`), ebs.data, 'latin1');
      for (const [name, bytes, reason] of [
        ['negative', negative, /header field size is a negative/],
        ['moved', moved, /the blocks are not where they were/],
      ] as const) {
        const file = join(dir.path, `${name}.tar`);
        writeFileSync(file, bytes);
        const result = await cli(['restore', `--config=${config}`, '--no-launch', file]);
        expect(result.code, result.stderr).toBe(1);
        expect(result.stderr).toMatch(reason);
        expectNoTrace(result.stderr);
        const completed = (await em.admin.state()).snapshots.filter((s) => s.State === 'completed');
        expect(completed).toEqual([]);
      }
      const intact = join(dir.path, 'intact.tar');
      writeFileSync(intact, stream);
      const result = await cli(['restore', `--config=${config}`, '--no-launch', intact]);
      expect(result.code, result.stderr).toBe(0);
      const restored = /snapshot (snap-[0-9a-f]+)/.exec(result.stdout.toString())![1]!;
      const verified = await cli(['verify', intact]);
      const indexed = /sha256-indexed=([0-9a-f]{64})/.exec(verified.stdout.toString())![1];
      expect((await em.admin.snapshotDigest(restored)).digest).toBe(indexed);
    });
  });
});

describe('6. one volume, one unit; one config name, one config', () => {
  it('refuses a volume selected by an instance and by a volume tag, naming both units', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId, volumeIds } = await em.admin.instance({
        volumes: [{ sizeGiB: 1 }, { sizeGiB: 1, tags: { Backup: 'vol' } }],
      });
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\nvolume-tags = Backup=vol\n[bacula]\nstate-dir = ${dir.path}\n`,
      );
      const list = await cli(['list', `--config=${config}`, '--job=j1']);
      expect(list.code).toBe(2);
      const reason = new RegExp(
        `volume ${volumeIds[1]} belongs to two units, instance ${instanceId} and volumes ${volumeIds[1]}`,
      );
      expect(list.stdout.toString()).toMatch(reason);
      const backup = await cli(['backup', `--config=${config}`, `--instance=${instanceId}`, '--job=j1']);
      expect(backup.code).toBe(2);
      expect(backup.stderr).toMatch(reason);
      expect((await em.admin.state()).snapshots).toEqual([]);
    });
  });

  it('refuses snapshots another config file of the same name took, until [backup] name tells them apart', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 1 } });
      const [a, c] = ['a', 'c'].map((sub) => {
        mkdirSync(join(dir.path, sub));
        return writeConfig(join(dir.path, sub), em, '', 'web');
      });
      const run = (config: string, job: string, level: string) =>
        cli(['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${job}`, `--level=${level}`], {
          stdoutFile: join(dir.path, `${job}.tar`),
        });
      expect((await run(a!, 'a1', 'Full')).code).toBe(0);
      const clash = await run(c!, 'c1', 'Incremental');
      expect(clash.code).toBe(2);
      expect(clash.stderr).toMatch(
        /taken by another config file named web \(.*\/a\/web\.ini; this one is .*\/c\/web\.ini\).*\[backup\] name/,
      );
      writeFileSync(c!, `${readFileSync(c!, 'utf8')}\n[backup]\nname = web-c\n`);
      const named = await run(c!, 'c2', 'Incremental');
      expect(named.code, named.stderr).toBe(0);
      expect(named.stderr).toMatch(/no complete stream of this volume exists; taking a Full/);
    });
  });
});

describe('7. a job that failed before its snapshots existed', () => {
  it('the finalizer names the newest complete job before it, and its restore succeeds', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 3, seed: 2 } });
      const config = writeConfig(dir.path, em);
      const full = join(dir.path, 'j1.tar');
      const first = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=j1'], {
        stdoutFile: full,
      });
      expect(first.code, first.stderr).toBe(0);
      // j2 was killed before CreateSnapshot: it left nothing in AWS. Its finalizer still runs.
      const finalizer = await cli([
        'backup',
        '--finalizer',
        `--config=${config}`,
        `--volume=${volumeId}`,
        '--job=j2',
      ]);
      expect(finalizer.code, finalizer.stderr).toBe(0);
      const parsed = JSON.parse(finalizer.stdout.toString());
      expect(parsed).toMatchObject({ job: 'j2', head: 'j1', headLevel: 'Full' });
      const file = join(dir.path, 'restore.json');
      writeFileSync(file, finalizer.stdout);
      const closed = await cli(['restore', `--to-dir=${join(dir.path, 'out')}`, full, file]);
      expect(closed.code, closed.stderr).toBe(0);
      expect(closed.stderr).toMatch(/complete at job j1/);
      // And the next Incremental with %S = j2 is based on j1.
      const next = await cli(
        [
          'backup',
          `--config=${config}`,
          `--volume=${volumeId}`,
          '--job=j3',
          '--level=Incremental',
          '--prev-job=j2',
        ],
        { stdoutFile: join(dir.path, 'j3.tar') },
      );
      expect(next.code, next.stderr).toBe(0);
      expect(next.stderr).toMatch(/job j2 left no snapshot .*the newest complete stream is job j1/);
      expect(next.stderr).toMatch(/Incremental based on job j1/);
    });
  });
});

describe('8. one failure path: one line, no stack trace', () => {
  it('a block that keeps failing mid-volume ends the backup with one line, and the snapshots are named', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 6, seed: 3 } });
      const config = writeConfig(dir.path, em);
      await em.admin.call('POST', 'fail', {
        action: 'GetSnapshotBlock',
        code: 'AccessDeniedException',
        message: 'not allowed',
        status: 403,
        count: 50,
      });
      const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=j1'], {
        stdoutFile: join(dir.path, 'j1.tar'),
      });
      expect(result.code).toBe(1);
      expectNoTrace(result.stderr);
      expect(result.stderr).toMatch(
        /error: .*snapshots snap-[0-9a-f]+ of job j1 left streaming; the next job will not base on them/,
      );
    });
  });

  it('a reader that closes stdout early (a cancelled Bacula job) gets one line and exit 1', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 40, seed: 4 } });
      const config = writeConfig(dir.path, em);
      const child = spawn(
        process.execPath,
        [BIN, 'backup', `--config=${config}`, `--volume=${volumeId}`, '--job=j1'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      // As `| head -c 2000` does: read a little, then close the pipe.
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      child.stdout.destroy();
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(code).toBe(1);
      expectNoTrace(stderr);
      expect(stderr).toMatch(/standard output was closed by its reader.*left streaming/);
    });
  });

  it('verify piped into a reader that stops after one line ends with one line too', async () => {
    const dir = tempDir();
    try {
      const stream = await buildStream({
        job: 'j1',
        volumes: Array.from({ length: 6 }, (_, i) => ({
          volumeId: `vol-0123456789abcdef${i}`,
          blocks: new Map([[i, block(i)]]),
        })),
      });
      const files = Array.from({ length: 4 }, (_, i) => {
        const path = join(dir.path, `s${i}.tar`);
        writeFileSync(path, stream);
        return path;
      });
      const child = spawn(process.execPath, [BIN, 'verify', ...files], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      child.stdout.destroy();
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expectNoTrace(stderr);
      if (code !== 0) expect(stderr).toMatch(/standard output was closed by its reader/);
    } finally {
      dir.cleanup();
    }
  });

  it('a command whose work stops answering (the event loop empties before a verdict) fails, exit 1', () => {
    // What a stalled parser did: nothing left to wait for, no verdict. The guard turns it into an error.
    const script =
      "import('./src/lifecycle.ts').then((l) => { l.guardProcess(() => ({ log: undefined, command: 'verify' })); return new Promise(() => {}); })";
    const result = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      'error: verify: stopped without a verdict: an input or a service stopped answering\n',
    );
  });

  it('SIGTERM during a restore to files leaves no partial file and says so', async () => {
    const dir = tempDir();
    try {
      const blocks = new Map(Array.from({ length: 100 }, (_, i) => [i, block(i)] as const));
      const stream = await buildStream({ job: 'j1', volumes: [{ volumeId: VOL, blocks }] });
      const child = spawn(process.execPath, [BIN, 'restore', `--to-dir=${join(dir.path, 'out')}`], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdin.on('error', () => undefined);
      // Half the stream, then the signal once the restore has a partial image and waits for the rest.
      child.stdin.write(stream.subarray(0, stream.length / 2));
      const out = join(dir.path, 'out', 'i-0123456789abcdef0');
      await expect
        .poll(() => existsSync(out) && readdirSync(out).some((f) => f.endsWith('.partial')), {
          timeout: 20_000,
        })
        .toBe(true);
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(code).toBe(143);
      expectNoTrace(stderr);
      expect(stderr).toMatch(
        /restore: interrupted by SIGTERM; files of job j1 in .* removed; the images are as they were/,
      );
      expect(filesUnder(join(dir.path, 'out'))).toEqual([]);
    } finally {
      dir.cleanup();
    }
  });
});

describe('hostile tags and state read back from AWS and the state directory', () => {
  it('ignores a snapshot whose ec2-bpipe tags are out of shape: never a base, never deleted', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 3, seed: 31 } });
      const config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 1\n');
      const ec2 = new EC2Client(sdkConfig(em));
      try {
        const forged = (await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }))).SnapshotId!;
        await ec2.send(
          new CreateTagsCommand({
            Resources: [forged],
            Tags: [
              { Key: 'ec2-bpipe:config', Value: 'test' },
              { Key: 'ec2-bpipe:volume', Value: volumeId },
              { Key: 'ec2-bpipe:job', Value: '../../etc' },
              { Key: 'ec2-bpipe:level', Value: 'FBll' },
              { Key: 'ec2-bpipe:state', Value: 'complete' },
            ],
          }),
        );
        const run = (job: string) =>
          cli(
            ['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${job}`, '--level=Incremental'],
            {
              stdoutFile: join(dir.path, `${job}.tar`),
            },
          );
        const first = await run('j1');
        expect(first.code, first.stderr).toBe(0);
        expect(first.stderr).toMatch(/no complete stream of this volume exists; taking a Full/);
        expect((await run('j2')).code).toBe(0);
        // Retention kept one snapshot of its own, and left the forged one alone.
        const left = (await em.admin.state()).snapshots.map((s) => s.SnapshotId);
        expect(left).toContain(forged);
      } finally {
        ec2.destroy();
      }
    });
  });

  it('takes a damaged restore journal for what it is: warns, and finds the parents by their tags', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 3, seed: 32 } });
      const config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 5\n');
      const backup = async (job: string, level: string) => {
        const file = join(dir.path, `${job}.tar`);
        expect(
          (
            await cli(
              ['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${job}`, `--level=${level}`],
              { stdoutFile: file },
            )
          ).code,
        ).toBe(0);
        return file;
      };
      const full = await backup('j1', 'Full');
      await em.admin.call('POST', `volumes/${volumeId}/mutate`, {
        write: { blocks: 2, seed: 33 },
        unwrite: [],
      });
      const inc = await backup('j2', 'Incremental');
      expect((await cli(['restore', `--config=${config}`, full])).code).toBe(0);
      writeFileSync(
        join(dir.path, 'state', 'restore-journal.json'),
        '{"us-east-1/test/x": "not a snapshot id"',
      );
      const result = await cli(['restore', `--config=${config}`, inc]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(
        /the restore journal .*restore-journal\.json is damaged; using the snapshot tags/,
      );
      expect(result.stdout.toString()).toMatch(/^snapshot snap-[0-9a-f]+ source=vol-[0-9a-f]+ job=j2 /m);
    });
  });
});
