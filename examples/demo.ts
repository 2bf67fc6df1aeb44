/**
 * `npm run demo`: the whole mission, end to end, on the embedded emulator, with the real command.
 * Seeds an instance with three volumes (one a sparse 8 GiB volume), takes a Full, changes the
 * volumes and takes an Incremental, changes them again, estimates the next Incremental and takes
 * it, verifies the chain, restores it to files and to a new instance, and compares every digest
 * with the snapshots it came from.
 *
 * On a terminal the backups and the restore to AWS run under a pseudo-terminal (`script`), so the
 * live progress display shows; elsewhere they log their usual lines.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admin, type AdminRecord } from '../emulator/client.js';
import { startEmulator } from '../emulator/server.js';
import { readStream } from '../src/stream/reader.js';
import { BIN, cli, imageDigest } from '../test/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'ec2-bpipe-demo-'));
const say = (line: string) => process.stdout.write(`${line}\n`);
const live = process.stderr.isTTY && spawnSync('script', ['--version']).status === 0;
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Runs the real command; the emulator lives in this process, so the child must not block it.
 * With `live`, under `script`, so its stderr is a terminal and it draws its progress display.
 */
async function run(args: string[], stdoutFile?: string): Promise<string> {
  if (live) {
    const line =
      [process.execPath, BIN, ...args].map(quote).join(' ') + (stdoutFile ? ` > ${quote(stdoutFile)}` : '');
    const result = await cli(['-qec', `stty cols 100 rows 30; ${line}`, '/dev/null'], { command: 'script' });
    process.stderr.write(result.stdout);
    if (result.code !== 0) throw new Error(`ec2-bpipe ${args[0]} exited ${result.code}`);
    return result.stdout.toString();
  }
  const result = await cli(args, stdoutFile ? { stdoutFile } : {});
  process.stderr.write(result.stderr);
  if (!stdoutFile) process.stdout.write(result.stdout);
  if (result.code !== 0) throw new Error(`ec2-bpipe ${args[0]} exited ${result.code}`);
  return result.stdout.toString() + result.stderr;
}

/** The blocks each volume's sparse map names in a stream: a digest reads those, not the holes. */
async function writtenBlocks(tarFile: string, into: Map<string, Set<number>>): Promise<void> {
  await readStream(createReadStream(tarFile), tarFile, {
    block: (meta, index) => {
      const set = into.get(meta.volumeId) ?? new Set<number>();
      set.add(index);
      into.set(meta.volumeId, set);
    },
  });
}

const tagOf = (r: AdminRecord, key: string): string | undefined =>
  (r.Tags as { Key: string; Value: string }[] | undefined)?.find((t) => t.Key === key)?.Value;

const emulator = await startEmulator({ pendingMs: 300 });
try {
  const admin = new Admin(emulator.url);

  say(`emulator: EC2, EBS direct, STS and KMS on ${emulator.url}`);
  const { instanceId, volumeIds } = await admin.instance({
    region: 'us-east-1',
    instanceType: 'm5.large',
    tags: { Name: 'demo-web', Env: 'demo' },
    userData: Buffer.from('#!/bin/sh\necho hello\n').toString('base64'),
    volumes: [
      { device: '/dev/xvda', sizeGiB: 2, fill: { blocks: 400, seed: 1 } },
      { device: '/dev/sdf', sizeGiB: 8, fill: { blocks: 6, seed: 2 } },
      { device: '/dev/sdg', sizeGiB: 1, fill: { blocks: 120, seed: 3 }, volumeType: 'gp3', throughput: 250 },
    ],
  });
  say(`seeded ${instanceId} with ${volumeIds.join(', ')} (the second is a sparse 8 GiB volume)`);

  const config = join(work, 'demo.ini');
  writeFileSync(
    config,
    `[aws]\nregion = us-east-1\nendpoint-url = ${emulator.url}\naccess-key-id = AKIAEMULATORTESTKEY1\n` +
      `secret-access-key = emulator-secret-access-key\n\n[backup]\nworkers = 8\nkeep-snapshots = 3\n\n` +
      `[bacula]\nstate-dir = ${join(work, 'state')}\n`,
  );
  chmodSync(config, 0o600);
  const common = [`--config=${config}`, `--instance=${instanceId}`];

  const fullTar = join(work, 'demo-full.tar');
  say(`\n$ ec2-bpipe backup --config=demo.ini --instance=${instanceId} --job=demo-full > demo-full.tar`);
  const t0 = Date.now();
  await run(['backup', ...common, '--job=demo-full', '--level=Full'], fullTar);
  say(`backup took ${((Date.now() - t0) / 1000).toFixed(1)}s`);

  say('\n$ tar -tvf demo-full.tar');
  say(execFileSync('tar', ['-tvf', fullTar]).toString().trimEnd());

  /** A day of writes: new blocks on every volume, a few blocks of the root volume trimmed. */
  async function aDayOfWrites(day: number): Promise<void> {
    let changed = 0;
    for (const [n, volumeId] of volumeIds.entries()) {
      const current = (await admin.call<{ blocks: number[] }>('GET', `volumes/${volumeId}/blocks`)).blocks;
      const result = await admin.call<{ written: number[] }>('POST', `volumes/${volumeId}/mutate`, {
        write: { blocks: 20 + 10 * n, seed: 100 * day + n },
        ...(n === 0 && { unwrite: current.slice(day, day + 3) }),
      });
      changed += result.written.length + (n === 0 ? 3 : 0);
    }
    say(`\nday ${day}: the volumes changed, about ${changed} blocks written or trimmed`);
  }

  /** An Incremental on `prev`; returns its stream file. */
  async function incremental(job: string, prev: string): Promise<string> {
    const tar = join(work, `${job}.tar`);
    say(
      `\n$ ec2-bpipe backup --config=demo.ini --instance=${instanceId} --job=${job} --level=Incremental --prev-job=${prev} > ${job}.tar`,
    );
    const started = Date.now();
    await run(['backup', ...common, `--job=${job}`, '--level=Incremental', `--prev-job=${prev}`], tar);
    say(`backup took ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return tar;
  }

  await aDayOfWrites(1);
  const inc1Tar = await incremental('demo-inc1', 'demo-full');
  await aDayOfWrites(2);

  // The next Incremental is predicted from the change between the complete jobs so far.
  say(
    `\n$ ec2-bpipe estimate --config=demo.ini --instance=${instanceId} --level=Incremental --prev-job=demo-inc1`,
  );
  await run(['estimate', ...common, '--level=Incremental', '--prev-job=demo-inc1']);
  const inc2Tar = await incremental('demo-inc2', 'demo-inc1');
  const inc2Blocks = new Map<string, Set<number>>();
  await writtenBlocks(inc2Tar, inc2Blocks);
  const streamed = [...inc2Blocks.values()].reduce((n, set) => n + set.size, 0);
  say(`the Incremental streamed ${streamed} blocks (${streamed / 2} MiB), against the estimate above`);
  const chain = [fullTar, inc1Tar, inc2Tar];
  const names = 'demo-full.tar demo-inc1.tar demo-inc2.tar';

  say(`\n$ ec2-bpipe verify ${names}`);
  await run(['verify', ...chain]);

  say('\n$ ec2-bpipe points --config=demo.ini');
  await run(['points', ...common]);

  const restored = join(work, 'restored');
  say(`\n$ ec2-bpipe restore --to-dir=restored ${names}`);
  await run(['restore', `--config=${config}`, `--to-dir=${restored}`, ...chain]);

  say(`\n$ ec2-bpipe restore --config=demo.ini --instance-type=m5.xlarge ${names}`);
  await run(['restore', `--config=${config}`, '--instance-type=m5.xlarge', ...chain]);

  say('\nsummary: the last Incremental snapshots (emulator) against what the restores made');
  const state = await admin.state();
  const written = new Map<string, Set<number>>();
  for (const tar of chain) await writtenBlocks(tar, written);
  const newInstance = state.instances.find((i) => i.InstanceId !== instanceId);
  const source = state.instances.find((i) => i.InstanceId === instanceId);
  let allMatch = newInstance !== undefined && source !== undefined;
  for (const volumeId of volumeIds) {
    const snapshot = state.snapshots.find(
      (s) => s.VolumeId === volumeId && tagOf(s, 'ec2-bpipe:job') === 'demo-inc2',
    ) as { SnapshotId: string };
    const expected = await admin.snapshotDigest(snapshot.SnapshotId);
    // The digest takes blocks in index order; the streams' blocks are merged.
    const blocks = [...(written.get(volumeId) ?? [])].sort((a, b) => a - b);
    const image = await imageDigest(join(restored, instanceId, `${volumeId}.ebs`), blocks);
    type Mapping = { DeviceName?: string; Ebs?: { VolumeId?: string } };
    const mappings = (i: AdminRecord | undefined): Mapping[] => (i?.BlockDeviceMappings ?? []) as Mapping[];
    const device = mappings(source).find((m) => m.Ebs?.VolumeId === volumeId)?.DeviceName;
    const copyId = mappings(newInstance).find((m) => m.DeviceName === device)?.Ebs?.VolumeId;
    const relaunched = copyId === undefined ? undefined : await admin.volumeDigest(copyId);
    const fileMatch = expected.digest === image.digest && expected.blocks === image.blocks;
    const awsMatch = relaunched?.digest === expected.digest;
    allMatch &&= fileMatch && awsMatch;
    say(
      `  ${volumeId} (${device ?? '?'}): ${expected.blocks} blocks, ${expected.digest.slice(0, 16)}…  ` +
        `image file ${fileMatch ? 'matches' : 'DIFFERS'}, ${copyId ?? 'no volume'} of ${newInstance?.InstanceId ?? 'no instance'} ` +
        `(${newInstance?.InstanceType ?? '?'}) ${awsMatch ? 'matches' : 'DIFFERS'}`,
    );
  }
  say(allMatch ? '\nevery digest matched' : '\nDIGESTS DIFFER');
  if (!allMatch) process.exitCode = 1;
} finally {
  await emulator.close();
  rmSync(work, { recursive: true, force: true });
}
