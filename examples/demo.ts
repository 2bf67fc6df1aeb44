/**
 * `npm run demo`: the main job, end to end, on the embedded emulator. Seeds an instance with three
 * volumes (one a sparse 8 GiB volume), backs it up to a tar file with the real command, lists the
 * tar with the system tar, restores it to files, verifies it, and compares digests.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Admin } from '../emulator/client.js';
import { startEmulator } from '../emulator/server.js';
import { readStream } from '../src/stream/reader.js';
import { cli, imageDigest } from '../test/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'ec2-bpipe-demo-'));
const say = (line: string) => process.stdout.write(`${line}\n`);

/** Runs the real command; the emulator lives in this process, so the child must not block it. */
async function run(args: string[], stdoutFile?: string): Promise<void> {
  const result = await cli(args, stdoutFile ? { stdoutFile } : {});
  process.stderr.write(result.stderr);
  if (!stdoutFile) process.stdout.write(result.stdout);
  if (result.code !== 0) throw new Error(`ec2-bpipe ${args[0]} exited ${result.code}`);
}

const emulator = await startEmulator({ pendingMs: 300 });
try {
  const admin = new Admin(emulator.url);

  say(`emulator: EC2, EBS direct and STS on ${emulator.url}`);
  const { instanceId, volumeIds } = await admin.instance({
    region: 'us-east-1',
    instanceType: 'm5.large',
    tags: { Name: 'demo-web', Env: 'demo' },
    userData: Buffer.from('#!/bin/sh\necho hello\n').toString('base64'),
    volumes: [
      { device: '/dev/xvda', sizeGiB: 2, fill: { blocks: 200, seed: 1 } },
      { device: '/dev/sdf', sizeGiB: 8, fill: { blocks: 6, seed: 2 } },
      { device: '/dev/sdg', sizeGiB: 1, fill: { blocks: 60, seed: 3 }, volumeType: 'gp3', throughput: 250 },
    ],
  });
  say(`seeded ${instanceId} with ${volumeIds.join(', ')} (the second is a sparse 8 GiB volume)`);

  const config = join(work, 'demo.ini');
  writeFileSync(
    config,
    `[aws]\nregion = us-east-1\nendpoint-url = ${emulator.url}\naccess-key-id = AKIAEMULATORTESTKEY1\nsecret-access-key = emulator-secret-access-key\n\n[backup]\nworkers = 8\n`,
  );
  chmodSync(config, 0o600);

  const tarFile = join(work, 'demo-full.tar');
  say(`\n$ ec2-bpipe backup --config=demo.ini --instance=${instanceId} --job=demo-full > demo-full.tar`);
  const t0 = Date.now();
  await run(['backup', `--config=${config}`, `--instance=${instanceId}`, '--job=demo-full'], tarFile);
  say(`backup took ${((Date.now() - t0) / 1000).toFixed(1)}s`);

  say('\n$ tar -tvf demo-full.tar');
  say(execFileSync('tar', ['-tvf', tarFile]).toString().trimEnd());

  const restored = join(work, 'restored');
  say(`\n$ ec2-bpipe restore --to-dir=restored demo-full.tar`);
  await run(['restore', `--to-dir=${restored}`, tarFile]);

  say('\n$ ec2-bpipe verify demo-full.tar');
  await run(['verify', tarFile]);

  say('\nsummary: snapshot digest (emulator) vs restored image digest');
  const state = await admin.state();
  // The blocks each volume's sparse map names: the digest reads those, not the holes of 8 GiB.
  const written = new Map<string, number[]>();
  await readStream(createReadStream(tarFile), tarFile, {
    block: (meta, index) => {
      const list = written.get(meta.volumeId) ?? [];
      list.push(index);
      written.set(meta.volumeId, list);
    },
  });
  let allMatch = true;
  for (const volumeId of volumeIds) {
    const snapshot = state.snapshots.find((s) => s.VolumeId === volumeId) as { SnapshotId: string };
    const expected = await admin.snapshotDigest(snapshot.SnapshotId);
    const actual = await imageDigest(
      join(restored, instanceId, `${volumeId}.ebs`),
      written.get(volumeId) ?? [],
    );
    const match = expected.digest === actual.digest && expected.blocks === actual.blocks;
    allMatch &&= match;
    say(
      `  ${volumeId}: ${actual.blocks} blocks, ${actual.digest.slice(0, 16)}… ${match ? 'matches' : 'DIFFERS'}`,
    );
  }
  say(allMatch ? '\nall digests match' : '\nDIGESTS DIFFER');
  if (!allMatch) process.exitCode = 1;
} finally {
  await emulator.close();
  rmSync(work, { recursive: true, force: true });
}
