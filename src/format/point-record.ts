/**
 * docs/FORMAT.md, "Point records": what `restore --point` needs besides the
 * snapshots themselves. A backup that completed writes one per unit and job under the state
 * directory: a finalizer whose head is the job, holding the instance's metadata and each volume's
 * as the stream wrote them. The snapshots hold the data; the record holds what launching them
 * needs (type, network, user data, UEFI store), which no tag has room for.
 */
import { mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { durableStep } from '../crash-points.js';
import { RuntimeFailure } from '../errors.js';
import { CONFIG_NAME, JOB_NAME } from '../ids.js';
import { syncDirectory, writeSynced } from '../durable.js';
import { parseFinalizer } from './finalizer.js';
import type { Finalizer } from './finalizer.js';
import { resourceIdValid } from './members.js';

/** A record is a finalizer; its name says so. */
export type PointRecord = Finalizer & { head: string };

/**
 * Records kept per unit. Retention keeps `keep-snapshots` complete links of each volume, plus the
 * bases a later Incremental needs; twice that many records always covers the jobs whose snapshots
 * remain, and a record whose snapshots are gone is refused at restore, never trusted.
 */
export function recordsKept(keepSnapshots: number): number {
  return Math.max(2 * keepSnapshots, 2);
}

/** The directory of one unit's records: `<state-dir>/points/<config>/<resource id>`. */
export function unitRecordDir(stateDir: string, config: string, resourceId: string): string {
  return join(stateDir, 'points', config, resourceId);
}

function recordName(job: string): string {
  return `${job}.json`;
}

/**
 * Writes the record of a completed job: to a temporary name, flushed, renamed into place, the
 * directory flushed. A crash leaves the old set of records or the new one, never a partial file
 * under a record's name (a leftover `.tmp` is ignored and replaced by the next write).
 */
export async function writePointRecord(stateDir: string, record: PointRecord): Promise<string> {
  const dir = unitRecordDir(stateDir, record.config, record.resourceId);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, recordName(record.head));
  const temporary = `${path}.tmp`;
  await durableStep(`write ${temporary}`);
  await writeSynced(temporary, `${JSON.stringify(record, null, 2)}\n`);
  await durableStep(`rename ${temporary}`);
  await rename(temporary, path);
  await durableStep(`fsync ${dir}`);
  await syncDirectory(dir);
  return path;
}

/**
 * A record read back: refused, naming the file, when it is not a finalizer of this config and
 * unit whose head is the job its name says (a file edited or moved by hand steers nothing).
 */
export function parsePointRecord(bytes: Buffer, path: string, config: string, job: string): PointRecord {
  const record = parseFinalizer(bytes, path);
  const head = record.head;
  if (head === null || head !== job || record.job !== job || record.config !== config)
    throw new RuntimeFailure(
      `${path}: not the point record of job ${job} of config ${config} (it says job ${record.job}, head ${head ?? 'none'}, config ${record.config})`,
    );
  if (!resourceIdValid(record.kind, record.resourceId))
    throw new RuntimeFailure(`${path}: "${record.resourceId}" is not a ${record.kind} id`);
  return { ...record, head };
}

/** The jobs a unit has records of (file names only; each is parsed when it is used). */
export async function recordedJobs(stateDir: string, config: string, resourceId: string): Promise<string[]> {
  if (!CONFIG_NAME.test(config)) return [];
  let names: string[];
  try {
    names = await readdir(unitRecordDir(stateDir, config, resourceId));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .map((n) => n.slice(0, -'.json'.length))
    .filter((job) => JOB_NAME.test(job));
}

/** Reads one record; undefined when there is none. */
export async function readPointRecord(
  stateDir: string,
  config: string,
  resourceId: string,
  job: string,
): Promise<PointRecord | undefined> {
  if (!JOB_NAME.test(job)) return undefined;
  const path = join(unitRecordDir(stateDir, config, resourceId), recordName(job));
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // A record is a few KiB (user data and the UEFI store are bounded by the schema): one read.
  return parsePointRecord(bytes, path, config, job);
}

/** Deletes all but the newest `keep` records of a unit (by the record's own date). */
export async function pruneRecords(
  stateDir: string,
  config: string,
  resourceId: string,
  keep: number,
): Promise<void> {
  const dated: { job: string; createdAt: string }[] = [];
  for (const job of await recordedJobs(stateDir, config, resourceId)) {
    try {
      const record = await readPointRecord(stateDir, config, resourceId, job);
      if (record) dated.push({ job, createdAt: record.createdAt });
    } catch {
      // An unreadable record is nobody's point: removed with the old ones.
      dated.push({ job, createdAt: '' });
    }
  }
  dated.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const dir = unitRecordDir(stateDir, config, resourceId);
  for (const { job } of dated.slice(keep)) await unlink(join(dir, recordName(job))).catch(() => undefined);
}
