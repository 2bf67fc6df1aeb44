import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  backedUp,
  BIN,
  cli,
  emulator,
  imageDigest,
  restoredImageDigest,
  tempDir,
  writeConfig,
  withEmulator,
} from '../helpers.js';
import { rebuild } from '../tar-members.js';

type Em = Awaited<ReturnType<typeof emulator>>;

/** Copies a stream leaving one member out (GNU tar --delete refuses sparse pax members). */
function dropMember(from: string, to: string, name: string): void {
  writeFileSync(
    to,
    rebuild(readFileSync(from), (members) => members.filter((m) => m.name !== name)),
  );
}

const TAGS = { Name: 'web-1', Env: 'prod' };

describe('full backup of an instance with three volumes', () => {
  let em: Em;
  const dir = tempDir();
  let config: string;
  let instanceId: string;
  let volumeIds: string[];
  let tarFile: string;
  let backup: Awaited<ReturnType<typeof cli>>;
  const gnu = join(dir.path, 'gnu');

  beforeAll(async () => {
    em = await emulator();
    ({ instanceId, volumeIds } = await em.admin.instance({
      tags: TAGS,
      userData: Buffer.from('#!/bin/sh\necho hi\n').toString('base64'),
      volumes: [
        { sizeGiB: 2, fill: { blocks: 30, seed: 1 }, tags: { Role: 'root' } },
        { sizeGiB: 8, fill: { blocks: 5, seed: 2 }, volumeType: 'io2', iops: 3000 },
        { sizeGiB: 1, fill: { blocks: 100, seed: 3 }, volumeType: 'gp3', iops: 3000, throughput: 125 },
      ],
    }));
    config = writeConfig(dir.path, em, '[backup]\nsnapshot-tags = Team=ops\n', 'web');
    tarFile = join(dir.path, 'full.tar');
    backup = await cli(['backup', `--config=${config}`, `--instance=${instanceId}`, '--job=job-full-1'], {
      stdoutFile: tarFile,
    });
    // GNU tar's extraction, read by several tests: made once here, so none depends on another.
    mkdirSync(gnu, { recursive: true });
    execFileSync('tar', ['-xf', tarFile, '-C', gnu]);
  });
  afterAll(async () => {
    await em.close();
    dir.cleanup();
  });

  async function snapshotOf(volumeId: string): Promise<string> {
    const state = await em.admin.state();
    return state.snapshots.find(
      (s) =>
        s.VolumeId === volumeId &&
        s.Tags.some((t: any) => t.Key === 'ec2-bpipe:job' && t.Value === 'job-full-1'),
    )!.SnapshotId;
  }

  it('succeeds with only short log lines on stderr, and nothing but the tar on stdout', () => {
    expect(backup.code).toBe(0);
    expect(backup.stderr).not.toMatch(/NodeVersionSupportWarning|Warning:/);
    for (const line of backup.stderr.trim().split('\n')) expect(line.length).toBeLessThan(300);
    const listing = execFileSync('tar', ['-tvf', tarFile]).toString();
    const names = listing
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/).pop());
    expect(names).toEqual([
      'manifest.json',
      'instance.json',
      ...volumeIds.flatMap((v) => [`${v}.json`, `${v}.ebs`, `${v}.sum.json`]),
      'end.json',
    ]);
    expect(listing).toMatch(new RegExp(`8589934592 .* ${volumeIds[1]}\\.ebs`));
  });

  it('GNU tar -xf gives raw sparse images whose content digests equal the snapshots', async () => {
    const out = gnu;
    for (const volumeId of volumeIds) {
      const image = join(out, `${volumeId}.ebs`);
      const snapshotId = await snapshotOf(volumeId);
      expect(await restoredImageDigest(image, em.admin, snapshotId)).toEqual(
        await em.admin.snapshotDigest(snapshotId),
      );
    }
    const big = statSync(join(out, `${volumeIds[1]}.ebs`));
    expect(big.size).toBe(8 * 1024 ** 3);
    expect(big.blocks * 512).toBeLessThan(16 * 1024 ** 2);
  });

  it('records the metadata of docs/DESIGN.md §6: tags as lists without aws: keys, user data, devices, volume performance', async () => {
    const out = gnu;
    const instance = JSON.parse(readFileSync(join(out, 'instance.json'), 'utf8'));
    expect(instance.instanceId).toBe(instanceId);
    expect(instance.tags).toEqual([
      { Key: 'Name', Value: 'web-1' },
      { Key: 'Env', Value: 'prod' },
    ]);
    expect(Buffer.from(instance.userData, 'base64').toString()).toBe('#!/bin/sh\necho hi\n');
    expect(instance.blockDeviceMappings.map((m: any) => m.volumeId)).toEqual(volumeIds);
    expect(instance.metadataOptions.httpTokens).toBe('required');
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({
      format: 'ec2-bpipe',
      formatVersion: 2,
      config: 'web',
      job: 'job-full-1',
      level: 'Full',
      kind: 'instance',
      resourceId: instanceId,
      volumes: volumeIds,
    });
    const root = JSON.parse(readFileSync(join(out, `${volumeIds[0]}.json`), 'utf8'));
    expect(root).toMatchObject({
      deviceName: '/dev/xvda',
      sizeGiB: 2,
      blockCount: 30,
      level: 'Full',
      tags: [{ Key: 'Role', Value: 'root' }],
      volumeType: 'gp3',
    });
    const io2 = JSON.parse(readFileSync(join(out, `${volumeIds[1]}.json`), 'utf8'));
    expect(io2).toMatchObject({ volumeType: 'io2', iops: 3000, throughput: null });
    const gp3 = JSON.parse(readFileSync(join(out, `${volumeIds[2]}.json`), 'utf8'));
    expect(gp3).toMatchObject({ volumeType: 'gp3', iops: 3000, throughput: 125 });
  });

  it('tags every snapshot, and marks it complete only after the stream was written', async () => {
    for (const volumeId of volumeIds) {
      const state = await em.admin.state();
      const snap = state.snapshots.find((s) => s.VolumeId === volumeId)!;
      const tags = Object.fromEntries(snap.Tags.map((t: any) => [t.Key, t.Value]));
      expect(tags).toMatchObject({
        'ec2-bpipe:config': 'web',
        'ec2-bpipe:job': 'job-full-1',
        'ec2-bpipe:level': 'Full',
        'ec2-bpipe:volume': volumeId,
        'ec2-bpipe:instance': instanceId,
        'ec2-bpipe:state': 'complete',
        Team: 'ops',
      });
    }
    const counts = await em.admin.requests();
    expect(counts['ec2:CreateSnapshots']).toBe(1);
    expect(counts['ec2:CreateSnapshot']).toBeUndefined();
  });

  it('verify passes and prints one line per volume', async () => {
    const result = await cli(['verify', tarFile]);
    expect(result.code).toBe(0);
    const lines = result.stdout.toString().trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const [i, v] of volumeIds.entries()) {
      expect(lines[i]).toMatch(new RegExp(`^ok .* ${v} Full job=job-full-1 blocks=`));
      // The index-bound digest of a Full is the source snapshot's content digest.
      const indexed = /sha256-indexed=([0-9a-f]{64})/.exec(lines[i]!)?.[1];
      expect(indexed).toBe((await em.admin.snapshotDigest(await snapshotOf(v))).digest);
    }
  });

  it('restore --to-dir gives the same images, mode 0600, from a file or from stdin', async () => {
    const out = join(dir.path, 'restored');
    const result = await cli(['restore', `--to-dir=${out}`, tarFile]);
    expect(result.code).toBe(0);
    const fromStdin = join(dir.path, 'restored-stdin');
    const piped = await cli(['restore', `--to-dir=${fromStdin}`], { stdin: readFileSync(tarFile) });
    expect(piped.code).toBe(0);
    for (const root of [out, fromStdin]) {
      for (const volumeId of volumeIds) {
        const image = join(root, instanceId, `${volumeId}.ebs`);
        expect(statSync(image).mode & 0o777).toBe(0o600);
        const snapshotId = await snapshotOf(volumeId);
        expect(await restoredImageDigest(image, em.admin, snapshotId)).toEqual(
          await em.admin.snapshotDigest(snapshotId),
        );
      }
      expect(readdirSync(join(root, instanceId)).filter((f) => f.endsWith('.partial'))).toEqual([]);
    }
  });

  describe('damaged streams are refused by verify and restore, leaving no finished-looking image', () => {
    const damaged = (name: string, make: (copy: string) => void): string => {
      const copy = join(dir.path, name);
      writeFileSync(copy, readFileSync(tarFile));
      make(copy);
      return copy;
    };

    async function expectRefused(file: string, pattern: RegExp): Promise<void> {
      const verify = await cli(['verify', file]);
      expect(verify.code).toBe(1);
      expect(verify.stderr).toMatch(pattern);
      const out = join(dir.path, `out-${file.split('/').pop()}`);
      const restore = await cli(['restore', `--to-dir=${out}`, file]);
      expect(restore.code).toBe(1);
      expect(restore.stderr).toMatch(pattern);
      const left = readdirSync(out, { recursive: true }).map(String);
      expect(left.filter((f) => f.endsWith('.ebs') || f.endsWith('.partial'))).toEqual([]);
    }

    it('one flipped data byte', async () => {
      const file = damaged('flipped.tar', (copy) => {
        const bytes = readFileSync(copy);
        // Fifty blocks before the end lies inside the last volume's data.
        const at = bytes.length - 50 * 512 * 1024;
        bytes[at] = bytes[at]! ^ 0x01;
        writeFileSync(copy, bytes);
      });
      await expectRefused(
        file,
        new RegExp(`${volumeIds[2]}\\.ebs: the blocks do not match their aggregate checksum`),
      );
    });

    it('a truncated stream', async () => {
      const file = damaged('truncated.tar', (copy) =>
        truncateSync(copy, Math.floor(statSync(copy).size / 2)),
      );
      await expectRefused(file, /truncated/);
    });

    it('a stream with a dropped member', async () => {
      const file = join(dir.path, 'dropped.tar');
      dropMember(tarFile, file, `${volumeIds[1]}.sum.json`);
      await expectRefused(
        file,
        new RegExp(`expected member ${volumeIds[1]}\\.sum\\.json, found ${volumeIds[2]}\\.json`),
      );
    });

    it('a stream without its end marker', async () => {
      const file = join(dir.path, 'no-end.tar');
      dropMember(tarFile, file, 'end.json');
      await expectRefused(file, /incomplete: member end\.json is missing/);
    });
  });
});

describe('volume mode', () => {
  it('snapshots two volumes of one instance with one CreateSnapshots call, excluding the others', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeIds } = await em.admin.instance({
        volumes: [
          { sizeGiB: 1, fill: { blocks: 3, seed: 4 } },
          { sizeGiB: 1, fill: { blocks: 4, seed: 5 } },
          { sizeGiB: 1, fill: { blocks: 5, seed: 6 } },
        ],
      });
      const config = writeConfig(dir.path, em);
      const wanted = [volumeIds[1]!, volumeIds[2]!];
      const file = join(dir.path, 'vols.tar');
      const result = await cli(['backup', `--config=${config}`, `--volume=${wanted.join(',')}`, '--job=v1'], {
        stdoutFile: file,
      });
      expect(result.code).toBe(0);
      const counts = await em.admin.requests();
      expect(counts['ec2:CreateSnapshots']).toBe(1);
      expect(counts['ec2:CreateSnapshot']).toBeUndefined();
      const state = await em.admin.state();
      expect(state.snapshots.map((s) => s.VolumeId).sort()).toEqual([...wanted].sort());
      // A volumes unit streams its volumes in sorted order, whatever the order given.
      const verify = await cli(['verify', file]);
      const blocks = new Map([
        [wanted[0], 4],
        [wanted[1], 5],
      ]);
      const [first, second] = [...wanted].sort();
      expect(verify.stdout.toString()).toMatch(
        new RegExp(`${first}.*blocks=${blocks.get(first)}[\\s\\S]*${second}.*blocks=${blocks.get(second)}`),
      );
    });
  });

  it('snapshots a detached volume with CreateSnapshot', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 7 } });
      const config = writeConfig(dir.path, em);
      const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=d1'], {
        stdoutFile: join(dir.path, 'd.tar'),
      });
      expect(result.code).toBe(0);
      expect((await em.admin.requests())['ec2:CreateSnapshot']).toBe(1);
      const verify = await cli(['verify', join(dir.path, 'd.tar')]);
      expect(verify.code).toBe(0);
    });
  });

  it('restores the same image from stdin redirected from a file and from a named FIFO', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId, file } = await backedUp(em, dir.path, { blocks: 6, seed: 12, job: 's1' });
      // A file on stdin is read through a handle of its own; a named FIFO as a Node stream.
      const scripts = {
        redirect: 'exec "$0" "$1" restore "--to-dir=$2" < "$3"',
        fifo: 'mkfifo "$4" && { cat "$3" > "$4" & } && exec "$0" "$1" restore "--to-dir=$2" < "$4"',
      };
      const snapshot = (await em.admin.state()).snapshots.find((s) => s.VolumeId === volumeId);
      const expected = await em.admin.snapshotDigest(snapshot?.SnapshotId ?? '');
      for (const [name, script] of Object.entries(scripts)) {
        const out = join(dir.path, name);
        const args = ['-c', script, process.execPath, BIN, out, file, join(dir.path, `${name}.fifo`)];
        const restore = await cli(args, { command: 'sh' });
        expect(restore.code, `${name}: ${restore.stderr}`).toBe(0);
        expect(await imageDigest(join(out, volumeId, `${volumeId}.ebs`)), name).toEqual(expected);
      }
    });
  });
});

describe('block reads under faults', () => {
  it('retries corrupted blocks and broken bodies, and still streams exactly the snapshot', async () => {
    await withEmulator(
      { corruptRate: 0.1, resetRate: 0.1, throttleRate: 0.1, errorRate: 0.05 },
      async (em, dir) => {
        const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 120, seed: 8 } });
        const config = writeConfig(dir.path, em);
        const file = join(dir.path, 'f.tar');
        const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=f1'], {
          stdoutFile: file,
        });
        expect(result.code).toBe(0);
        em.options.corruptRate = em.options.resetRate = em.options.throttleRate = em.options.errorRate = 0;
        const out = join(dir.path, 'x');
        execFileSync('mkdir', ['-p', out]);
        execFileSync('tar', ['-xf', file, '-C', out]);
        const snapshot = (await em.admin.state()).snapshots[0]!;
        expect(await imageDigest(join(out, `${volumeId}.ebs`))).toEqual(
          await em.admin.snapshotDigest(snapshot.SnapshotId),
        );
        expect((await em.admin.requests())['ebs:GetSnapshotBlock']).toBeGreaterThan(120);
      },
    );
  });

  it('fails, naming the block and snapshot, when a block never verifies; the snapshot is not marked complete', async () => {
    await withEmulator({ corruptRate: 1 }, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 3, seed: 9 } });
      const config = writeConfig(dir.path, em);
      const file = join(dir.path, 'bad.tar');
      const result = await cli(['backup', `--config=${config}`, `--volume=${volumeId}`, '--job=b1'], {
        stdoutFile: file,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /block \d+ of snapshot snap-[0-9a-f]+ could not be read and verified \(ChecksumMismatch/,
      );
      const snapshot = (await em.admin.state()).snapshots[0]!;
      expect(snapshot.Tags.find((t: any) => t.Key === 'ec2-bpipe:state').Value).toBe('failed');
      const verify = await cli(['verify', file]);
      expect(verify.code).toBe(1);
    });
  });
});
