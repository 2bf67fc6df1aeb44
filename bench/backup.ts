/**
 * `npm run bench -- [--blocks=N] [--latency-ms=N] [--workers=8,32]`: measures backup, restore to
 * files and restore to AWS against the emulator, with the real command, and prints MiB/s and the
 * peak RSS of the ec2-bpipe process. Not part of `npm test`.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BIN, emulator, tempDir, writeConfig } from '../test/helpers.js';

const { values } = parseArgs({
  options: {
    blocks: { type: 'string', default: '2000' },
    'latency-ms': { type: 'string', default: '0' },
    workers: { type: 'string', default: '8' },
  },
});
const blocks = Number(values.blocks);
const MiB = (blocks * 512 * 1024) / 2 ** 20;

/** Runs the command, stdout to a file or /dev/null, sampling its RSS; returns seconds and peak RSS in MiB. */
function measure(args: string[], stdout?: string): Promise<{ seconds: number; rssMiB: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(
      'sh',
      ['-c', `exec "${process.execPath}" "${BIN}" ${args.join(' ')} > ${stdout ?? '/dev/null'}`],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let peak = 0;
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setInterval(() => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        peak = Math.max(peak, Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0));
      } catch {
        /* ended */
      }
    }, 50);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      if (code !== 0) return reject(new Error(`ec2-bpipe ${args[0]} exited ${code}: ${stderr.slice(-500)}`));
      resolve({ seconds: (Date.now() - started) / 1000, rssMiB: peak / 1024 });
    });
  });
}

const em = await emulator({ latencyMs: Number(values['latency-ms']) });
const dir = tempDir('ec2-bpipe-bench-');
try {
  const sizeGiB = Math.max(1, Math.ceil((blocks * 512) / 1024 / 1024) + 1);
  const { volumeId } = await em.admin.volume({ sizeGiB, fill: { blocks, seed: 1 } });
  console.log(
    `volume ${volumeId}: ${blocks} blocks (${MiB.toFixed(0)} MiB) in ${sizeGiB} GiB, latency ${values['latency-ms']} ms`,
  );
  console.log('operation                 workers   seconds    MiB/s   peak RSS MiB');
  const row = (name: string, workers: number, r: { seconds: number; rssMiB: number }) =>
    console.log(
      `${name.padEnd(25)} ${String(workers).padStart(7)} ${r.seconds.toFixed(1).padStart(9)} ${(MiB / r.seconds).toFixed(1).padStart(8)} ${r.rssMiB.toFixed(0).padStart(14)}`,
    );
  const tarFile = join(dir.path, 'bench.tar');
  for (const workers of values.workers.split(',').map(Number)) {
    const config = writeConfig(
      dir.path,
      em,
      `[backup]\nworkers = ${workers}\n[restore]\nworkers = ${workers}\n`,
      `bench${workers}`,
    );
    row(
      'backup',
      workers,
      await measure(['backup', `--config=${config}`, `--volume=${volumeId}`, `--job=b${workers}`], tarFile),
    );
    row('verify', workers, await measure(['verify', tarFile]));
    const out = join(dir.path, `files-${workers}`);
    row(
      'restore to files',
      workers,
      await measure(['restore', `--config=${config}`, `--to-dir=${out}`, tarFile]),
    );
    rmSync(out, { recursive: true, force: true });
    row('restore to AWS', workers, await measure(['restore', `--config=${config}`, tarFile]));
  }
} finally {
  await em.close();
  dir.cleanup();
}
