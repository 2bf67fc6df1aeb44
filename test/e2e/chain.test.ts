// The restores to AWS here write every block (--from-snapshots=never): they test the stream's way
// into new snapshots. Restoring from the snapshots AWS still holds: from-snapshots.test.ts.

import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateSnapshotCommand,
  CreateTagsCommand,
  DeleteSnapshotCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStream } from '../../src/stream/reader.js';
import type { Manifest } from '../../src/format/members.js';
import {
  type CliResult,
  cli,
  emulator,
  imageDigest,
  sdkConfig,
  tempDir,
  writeConfig,
  withEmulator,
} from '../helpers.js';

type Em = Awaited<ReturnType<typeof emulator>>;

const BLOCK = 512 * 1024;
const ZERO = Buffer.alloc(BLOCK);
const tagMap = (tags: { Key: string; Value: string }[] = []) =>
  Object.fromEntries(tags.map((t) => [t.Key, t.Value]));

interface StreamContent {
  manifest: Manifest;
  blocks: Map<string, number[]>;
  zeros: Map<string, number[]>;
}

async function content(file: string): Promise<StreamContent> {
  const blocks = new Map<string, number[]>();
  const zeros = new Map<string, number[]>();
  const report = await readStream(createReadStream(file), file, {
    volumeStart: (meta) => {
      blocks.set(meta.volumeId, []);
      zeros.set(meta.volumeId, []);
    },
    block: (meta, index, data) => {
      blocks.get(meta.volumeId)!.push(index);
      if (data.equals(ZERO)) zeros.get(meta.volumeId)!.push(index);
    },
  });
  return { manifest: report.manifest, blocks, zeros };
}

/** What ListChangedBlocks must report between two snapshots, from their block maps and the writes since. */
function expectedChanges(base: number[], head: number[], writtenSince: number[]): number[] {
  const b = new Set(base);
  const h = new Set(head);
  const out = new Set<number>();
  for (const i of b) if (!h.has(i)) out.add(i);
  for (const i of h) if (!b.has(i)) out.add(i);
  for (const i of writtenSince) if (b.has(i) && h.has(i)) out.add(i);
  return [...out].sort((x, y) => x - y);
}

describe('Full, Incremental and Differential chains', () => {
  let em: Em;
  const dir = tempDir();
  let config: string;
  let instanceId: string;
  let volumeIds: string[];
  const files = new Map<string, string>();
  /**
   * Per job: per volume, the snapshot id, its block indices and its content digest, taken when
   * the job ran, so that no test depends on another leaving that snapshot in place.
   */
  const snaps = new Map<string, Map<string, { id: string; blocks: number[]; digest: string }>>();
  /** Per job: per volume, the indices written by the mutation before it. */
  const writes = new Map<string, Map<string, number[]>>();
  /** The backups of j5 (failed mid-stream) and j6 (after it), run once for the tests that read them. */
  let failedJ5: CliResult;
  let afterFailure: CliResult;

  async function backup(job: string, level: string, prevJob?: string, expectCode = 0) {
    const file = join(dir.path, `${job}.tar`);
    const result = await cli(
      [
        'backup',
        `--config=${config}`,
        `--instance=${instanceId}`,
        `--job=${job}`,
        `--level=${level}`,
        ...(prevJob ? [`--prev-job=${prevJob}`] : []),
      ],
      { stdoutFile: file },
    );
    expect(result.code, result.stderr).toBe(expectCode);
    files.set(job, file);
    const state = await em.admin.state();
    const perVolume = new Map<string, { id: string; blocks: number[]; digest: string }>();
    for (const volumeId of volumeIds) {
      const snap = state.snapshots.find(
        (s) => s.VolumeId === volumeId && tagMap(s.Tags)['ec2-bpipe:job'] === job,
      )!;
      const { blocks } = await em.admin.call<{ blocks: number[] }>(
        'GET',
        `snapshots/${snap.SnapshotId}/blocks`,
      );
      const { digest } = await em.admin.snapshotDigest(snap.SnapshotId);
      perVolume.set(volumeId, { id: snap.SnapshotId, blocks, digest });
    }
    snaps.set(job, perVolume);
    return result;
  }

  async function mutate(beforeJob: string, seed: number) {
    const perVolume = new Map<string, number[]>();
    for (const [n, volumeId] of volumeIds.entries()) {
      const current = (await em.admin.call<{ blocks: number[] }>('GET', `volumes/${volumeId}/blocks`)).blocks;
      const result = await em.admin.call<{ written: number[]; unwritten: number[] }>(
        'POST',
        `volumes/${volumeId}/mutate`,
        {
          write: { blocks: 4 + n, seed: seed * 10 + n },
          unwrite: current.slice(seed % 3, (seed % 3) + 2),
        },
      );
      expect(result.unwritten.length).toBeGreaterThan(0);
      perVolume.set(volumeId, result.written);
    }
    writes.set(beforeJob, perVolume);
  }

  const digestOf = async (job: string, volumeId: string) => snaps.get(job)!.get(volumeId)!.digest;

  /** Checks that a restore to AWS printed, per volume, a snapshot of `job` holding that job's data. */
  async function expectAwsHeads(stdout: Buffer, job: string): Promise<void> {
    const lines = stdout.toString().split('\n');
    for (const volumeId of volumeIds) {
      const line = lines.find(
        (l) => l.startsWith('snapshot ') && l.includes(`source=${volumeId} job=${job}`),
      )!;
      expect(line, `${job} ${volumeId}`).toBeDefined();
      expect((await em.admin.snapshotDigest(line.split(' ')[1]!)).digest).toBe(await digestOf(job, volumeId));
    }
  }

  /** Restores the jobs' streams, in order, into a new directory; checks every image holds `head`. */
  async function expectFilesChain(name: string, chain: string[], head: string, extra: string[] = []) {
    const out = join(dir.path, name);
    const result = await cli([
      'restore',
      `--config=${config}`,
      `--to-dir=${out}`,
      ...extra,
      ...chain.map((j) => files.get(j)!),
    ]);
    expect(result.code, result.stderr).toBe(0);
    for (const volumeId of volumeIds) {
      expect((await imageDigest(join(out, instanceId, `${volumeId}.ebs`))).digest).toBe(
        await digestOf(head, volumeId),
      );
    }
    return result;
  }

  beforeAll(async () => {
    em = await emulator();
    ({ instanceId, volumeIds } = await em.admin.instance({
      volumes: [
        { sizeGiB: 2, fill: { blocks: 40, seed: 1 } },
        { sizeGiB: 1, fill: { blocks: 30, seed: 2 } },
      ],
    }));
    config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 20\n', 'chain');
    await backup('j1', 'Full');
    await mutate('j2', 2);
    await backup('j2', 'Incremental', 'j1');
    await mutate('j3', 3);
    await backup('j3', 'incremental', 'j2');
    await mutate('j4', 4);
    await backup('j4', 'Differential', 'j3');
    // j5 fails mid-stream (every block read corrupt); j6 is then based on the last complete job.
    await mutate('j5', 5);
    em.options.corruptRate = 1;
    failedJ5 = await backup('j5', 'Incremental', 'j4', 1);
    em.options.corruptRate = 0;
    await mutate('j6', 6);
    afterFailure = await backup('j6', 'Incremental', 'j5');
  });
  afterAll(async () => {
    await em.close();
    dir.cleanup();
  });

  it('each stream holds exactly the changed blocks, with removed blocks as explicit zeros', async () => {
    for (const [job, base, level] of [
      ['j2', 'j1', 'Incremental'],
      ['j3', 'j2', 'Incremental'],
      ['j4', 'j1', 'Differential'],
    ] as const) {
      const stream = await content(files.get(job)!);
      expect(stream.manifest).toMatchObject({ level, requestedLevel: level, baseJob: base });
      const since = job === 'j4' ? ['j2', 'j3', 'j4'] : [job];
      for (const volumeId of volumeIds) {
        const written = since.flatMap((j) => writes.get(j)!.get(volumeId)!);
        const baseBlocks = snaps.get(base)!.get(volumeId)!.blocks;
        const headBlocks = snaps.get(job)!.get(volumeId)!.blocks;
        expect(stream.blocks.get(volumeId), `${job} ${volumeId}`).toEqual(
          expectedChanges(baseBlocks, headBlocks, written),
        );
        const removed = baseBlocks.filter((i) => !headBlocks.includes(i));
        expect(removed.length).toBeGreaterThan(0);
        expect(stream.zeros.get(volumeId)).toEqual(removed);
      }
    }
  });

  it('tags each snapshot with its real level and base job', async () => {
    const state = await em.admin.state();
    const tagsOf = (job: string) =>
      tagMap(state.snapshots.find((s) => s.SnapshotId === snaps.get(job)!.get(volumeIds[0]!)!.id)!.Tags);
    expect(tagsOf('j1')).toMatchObject({
      'ec2-bpipe:level': 'Full',
      'ec2-bpipe:base-job': '',
      'ec2-bpipe:state': 'complete',
    });
    expect(tagsOf('j3')).toMatchObject({ 'ec2-bpipe:level': 'Incremental', 'ec2-bpipe:base-job': 'j2' });
    expect(tagsOf('j4')).toMatchObject({ 'ec2-bpipe:level': 'Differential', 'ec2-bpipe:base-job': 'j1' });
  });

  it('refuses a chain whose middle link is missing, naming the job, to files and to AWS', async () => {
    const out = join(dir.path, 'gap');
    const files_ = await cli([
      'restore',
      `--config=${config}`,
      `--to-dir=${out}`,
      files.get('j1')!,
      files.get('j3')!,
    ]);
    expect(files_.code).toBe(1);
    expect(files_.stderr).toMatch(
      /job j3 \(Incremental\) is based on job j2 of \d{4}-\d\d-\d\dT.*holds job j1\. Restore job j2/,
    );
    const before = (await em.admin.state()).snapshots.length;
    const aws = await cli([
      'restore',
      '--from-snapshots=never',
      `--config=${config}`,
      '--no-launch',
      '--region=eu-west-1',
      files.get('j1')!,
      files.get('j3')!,
    ]);
    expect(aws.code).toBe(1);
    expect(aws.stderr).toMatch(
      /job j3 \(Incremental\) is based on job j2 of .* which has not been restored to eu-west-1/,
    );
    // j1 was restored (2 snapshots); nothing was started for j3.
    expect((await em.admin.state()).snapshots.length).toBe(before + 2);
  });

  it('restores Full+Inc+Inc and Full+Diff to files with the digests of their heads', async () => {
    await expectFilesChain('files-a', ['j1', 'j2', 'j3'], 'j3');
    const b = join(dir.path, 'files-b');
    for (const job of ['j1', 'j4']) {
      const step = await cli(['restore', `--config=${config}`, `--to-dir=${b}`, files.get(job)!]);
      expect(step.code, step.stderr).toBe(0);
    }
    for (const volumeId of volumeIds) {
      expect((await imageDigest(join(b, instanceId, `${volumeId}.ebs`))).digest).toBe(
        await digestOf('j4', volumeId),
      );
    }
  });

  it('restores Full+Inc+Inc and Full+Diff to AWS, as snapshot chains, with one instance from the head', async () => {
    const chain = await cli([
      'restore',
      '--from-snapshots=never',
      `--config=${config}`,
      files.get('j1')!,
      files.get('j2')!,
      files.get('j3')!,
    ]);
    expect(chain.code, chain.stderr).toBe(0);
    const lines = chain.stdout.toString().trim().split('\n');
    const state = await em.admin.state();
    for (const volumeId of volumeIds) {
      const head = lines
        .find((l) => l.startsWith('snapshot ') && l.includes(`source=${volumeId} job=j3`))!
        .split(' ')[1]!;
      expect((await em.admin.snapshotDigest(head)).digest).toBe(await digestOf('j3', volumeId));
      const parent = state.snapshots.find((s) => s.SnapshotId === head)!.ParentSnapshotId;
      expect(tagMap(state.snapshots.find((s) => s.SnapshotId === parent)!.Tags)['ec2-bpipe:source-job']).toBe(
        'j2',
      );
    }
    const instances = lines.filter((l) => l.startsWith('instance '));
    expect(instances).toHaveLength(1);
    const launched = state.instances.find((i) => i.InstanceId === instances[0]!.split(' ')[1])!;
    for (const [n, mapping] of launched.BlockDeviceMappings.entries()) {
      expect((await em.admin.volumeDigest(mapping.Ebs.VolumeId)).digest).toBe(
        await digestOf('j3', volumeIds[n]!),
      );
    }
    // A Differential restores on the Full, in a separate writer process as Bacula runs them.
    const diff = await cli([
      'restore',
      '--from-snapshots=never',
      `--config=${config}`,
      '--no-launch',
      files.get('j4')!,
    ]);
    expect(diff.code, diff.stderr).toBe(0);
    await expectAwsHeads(diff.stdout, 'j4');
  });

  it('after a failed link, the next Incremental is based on the last complete one and restores correctly', async () => {
    expect(failedJ5.stderr).toMatch(/could not be read and verified/);
    expect(afterFailure.stderr).toMatch(/Incremental based on job j4/);
    const stream = await content(files.get('j6')!);
    expect(stream.manifest.baseJob).toBe('j4');

    const broken = await cli([
      'restore',
      `--config=${config}`,
      `--to-dir=${join(dir.path, 'files-c')}`,
      files.get('j5')!,
    ]);
    expect(broken.code).toBe(1);
    // As Bacula's data writers run it: the cut-short link is skipped with a warning, the chain restores.
    const withSkip = await expectFilesChain('files-skip', ['j1', 'j4', 'j5', 'j6'], 'j6', [
      '--skip-incomplete',
    ]);
    expect(withSkip.stderr).toMatch(/j5\.tar: the stream is (truncated|incomplete).*skipped/);
    // Skipping never hides a link that is needed: an empty stream in its place, and the next link is refused.
    const empty = join(dir.path, 'empty.tar');
    writeFileSync(empty, '');
    const needed = await cli([
      'restore',
      `--config=${config}`,
      `--to-dir=${join(dir.path, 'files-gap')}`,
      '--skip-incomplete',
      files.get('j1')!,
      empty,
      files.get('j3')!,
    ]);
    expect(needed.code).toBe(1);
    expect(needed.stderr).toMatch(/empty\.tar: the stream is incomplete: it is empty; skipped/);
    expect(needed.stderr).toMatch(/job j3 \(Incremental\) is based on job j2/);
    await expectFilesChain('files-c', ['j1', 'j4', 'j6'], 'j6');
    // A Region of its own, so that no other test's restore (or its absence) decides this one.
    const aws = await cli([
      'restore',
      '--from-snapshots=never',
      `--config=${config}`,
      '--no-launch',
      '--region=eu-central-1',
      files.get('j1')!,
      files.get('j4')!,
      files.get('j6')!,
    ]);
    expect(aws.code, aws.stderr).toBe(0);
    await expectAwsHeads(aws.stdout, 'j6');
  });

  it('bases an Incremental on the newest complete stream, and says so, when %S names a job that left no snapshot', async () => {
    const ec2 = new EC2Client(sdkConfig(em));
    for (const volumeId of volumeIds)
      await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snaps.get('j6')!.get(volumeId)!.id }));
    ec2.destroy();
    const result = await backup('j7', 'Incremental', 'j6');
    const said = /job j6 left no snapshot .*; the newest complete stream is job (j\d)/.exec(result.stderr);
    expect(said, result.stderr).not.toBeNull();
    // j5 failed mid-stream and j6 is gone: j4 is the newest complete job.
    expect(said![1]).toBe('j4');
    const stream = await content(files.get('j7')!);
    expect(stream.manifest).toMatchObject({
      level: 'Incremental',
      requestedLevel: 'Incremental',
      baseJob: 'j4',
    });
  });
});

describe('retention', () => {
  it('keeps exactly what docs/DESIGN.md §4 says across six jobs, and only touches its own snapshots', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 6, seed: 1 } });
      const config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 2\n', 'ret');
      const ec2 = new EC2Client(sdkConfig(em));
      const foreign = (await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }))).SnapshotId!;
      const other = (await ec2.send(new CreateSnapshotCommand({ VolumeId: volumeId }))).SnapshotId!;
      await ec2.send(
        new CreateTagsCommand({
          Resources: [other],
          Tags: [
            { Key: 'ec2-bpipe:config', Value: 'another' },
            { Key: 'ec2-bpipe:volume', Value: volumeId },
            { Key: 'ec2-bpipe:job', Value: 'x' },
            { Key: 'ec2-bpipe:state', Value: 'complete' },
          ],
        }),
      );
      ec2.destroy();
      const jobs: [string, string, string?][] = [
        ['F1', 'Full'],
        ['I2', 'Incremental', 'F1'],
        ['I3', 'Incremental', 'I2'],
        ['D4', 'Differential', 'I3'],
        ['I5', 'Incremental', 'D4'],
        ['F6', 'Full'],
      ];
      const expected = [
        ['F1'],
        ['I2', 'F1'],
        ['I3', 'I2', 'F1'],
        ['D4', 'I3', 'F1'],
        ['I5', 'D4', 'F1'],
        ['F6', 'I5'],
      ];
      for (const [n, [job, level, prev]] of jobs.entries()) {
        await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 1, seed: n + 10 } });
        const result = await cli(
          [
            'backup',
            `--config=${config}`,
            `--volume=${volumeId}`,
            `--job=${job}`,
            `--level=${level}`,
            ...(prev ? [`--prev-job=${prev}`] : []),
          ],
          { stdoutFile: join(dir.path, `${job}.tar`) },
        );
        expect(result.code, result.stderr).toBe(0);
        const state = await em.admin.state();
        const ours = state.snapshots
          .filter((s) => tagMap(s.Tags)['ec2-bpipe:config'] === 'ret')
          .map((s) => tagMap(s.Tags)['ec2-bpipe:job']);
        expect(ours.sort(), `after ${job}`).toEqual([...expected[n]!].sort());
        expect(state.snapshots.some((s) => s.SnapshotId === foreign)).toBe(true);
        expect(state.snapshots.some((s) => s.SnapshotId === other)).toBe(true);
        if (job === 'D4') expect(result.stderr).toMatch(/Differential based on job F1/);
      }
    });
  });
});

describe('the cost of an Incremental', () => {
  it('reads 10 blocks after 10 of 20,000 blocks changed, and lists the changes in one pass', async () => {
    // Each ListChangedBlocks page scans 4,096 block indices, as AWS's pages scan a fixed span and
    // come back mostly empty for a small change: one pass over 16 GiB (32,768 blocks) is 8 pages.
    await withEmulator({ changedBlocksWindow: 4096 }, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 16, fill: { blocks: 20_000, seed: 3 } });
      const config = writeConfig(dir.path, em, '', 'cost');
      // A complete Full of this config, made the way backup tags it (streaming it would cost 10 GiB here).
      const ec2 = new EC2Client(sdkConfig(em));
      const base = (
        await ec2.send(
          new CreateSnapshotCommand({
            VolumeId: volumeId,
            TagSpecifications: [
              {
                ResourceType: 'snapshot',
                Tags: [
                  { Key: 'ec2-bpipe:config', Value: 'cost' },
                  { Key: 'ec2-bpipe:job', Value: 'full-1' },
                  { Key: 'ec2-bpipe:level', Value: 'Full' },
                  { Key: 'ec2-bpipe:volume', Value: volumeId },
                  { Key: 'ec2-bpipe:state', Value: 'complete' },
                ],
              },
            ],
          }),
        )
      ).SnapshotId!;
      ec2.destroy();
      await em.admin.advance(em.options.pendingMs);
      await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 10, seed: 99 } });
      await em.admin.call('POST', 'requests/reset');
      const file = join(dir.path, 'inc.tar');
      const result = await cli(
        [
          'backup',
          `--config=${config}`,
          `--volume=${volumeId}`,
          '--job=inc-1',
          '--level=Incremental',
          '--prev-job=full-1',
        ],
        {
          stdoutFile: file,
        },
      );
      expect(result.code, result.stderr).toBe(0);
      const requests = await em.admin.requests();
      expect(requests['ebs:GetSnapshotBlock']).toBe(10);
      expect(requests['ebs:ListChangedBlocks']).toBe(8);
      const stream = await content(file);
      expect(stream.manifest.baseJob).toBe('full-1');
      expect(stream.blocks.get(volumeId)).toHaveLength(10);
      void base;
    });
  });
});

describe('the finalizer (restore.json)', () => {
  it('records the chain head, launches from it once applied, and refuses before', async () => {
    await withEmulator({}, async (em, dir) => {
      const { instanceId, volumeIds } = await em.admin.instance({
        volumes: [{ sizeGiB: 1, fill: { blocks: 9, seed: 7 } }],
      });
      const config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 5\n', 'fin');
      const run = async (job: string, level: string, prev?: string, finalizer = false) => {
        const file = join(dir.path, finalizer ? `${job}-restore.json` : `${job}.tar`);
        const result = await cli(
          [
            'backup',
            `--config=${config}`,
            `--instance=${instanceId}`,
            `--job=${job}`,
            `--level=${level}`,
            ...(prev ? [`--prev-job=${prev}`] : []),
            ...(finalizer ? ['--finalizer'] : []),
          ],
          { stdoutFile: file },
        );
        return { result, file };
      };
      const f1 = await run('f1', 'Full');
      expect(f1.result.code).toBe(0);
      await em.admin.call('POST', `volumes/${volumeIds[0]}/mutate`, { write: { blocks: 3, seed: 8 } });
      const f2 = await run('f2', 'Incremental', 'f1');
      expect(f2.result.code).toBe(0);
      const fin2 = await run('f2', 'Incremental', 'f1', true);
      expect(fin2.result.code, fin2.result.stderr).toBe(0);
      const json = JSON.parse(readFileSync(fin2.file, 'utf8'));
      const state = await em.admin.state();
      const head = state.snapshots.find((s) => tagMap(s.Tags)['ec2-bpipe:job'] === 'f2')!;
      expect(json).toMatchObject({
        format: 'ec2-bpipe-finalizer',
        job: 'f2',
        head: 'f2',
        headLevel: 'Incremental',
        kind: 'instance',
        resourceId: instanceId,
      });
      expect(json.volumes.map((v: { snapshotId: string }) => v.snapshotId)).toEqual([head.SnapshotId]);
      expect(json.instance.instanceId).toBe(instanceId);

      // Before the chain is applied: a clear refusal, to AWS and to files.
      const early = await cli(['restore', '--from-snapshots=never', `--config=${config}`, fin2.file]);
      expect(early.code).toBe(1);
      expect(early.stderr).toMatch(
        /the streams of job f2, the head of i-[0-9a-f]+, were not all applied to us-east-1 \(missing vol-/,
      );
      const filesDir = join(dir.path, 'files');
      expect((await cli(['restore', `--config=${config}`, `--to-dir=${filesDir}`, f1.file])).code).toBe(0);
      const half = await cli(['restore', `--config=${config}`, `--to-dir=${filesDir}`], {
        stdin: readFileSync(fin2.file),
      });
      expect(half.code).toBe(1);
      expect(half.stderr).toMatch(/do not hold job f2, the head of the chain \(vol-[0-9a-f]+ holds f1\)/);
      expect((await cli(['restore', `--config=${config}`, `--to-dir=${filesDir}`, f2.file])).code).toBe(0);
      const closed = await cli(['restore', `--config=${config}`, `--to-dir=${filesDir}`], {
        stdin: readFileSync(fin2.file),
      });
      expect(closed.code, closed.stderr).toBe(0);

      // As Bacula runs them: one writer per file, data with --no-launch, the finalizer last.
      for (const file of [f1.file, f2.file]) {
        const step = await cli(['restore', '--from-snapshots=never', `--config=${config}`, '--no-launch'], {
          stdin: readFileSync(file),
        });
        expect(step.code, step.stderr).toBe(0);
        expect(step.stdout.toString()).not.toMatch(/^instance /m);
      }
      const launched = await cli(['restore', '--from-snapshots=never', `--config=${config}`], {
        stdin: readFileSync(fin2.file),
      });
      expect(launched.code, launched.stderr).toBe(0);
      const instanceLine = launched.stdout
        .toString()
        .split('\n')
        .find((l) => l.startsWith('instance '))!;
      const instance = (await em.admin.state()).instances.find(
        (i) => i.InstanceId === instanceLine.split(' ')[1],
      )!;
      const digest = (await em.admin.snapshotDigest(head.SnapshotId)).digest;
      expect((await em.admin.volumeDigest(instance.BlockDeviceMappings[0].Ebs.VolumeId)).digest).toBe(digest);

      // A job whose data stream failed: its finalizer points at the last complete head.
      await em.admin.call('POST', `volumes/${volumeIds[0]}/mutate`, { write: { blocks: 2, seed: 9 } });
      em.options.corruptRate = 1;
      expect((await run('f3', 'Incremental', 'f2')).result.code).toBe(1);
      em.options.corruptRate = 0;
      const fin3 = await run('f3', 'Incremental', 'f2', true);
      expect(fin3.result.code).toBe(0);
      expect(fin3.result.stderr).toMatch(/job f3's own stream is not complete; the head is f2/);
      expect(JSON.parse(readFileSync(fin3.file, 'utf8')).head).toBe('f2');
    });
  });
});

describe('retention failures', () => {
  it('warn without failing a backup whose stream is complete', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 2, seed: 4 } });
      const config = writeConfig(dir.path, em, '', 'retfail');
      const run = (job: string) =>
        cli(['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${job}`], {
          stdoutFile: join(dir.path, `${job}.tar`),
        });
      expect((await run('a')).code).toBe(0);
      await em.admin.call('POST', 'fail', {
        action: 'DeleteSnapshot',
        code: 'UnauthorizedOperation',
        message: 'not allowed',
        count: 1,
      });
      const second = await run('b');
      expect(second.code).toBe(0);
      expect(second.stderr).toMatch(
        /warn: retention for vol-[0-9a-f]+ failed \(UnauthorizedOperation: not allowed\); older snapshots are kept/,
      );
      const states = (await em.admin.state()).snapshots.map((s) => tagMap(s.Tags)['ec2-bpipe:state']);
      expect(states).toEqual(['complete', 'complete']);
    });
  });
});

describe('levels by hand, without Bacula', () => {
  it('an Incremental without --prev-job is based on the newest complete snapshot, a Differential on the newest Full', async () => {
    await withEmulator({}, async (em, dir) => {
      const { volumeId } = await em.admin.volume({ sizeGiB: 1, fill: { blocks: 5, seed: 6 } });
      const config = writeConfig(dir.path, em, '[backup]\nkeep-snapshots = 5\n', 'cron');
      const run = async (job: string, level: string) => {
        const file = join(dir.path, `${job}.tar`);
        const result = await cli(
          ['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=${job}`, `--level=${level}`],
          {
            stdoutFile: file,
          },
        );
        expect(result.code, result.stderr).toBe(0);
        return (await content(file)).manifest;
      };
      expect(await run('c1', 'Full')).toMatchObject({ level: 'Full', baseJob: null });
      await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 1, seed: 61 } });
      expect(await run('c2', 'Incremental')).toMatchObject({ level: 'Incremental', baseJob: 'c1' });
      await em.admin.call('POST', `volumes/${volumeId}/mutate`, { write: { blocks: 1, seed: 62 } });
      expect(await run('c3', 'Incremental')).toMatchObject({ level: 'Incremental', baseJob: 'c2' });
      expect(await run('c4', 'Differential')).toMatchObject({ level: 'Differential', baseJob: 'c1' });
    });
  });
});
