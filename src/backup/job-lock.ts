/**
 * One job per unit at a time (docs/DESIGN.md, "One job per unit"). Two backups of one unit at
 * once would base on each other's unfinished snapshots, and the first to finish would delete the
 * other's through retention. On one host a lock file in the state dir refuses the second job; across
 * hosts the first job's `streaming` snapshots, tagged with its host, do.
 */
import { rmSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { messageOf, RuntimeFailure } from '../errors.js';
import { type Lock, LOCK_DIRECTORY, lockName, lockSchema } from '../format/unit-lock.js';
import { onInterrupt } from '../lifecycle.js';
import type { ChainLink } from './links.js';

/**
 * How long another host's `streaming` snapshot counts as a job still running. A job that died
 * without a word (a killed host) leaves its snapshots `streaming`; after this its unit is free
 * again. A day is longer than any backup of the largest volume (64 TiB at 1 GiB/s is 18 hours).
 */
export const RUNNING_FOR_AT_MOST_MS = 24 * 60 * 60 * 1000;

/** The host name tagged on the snapshots, as a tag value holds it (256 characters at most). */
export function backupHost(): string {
  return hostname().slice(0, 253) || 'localhost';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, run by another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The lock as it was read, or why it counts as no lock (its job ended without removing it). */
async function readLock(path: string): Promise<Lock | string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    return `it cannot be read (${messageOf(err)})`;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'it is damaged';
  }
  const lock = lockSchema.safeParse(value);
  if (!lock.success) return 'it is damaged';
  if (lock.data.host !== backupHost()) return lock.data;
  return alive(lock.data.pid)
    ? lock.data
    : `its job ${lock.data.job} (pid ${lock.data.pid}) ended without removing it`;
}

/**
 * Takes the unit's lock for `job`, or refuses (exit 1) naming the job that holds it. Returns the
 * release; an interruption releases it too (a kill leaves it, and the next job sees its pid gone).
 */
export async function lockUnit(
  stateDir: string,
  config: string,
  resourceId: string,
  job: string,
  log: Logger,
): Promise<() => Promise<void>> {
  const dir = join(stateDir, LOCK_DIRECTORY);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new RuntimeFailure(
      `${dir}: cannot make the directory of the unit locks (${messageOf(err)}); set [bacula] state-dir to a directory this user can write`,
    );
  }
  const path = join(dir, lockName(config, resourceId));
  const lock: Lock = {
    job,
    pid: process.pid,
    host: backupHost(),
    since: new Date().toISOString(),
    resourceId,
  };
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      try {
        await handle.writeFile(`${JSON.stringify(lock)}\n`);
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new RuntimeFailure(
          `${path}: cannot take the lock of ${resourceId} (${messageOf(err)}); check [bacula] state-dir`,
        );
      }
    }
    const held = await readLock(path);
    if (typeof held !== 'string' || attempt > 0) {
      const who =
        typeof held === 'string'
          ? `another job (${held})`
          : `job ${held.job} (pid ${held.pid} on ${held.host}, since ${held.since})`;
      throw new RuntimeFailure(
        `${resourceId} of config ${config} is being backed up by ${who}: one job per unit at a time. ` +
          `Run job ${job} after it ends (in Bacula: Maximum Concurrent Jobs = 1 on this Job, Allow Duplicate Jobs = no); ${path} is its lock.`,
      );
    }
    log.warn(`${path}: taking over the lock of ${resourceId}: ${held}`);
    await rm(path, { force: true });
  }
  const forget = onInterrupt(() => {
    rmSync(path, { force: true });
    return undefined;
  });
  return async () => {
    forget();
    await rm(path, { force: true });
  };
}

/** Whether a link may belong to a job still running on another host (this host's jobs hold the lock). */
export function mayStillRun(link: ChainLink, job: string, now = Date.now()): boolean {
  return (
    !link.complete &&
    !link.pending &&
    !link.failed &&
    link.job !== job &&
    link.host !== undefined &&
    link.host !== backupHost() &&
    now - link.startTime.getTime() < RUNNING_FOR_AT_MOST_MS
  );
}

/** Refuses (exit 1) a backup of volumes another host's job is backing up now, naming it. */
export function refuseRunningJobs(volumes: { volumeId: string; links: ChainLink[] }[], job: string): void {
  for (const { volumeId, links } of volumes) {
    const running = links.find((l) => mayStillRun(l, job));
    if (running === undefined) continue;
    throw new RuntimeFailure(
      `${volumeId} is being backed up by job ${running.job} on ${running.host ?? '?'} since ${running.startTime.toISOString()} ` +
        `(its snapshot ${running.snapshotId} is streaming): one job per unit at a time. Run job ${job} after it ends. ` +
        `Had that job died, its snapshots count as ended ${RUNNING_FOR_AT_MOST_MS / 3_600_000} hours after they started, ` +
        `or at once once tagged ec2-bpipe:state=failed.`,
    );
  }
}

/**
 * The snapshots retention must keep for jobs that may still be running: their own, and every link
 * of the chains they are based on (the base job, its base, down to the Full).
 */
export function runningChains(links: ChainLink[], job: string, now = Date.now()): Map<string, string> {
  const kept = new Map<string, string>();
  const running = links.filter((l) => mayStillRun(l, job, now));
  const bases = new Map<string, string>();
  for (const link of running) {
    kept.set(link.snapshotId, `job ${link.job} may still be running on ${link.host ?? '?'}`);
    if (link.baseJob !== null) bases.set(link.baseJob, link.job);
  }
  for (let grew = true; grew;) {
    grew = false;
    for (const link of links) {
      const by = bases.get(link.job);
      if (by === undefined || kept.has(link.snapshotId)) continue;
      kept.set(link.snapshotId, `job ${by}, which may still be running, is based on it`);
      if (link.baseJob !== null && !bases.has(link.baseJob)) bases.set(link.baseJob, by);
      grew = true;
    }
  }
  return kept;
}
