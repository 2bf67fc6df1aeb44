import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, emulator, imageDigest, tempDir, writeConfig } from '../../helpers.js';
import { Bacula, baculaAvailable } from './harness.js';

type Em = Awaited<ReturnType<typeof emulator>>;

const available = baculaAvailable();
if (!available) {
  process.stderr.write(
    '\nSKIPPED: the Bacula end-to-end test needs bacula-director, bacula-director-sqlite3, bacula-sd, bacula-fd and ' +
      'bacula-console (apt-get install them; .ci/run does).\n\n',
  );
}

/**
 * The File Daemon's messages of one job in a Bacula log, each with its continuation lines: a
 * message starts with the date and `backup-host-fd JobId N: `, which is cut off here.
 */
function fdMessages(log: string, jobId: number): string[] {
  const messages = log.split(/\n(?=\d\d-\w{3} \d\d:\d\d )/);
  const head = new RegExp(`^\\d\\d-\\w{3} \\d\\d:\\d\\d backup-host-fd JobId ${jobId}: `);
  return messages.filter((m) => head.test(m)).map((m) => m.replace(head, '').replace(/\n+$/, ''));
}

const tagMap = (tags: { Key: string; Value: string }[] = []) =>
  Object.fromEntries(tags.map((t) => [t.Key, t.Value]));

describe.skipIf(!available)(
  'a real Bacula: generator, reader, writer, %w, restore order and finalizer',
  () => {
    let em: Em;
    let bacula: Bacula;
    const dir = tempDir('ec2-bpipe-bacula-');
    let instanceId: string;
    let volumeIds: string[];
    const jobs: { name: string; jobId: number; complete: boolean }[] = [];
    /** The chain's first two jobs, run in beforeAll: every test may read them, in any order. */
    let full: { jobId: number; termination: string; name: string };
    let inc: { jobId: number; termination: string; name: string };
    /** The newest job whose stream is complete: the head a restore of "select current all" gives. */
    const head = (): string => jobs.filter((j) => j.complete).at(-1)?.name ?? '';

    beforeAll(async () => {
      em = await emulator();
      ({ instanceId, volumeIds } = await em.admin.instance({
        tags: { Backup: 'bacula', Name: 'web-1' },
        volumes: [
          { sizeGiB: 1, fill: { blocks: 20, seed: 1 } },
          { sizeGiB: 2, fill: { blocks: 12, seed: 2 } },
        ],
      }));
      // The ec2-bpipe config as examples/ec2-bpipe.ini shapes it, named web.ini as in the examples.
      const config = writeConfig(
        dir.path,
        em,
        `[backup]\ninstance-ids = ${instanceId}\nkeep-snapshots = 10\n[bacula]\nstate-dir = ${dir.path}/state\nlog-file = ${dir.path}/list.log\n`,
        'web',
      );
      bacula = new Bacula({ work: join(dir.path, 'bacula'), program: BIN, configFile: config });
      await bacula.start();
      const label = await bacula.bconsole(['label storage=File1 volume=Vol-0001 pool=File']);
      expect(label).toMatch(/3000 OK label\. .*Volume="Vol-0001"/);
      full = await backup('Full');
      await mutate(11);
      inc = await backup('Incremental');
    }, 240_000);

    afterAll(async () => {
      await bacula?.stop();
      // The job log outlives the run, for whoever has to read why a job failed.
      if (bacula && existsSync(bacula.log))
        copyFileSync(bacula.log, join(tmpdir(), 'ec2-bpipe-bacula-e2e.log'));
      await em?.close();
      dir.cleanup();
    });

    async function backup(level: string): Promise<{ jobId: number; termination: string; name: string }> {
      const { jobId, termination, output } = await bacula.run(`run job=ec2-web level=${level} yes`);
      const name =
        /Job:\s+(ec2-web\.[\w.-]+)/.exec(
          readFileSync(bacula.log, 'utf8')
            .split(/JobId:\s+/)
            .find((b) => b.startsWith(`${jobId}\n`)) ?? '',
        )?.[1] ?? '';
      jobs.push({ name, jobId, complete: termination === 'Backup OK' });
      void output;
      return { jobId, termination, name };
    }

    /**
     * The restore the README gives: all files of the most recent backup, i.e. the whole chain,
     * with the example's restore job for files, or its explicit job for AWS.
     */
    function restoreCommand(where: string): string {
      const job = where === '/' ? 'ec2-web-restore-to-aws' : 'ec2-web-restore';
      return `restore client=backup-host-fd fileset=ec2-web restorejob=${job} where=${where} select current all done yes`;
    }

    async function mutate(seed: number): Promise<void> {
      for (const volumeId of volumeIds) {
        await em.admin.call('POST', `volumes/${volumeId}/mutate`, {
          write: { blocks: 3, seed },
          unwrite: [],
        });
      }
    }

    async function sourceDigests(job: string): Promise<string[]> {
      const state = await em.admin.state();
      return Promise.all(
        volumeIds.map(async (volumeId) => {
          const snap = state.snapshots.find(
            (s) => s.VolumeId === volumeId && tagMap(s.Tags)['ec2-bpipe:job'] === job,
          )!;
          return (await em.admin.snapshotDigest(snap.SnapshotId)).digest;
        }),
      );
    }

    /**
     * The digests of the one instance a restore launched, which is then terminated: a restore of
     * the same head with the same settings finds a running instance it launched and launches none
     * (docs/DESIGN.md §5), so each test's restore must find none left by another's.
     */
    async function restoredInstanceDigests(before: Set<string>): Promise<string[]> {
      const state = await em.admin.state();
      const created = state.instances.filter((i) => !before.has(i.InstanceId));
      expect(created).toHaveLength(1);
      expect(tagMap(created[0]!.Tags)['ec2-bpipe:source']).toBe(instanceId);
      const digests = await Promise.all(
        created[0]!.BlockDeviceMappings.map(
          async (m: { Ebs: { VolumeId: string } }) => (await em.admin.volumeDigest(m.Ebs.VolumeId)).digest,
        ),
      );
      await em.admin.call('POST', `instances/${created[0]!.InstanceId as string}/terminate`, {});
      return digests;
    }

    it('runs Full and Incremental jobs: "Backup OK", each a complete stream in the catalog', async () => {
      expect(full.termination).toBe('Backup OK');
      expect(inc.termination).toBe('Backup OK');
      const state = await em.admin.state();
      const incSnapshots = state.snapshots.filter((s) => tagMap(s.Tags)['ec2-bpipe:job'] === inc.name);
      expect(incSnapshots).toHaveLength(2);
      for (const s of incSnapshots) {
        expect(tagMap(s.Tags)).toMatchObject({
          'ec2-bpipe:level': 'Incremental',
          'ec2-bpipe:base-job': full.name,
          'ec2-bpipe:state': 'complete',
        });
      }
      const files = await bacula.bconsole([`list files jobid=${inc.jobId}`]);
      expect(files).toContain(`/@ec2-bpipe/web/us-east-1/${instanceId}/${inc.name}.tar`);
      expect(files).toContain(`/@ec2-bpipe/web/us-east-1/${instanceId}/restore.json`);
    });

    it('restores the chain with where=/ to a new instance in AWS ("Restore OK", digests equal)', async () => {
      const before = new Set((await em.admin.state()).instances.map((i) => i.InstanceId as string));
      const restore = await bacula.run(restoreCommand('/'));
      expect(restore.termination).toBe('Restore OK');
      expect(await restoredInstanceDigests(before)).toEqual(await sourceDigests(head()));
    });

    it('restores the chain with where=<dir> to raw images under the catalog path ("Restore OK", digests equal)', async () => {
      const where = join(dir.path, 'restores-1');
      const restore = await bacula.run(restoreCommand(where));
      expect(restore.termination).toBe('Restore OK');
      const images = volumeIds.map((v) =>
        join(where, '@ec2-bpipe', 'web', 'us-east-1', instanceId, `${v}.ebs`),
      );
      const digests = await Promise.all(images.map(async (i) => (await imageDigest(i)).digest));
      expect(digests).toEqual(await sourceDigests(head()));
    });

    it('a job whose reader fails ends "OK -- with warnings"; the next Incremental still restores the right data', async () => {
      const lastComplete = head();
      await mutate(12);
      em.options.corruptRate = 1;
      const failed = await backup('Incremental');
      em.options.corruptRate = 0;
      expect(failed.termination).toBe('Backup OK -- with warnings');
      // Every line the reader wrote is a job message of its own, prefixed with the catalog path,
      // and the cause (the block that never verified) is one of them: bpipe prefixes only the
      // first line of what it reads at once, so merged lines would lose it.
      const readerLines = fdMessages(readFileSync(bacula.log, 'utf8'), failed.jobId);
      const dataPath = `/@ec2-bpipe/web/us-east-1/${instanceId}/${failed.name}.tar`;
      expect(readerLines.length).toBeGreaterThan(2);
      for (const message of readerLines) expect(message).not.toContain('\n');
      expect(readerLines).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^${dataPath}: error: block \\d+ of snapshot snap-\\w+ could not be read and verified \\(ChecksumMismatch`,
          ),
        ),
      );
      await mutate(13);
      const next = await backup('Incremental');
      expect(next.termination).toBe('Backup OK');
      const state = await em.admin.state();
      const nextSnap = state.snapshots.find((s) => tagMap(s.Tags)['ec2-bpipe:job'] === next.name)!;
      // %S named the failed job; its stream never completed, so the base is the last complete one.
      expect(tagMap(nextSnap.Tags)['ec2-bpipe:base-job']).toBe(lastComplete);

      const where = join(dir.path, 'restores-2');
      const files = await bacula.run(restoreCommand(where));
      // The failed link's writer refuses its truncated stream; every other file restores.
      expect(files.termination).toBe('Restore OK');
      const log = readFileSync(bacula.log, 'utf8');
      expect(log).toMatch(
        new RegExp(
          `${failed.name}\\.tar: .*the stream is truncated.*skipped: a failed backup leaves its stream incomplete`,
        ),
      );
      const images = volumeIds.map((v) =>
        join(where, '@ec2-bpipe', 'web', 'us-east-1', instanceId, `${v}.ebs`),
      );
      const digests = await Promise.all(images.map(async (i) => (await imageDigest(i)).digest));
      expect(digests).toEqual(await sourceDigests(next.name));

      const before = new Set((await em.admin.state()).instances.map((i) => i.InstanceId as string));
      const aws = await bacula.run(restoreCommand('/'));
      expect(aws.termination).toBe('Restore OK');
      expect(await restoredInstanceDigests(before)).toEqual(await sourceDigests(next.name));
    });
  },
);
