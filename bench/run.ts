/**
 * `npm run bench -- [--blocks=2048] [--reps=3] [--files-reps=7] [--json] [--scenarios=20:8,20:32,...] [--rss-scaling]`
 * (`--scenarios=` with nothing runs the list, files and recovery-time rows only)
 *
 * What a user pays, side by side in one run: for each scenario (emulator latency in ms and
 * workers), the bare-SDK loop (bench/sdk-loop.mjs) and ec2-bpipe, interleaved, `--reps` times,
 * medians reported:
 *   backup      sdk-loop backup       vs  ec2-bpipe backup > /dev/null
 *   floor       sdk-loop backup       vs  sdk-loop backup-verified: the same loop checking every
 *                                         block's SHA-256, the least any verifying backup pays
 *   vs floor    sdk-loop backup-verified  vs  ec2-bpipe backup: the backup's share of the floor
 *   restore     sdk-loop restore      vs  ec2-bpipe restore (to the emulator)
 *   files       tar -xf of the stream vs  ec2-bpipe restore --to-dir (every block verified, the
 *               (and tar -xf + sync)      image fsynced before its rename), once, `--files-reps`
 *                                         times (its runs vary more than the others)
 * Each process runs under GNU time: wall seconds, CPU seconds and peak RSS. `ideal` is
 * min(baseline, workers × 0.5 MiB / latency). `--rss-scaling` compares the peak RSS of a backup
 * of 2,000 and of 200,000 written blocks instead. docs/PERFORMANCE.md says how to read it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DeleteSnapshotCommand, EC2Client } from '@aws-sdk/client-ec2';
import { BIN, credentials, emulator, ROOT, sdkConfig, tempDir, writeConfig } from '../test/helpers.js';

const { values } = parseArgs({
  options: {
    blocks: { type: 'string', default: '2048' },
    reps: { type: 'string', default: '3' },
    // Writing a gigabyte into the page cache varies run to run far more than the network paths
    // do on a virtual machine (docs/PERFORMANCE.md): more runs for a steadier median.
    'files-reps': { type: 'string', default: '7' },
    json: { type: 'boolean', default: false },
    scenarios: { type: 'string', default: '20:8,20:32,20:64,0:8,0:32' },
    'rss-scaling': { type: 'boolean', default: false },
  },
  strict: true,
});
for (const name of ['blocks', 'reps', 'files-reps'] as const) {
  const value = Number(values[name]);
  if (!Number.isInteger(value) || value < 1) {
    console.error(`--${name}=${values[name]}: expected a whole number of at least 1`);
    process.exit(2);
  }
}
const BLOCK_MIB = 0.5;

interface Run {
  seconds: number;
  cpuSeconds: number;
  rssMiB: number;
  stdout: string;
}

/** Runs a command under GNU time; fails loudly on a non-zero exit. */
function timed(
  command: string[],
  options: { stdoutFile?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Run> {
  const report = join(work.path, 'time.txt');
  const redirect = options.stdoutFile ? ` > '${options.stdoutFile}'` : '';
  const quoted = command.map((part) => `'${part.replaceAll("'", "'\\''")}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(
      'sh',
      ['-c', `exec /usr/bin/time -f '%e %U %S %M' -o '${report}' ${quoted}${redirect}`],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...options.env },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${command.slice(0, 3).join(' ')} exited ${code}: ${stderr.slice(-800)}`));
        return;
      }
      const [seconds, user, system, rssKiB] = readFileSync(report, 'utf8')
        .trim()
        .split('\n')
        .pop()!
        .split(' ')
        .map(Number);
      resolve({ seconds: seconds!, cpuSeconds: user! + system!, rssMiB: rssKiB! / 1024, stdout });
    });
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Side {
  mibps: number;
  rssMiB: number;
  cpuPerGiB: number;
}

function summarize(runs: Run[], mib: number): Side {
  return {
    mibps: median(runs.map((r) => mib / r.seconds)),
    rssMiB: median(runs.map((r) => r.rssMiB)),
    cpuPerGiB: median(runs.map((r) => r.cpuSeconds / (mib / 1024))),
  };
}

const work = tempDir('ec2-bpipe-bench-');
// Snapshots complete at once: the SDK loop reads an existing snapshot, so the time AWS takes to
// complete a new one (minutes in reality, not ec2-bpipe's) stays out of both sides.
const em = await emulator({ pendingMs: 0 });
const ec2 = new EC2Client(sdkConfig(em));
const node = process.execPath;
const sdkLoop = join(ROOT, 'bench', 'sdk-loop.mjs');
const sdkEnv = {
  AWS_ACCESS_KEY_ID: credentials.accessKeyId,
  AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
};

/** Deletes every snapshot but `keep`: restores leave 1 GiB each in the emulator's memory. */
async function dropSnapshotsBut(keep: Set<string>): Promise<void> {
  for (const snapshot of (await em.admin.state()).snapshots) {
    const id = String(snapshot.SnapshotId);
    if (!keep.has(id)) await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
  }
}

let runIndex = 0;
function config(workers: number, extra = ''): string {
  runIndex++;
  const dir = join(work.path, `run${runIndex}`);
  mkdirSync(dir);
  return writeConfig(
    dir,
    em,
    `[backup]\nworkers = ${workers}\n${extra}[restore]\nworkers = ${workers}\n`,
    `bench${runIndex}`,
  );
}

async function volumeOf(blocks: number): Promise<{ volumeId: string; snapshotId: string }> {
  const sizeGiB = Math.ceil((blocks * BLOCK_MIB) / 1024) + 1;
  const { volumeId } = await em.admin.volume({ sizeGiB, fill: { blocks, seed: 1 } });
  // One backup, untimed, gives the stream the restores read and the snapshot the SDK loop reads.
  const tar = join(work.path, `source-${blocks}.tar`);
  await timed([node, BIN, 'backup', `--config=${config(32)}`, `--volume=${volumeId}`, '--job=source'], {
    stdoutFile: tar,
  });
  const snapshot = (await em.admin.state()).snapshots.find((s) => s.VolumeId === volumeId);
  return { volumeId, snapshotId: String(snapshot?.SnapshotId) };
}

async function rssScaling(): Promise<void> {
  const rows: { blocks: number; rssMiB: number; mibps: number }[] = [];
  for (const blocks of [2000, 200_000]) {
    // No source backup here: 200,000 blocks are 100 GiB, which a file of the stream would hold.
    const sizeGiB = Math.ceil((blocks * BLOCK_MIB) / 1024) + 1;
    const { volumeId } = await em.admin.volume({ sizeGiB, fill: { blocks, seed: 1 } });
    const run = await timed(
      [node, BIN, 'backup', `--config=${config(64)}`, `--volume=${volumeId}`, `--job=rss${blocks}`],
      { stdoutFile: '/dev/null' },
    );
    rows.push({ blocks, rssMiB: run.rssMiB, mibps: (blocks * BLOCK_MIB) / run.seconds });
    await dropSnapshotsBut(new Set());
  }
  if (values.json) for (const row of rows) console.log(JSON.stringify({ rssScaling: row }));
  else
    for (const row of rows)
      console.log(
        `backup of ${row.blocks} blocks, 64 workers: peak RSS ${row.rssMiB.toFixed(0)} MiB, ${row.mibps.toFixed(0)} MiB/s`,
      );
  console.log(`RSS difference: ${(rows[1]!.rssMiB - rows[0]!.rssMiB).toFixed(1)} MiB`);
}

/** One row: the medians of both sides, the ideal and the ratios; printed as text or JSON. */
function report(
  scenario: string,
  operation: string,
  base: Run[],
  ours: Run[],
  mib: number,
  ideal: number,
): void {
  const b = summarize(base, mib);
  const o = summarize(ours, mib);
  const best = Math.min(b.mibps, ideal);
  const row = {
    scenario,
    operation,
    baseline: b,
    ec2bpipe: o,
    ideal: best,
    ratio: o.mibps / best,
    cpuRatio: o.cpuPerGiB / b.cpuPerGiB,
  };
  if (values.json) {
    console.log(JSON.stringify(row));
    return;
  }
  const cells = [
    scenario.padEnd(19),
    operation.padEnd(9),
    b.mibps.toFixed(0).padStart(14),
    o.mibps.toFixed(0).padStart(17),
    best.toFixed(0).padStart(8),
    row.ratio.toFixed(2).padStart(7),
    `${b.rssMiB.toFixed(0)}/${o.rssMiB.toFixed(0)}`.padStart(20),
    `${o.cpuPerGiB.toFixed(1)}/${b.cpuPerGiB.toFixed(1)}`.padStart(22),
  ];
  console.log(cells.join(''));
}

/** `list`, run at every job start: its wall time is each job's fixed cost. */
async function listTime(volumeId: string): Promise<void> {
  const listConfig = config(8, `volume-ids = ${volumeId}\n`);
  const args = [
    'list',
    `--config=${listConfig}`,
    '--job=bench.2026-11-24_00.00.00_01',
    '--level=Full',
    '--prev-job=',
  ];
  const runs: Run[] = [];
  for (let rep = 0; rep < 5; rep++) runs.push(await timed([node, BIN, ...args]));
  const list = { seconds: median(runs.map((r) => r.seconds)), rssMiB: median(runs.map((r) => r.rssMiB)) };
  if (values.json) console.log(JSON.stringify({ list }));
  else
    console.log(
      `list: ${list.seconds.toFixed(2)} s wall (median of 5), peak RSS ${list.rssMiB.toFixed(0)} MiB`,
    );
}

/**
 * Recovery time: a 1 GiB instance of two volumes at 20 ms, from the start of the restore to a
 * running instance, by stream restore (every block written, --from-snapshots=never) and by
 * point restore (restore --point, launched from the snapshots AWS holds). The emulator makes
 * images and instances available at once, so both sides measure ec2-bpipe's own work.
 */
async function recoveryTime(reps: number, keep: Set<string>): Promise<void> {
  em.options.latencyMs = 20;
  const { instanceId } = await em.admin.instance({
    instanceType: 'm5.large',
    volumes: [
      { device: '/dev/xvda', sizeGiB: 1, fill: { blocks: 1024, seed: 21 } },
      { device: '/dev/sdf', sizeGiB: 1, fill: { blocks: 1024, seed: 22 } },
    ],
  });
  const rtoConfig = config(32, `instance-ids = ${instanceId}\n`);
  const tar = join(work.path, 'rto.tar');
  await timed([node, BIN, 'backup', `--config=${rtoConfig}`, '--job=rto-1'], { stdoutFile: tar });
  for (const s of (await em.admin.state()).snapshots) keep.add(String(s.SnapshotId));
  const stream: Run[] = [];
  const point: Run[] = [];
  const launched = async (): Promise<void> => {
    for (const i of (await em.admin.state()).instances)
      if (i.InstanceId !== instanceId && (i.State as { Name: string }).Name !== 'terminated')
        await em.admin.call('POST', `instances/${String(i.InstanceId)}/terminate`, {});
    await dropSnapshotsBut(keep);
  };
  for (let rep = 0; rep < reps; rep++) {
    stream.push(await timed([node, BIN, 'restore', `--config=${rtoConfig}`, '--from-snapshots=never', tar]));
    await launched();
    point.push(
      await timed([
        node,
        BIN,
        'restore',
        `--config=${rtoConfig}`,
        '--point=rto-1',
        `--instance=${instanceId}`,
      ]),
    );
    await launched();
  }
  const rto = {
    streamSeconds: median(stream.map((r) => r.seconds)),
    pointSeconds: median(point.map((r) => r.seconds)),
  };
  if (values.json)
    console.log(JSON.stringify({ rto: { ...rto, ratio: rto.pointSeconds / rto.streamSeconds } }));
  else
    console.log(
      `recovery time, 1 GiB instance of 2 volumes, 20 ms, 32 workers, to a running instance: ` +
        `stream restore ${rto.streamSeconds.toFixed(1)} s, point restore ${rto.pointSeconds.toFixed(1)} s ` +
        `(${(rto.pointSeconds / rto.streamSeconds).toFixed(2)} of the stream's)`,
    );
}

async function scenarios(): Promise<void> {
  const blocks = Number(values.blocks);
  const reps = Number(values.reps);
  const mib = blocks * BLOCK_MIB;
  const source = await volumeOf(blocks);
  const tar = join(work.path, `source-${blocks}.tar`);
  const keep = new Set([source.snapshotId]);
  if (!values.json) {
    const machine = `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
    console.log(
      `${machine}, Node ${process.version}, ${blocks} blocks (${mib} MiB), ${reps} repetitions, medians`,
    );
    console.log(
      'scenario           operation  baseline MiB/s  ec2-bpipe MiB/s   ideal  ratio   RSS base/ours MiB   CPU s/GiB ours/base',
    );
  }
  await listTime(source.volumeId);

  // Restore to files involves neither the emulator nor the workers: measured once, not per scenario.
  const tarRuns: Run[] = [];
  const tarSyncRuns: Run[] = [];
  const fileRuns: Run[] = [];
  const outDir = join(work.path, 'out');
  const filesSides: { runs: Run[]; command: () => string[] }[] = [
    { runs: tarRuns, command: () => ['tar', '-xf', tar, '-C', outDir] },
    // ec2-bpipe fsyncs an image before it renames it into place; tar leaves its writes to the
    // kernel. The same work with the data on disk at the end: tar, then sync of its file system.
    {
      runs: tarSyncRuns,
      command: () => ['sh', '-c', `tar -xf '${tar}' -C '${outDir}' && sync -f '${outDir}'`],
    },
    {
      runs: fileRuns,
      command: () => [node, BIN, 'restore', `--config=${config(8)}`, `--to-dir=${outDir}`, tar],
    },
  ];
  for (let rep = 0; rep < Number(values['files-reps']); rep++) {
    // The order turns with each repetition: a run that follows the deletion of another's
    // gigabyte was measured slower here, whichever program it was.
    for (let turn = 0; turn < filesSides.length; turn++) {
      const side = filesSides[(rep + turn) % filesSides.length];
      if (side === undefined) continue;
      mkdirSync(outDir);
      // Each run starts with no dirty pages: tar does not fsync what it wrote, and the kernel's
      // writeback of it would otherwise fall into the next run.
      execFileSync('sync');
      side.runs.push(await timed(side.command()));
      rmSync(outDir, { recursive: true });
    }
  }
  report('to files, vs tar -xf', 'files', tarRuns, fileRuns, mib, Infinity);
  report('to files, vs tar + sync', 'files', tarSyncRuns, fileRuns, mib, Infinity);
  await recoveryTime(reps, keep);

  for (const scenario of values.scenarios.split(',').filter(Boolean)) {
    const [latencyMs, workers] = scenario.split(':').map(Number) as [number, number];
    em.options.latencyMs = latencyMs;
    const runs = {
      backupSdk: [] as Run[],
      verifiedSdk: [] as Run[],
      backup: [] as Run[],
      restoreSdk: [] as Run[],
      restore: [] as Run[],
    };
    for (let rep = 0; rep < reps; rep++) {
      const loop = (mode: string, what: string) => [node, sdkLoop, mode, em.url, what, String(workers)];
      runs.backupSdk.push(await timed(loop('backup', source.snapshotId), { env: sdkEnv }));
      runs.verifiedSdk.push(await timed(loop('backup-verified', source.snapshotId), { env: sdkEnv }));
      const backup = [
        'backup',
        `--config=${config(workers)}`,
        `--volume=${source.volumeId}`,
        `--job=b${runIndex}`,
      ];
      runs.backup.push(await timed([node, BIN, ...backup], { stdoutFile: '/dev/null' }));
      await dropSnapshotsBut(keep);
      runs.restoreSdk.push(await timed(loop('restore', String(blocks)), { env: sdkEnv }));
      await dropSnapshotsBut(keep);
      // Written from the stream: the source snapshot is live, and would otherwise be used as is.
      runs.restore.push(
        await timed([node, BIN, 'restore', `--config=${config(workers)}`, '--from-snapshots=never', tar]),
      );
      await dropSnapshotsBut(keep);
    }
    // Each request moves 0.5 MiB and takes at least the latency: workers × 0.5 MiB / latency.
    const ideal = latencyMs === 0 ? Infinity : (workers * BLOCK_MIB * 1000) / latencyMs;
    const name = `${latencyMs} ms, ${workers} workers`;
    report(name, 'backup', runs.backupSdk, runs.backup, mib, ideal);
    // The floor of any verifying backup: the bare loop that also checks each block's SHA-256.
    report(name, 'floor', runs.backupSdk, runs.verifiedSdk, mib, ideal);
    // The backup against that floor: its ratio is the backup's share of the floor's MiB/s, its RSS
    // pair the floor's and the backup's (targets: a ratio of 0.95 or more, at most 48 MiB more).
    report(name, 'vs floor', runs.verifiedSdk, runs.backup, mib, Infinity);
    report(name, 'restore', runs.restoreSdk, runs.restore, mib, ideal);
  }
}

try {
  execFileSync('/usr/bin/time', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('npm run bench needs GNU time (/usr/bin/time): apt-get install time');
  process.exit(2);
}
try {
  if (values['rss-scaling']) await rssScaling();
  else await scenarios();
} finally {
  ec2.destroy();
  await em.close();
  work.cleanup();
}
