import type { EC2Client } from '@aws-sdk/client-ec2';
import { createClients, resolveRegion } from '../aws/clients.js';
import { copiesOfConfig, type KnownCopy } from '../aws/copy.js';
import { describeAwsFailure } from '../aws/failure.js';
import { copyOfTag, stateMessage } from '../backup/copies.js';
import { describeError } from '../errors.js';
import { BLOCK_SIZE } from '../format/container.js';
import { type ChainLink, volumeLinks } from '../backup/links.js';
import { planUnit } from '../backup/plan.js';
import { readPointRecord, recordedJobs } from '../format/point-record.js';
import { instanceState } from '../aws/metadata.js';
import { INSTANCE_ID } from '../ids.js';
import { refuseOverlap, resolveUnit, selectedUnits, type Unit } from '../selection.js';
import type { CommandContext } from './context.js';
import type { PointsOptions } from './options.js';

/** One restore point: a job of a unit, as the tags of its snapshots describe it. */
export interface RestorePoint {
  unit: string;
  job: string;
  level: string;
  baseJob: string | null;
  /**
   * `complete`: every snapshot of the job holds a complete stream. `copying`: DR copies of a
   * complete stream that AWS is still making. `incomplete`: some stream was not written to the end
   * (the job failed, or is still running); it is no base and no restore point.
   */
  state: 'complete' | 'copying' | 'incomplete';
  /** The Region whose DR copies these are (`[backup] copy-to-region`); absent for the source. */
  copyOf?: string;
  /** When the job's first snapshot was taken (ISO 8601). */
  date: string;
  volumes: number;
  sizeGiB: number;
  /**
   * The data the job's streams held (blocks × 512 KiB), from its snapshots' `ec2-bpipe:blocks`;
   * absent when one of them does not say (taken before 0.3, or a job that did not complete).
   */
  dataBytes?: number;
  region: string;
  snapshotIds: string[];
  /**
   * With `[backup] copy-to-region`, on a point of the source Region: where its DR copy stands.
   * `copied` when every snapshot has a completed copy, `copying` when the rest are under way,
   * `error` when AWS failed one (the next job deletes it and copies again), `missing` when one has
   * none (left for the quota, refused, or not copied yet).
   */
  copy?: CopyState;
  /** With `copy`: each snapshot's copy. */
  copies?: LinkCopy[];
  /**
   * `restore --point` can launch it from its snapshots in this Region: they are complete, and this
   * host holds the job's point record (docs/FORMAT.md, "Point records").
   */
  live: boolean;
}

export type CopyState = 'copied' | 'copying' | 'error' | 'missing';

export interface LinkCopy {
  snapshotId: string;
  state: CopyState;
  /** The copy, when there is one. */
  copyId?: string;
  /** AWS's StateMessage of a copy in error. */
  message?: string;
}

/** Each snapshot's copy among the copies of the copy Region, and the point's state from them. */
export function copyStateOf(
  point: RestorePoint,
  copies: KnownCopy[],
): { copy: CopyState; copies: LinkCopy[] } {
  const links = point.snapshotIds.map((snapshotId): LinkCopy => {
    const found = copies.filter((c) => c.copyOf === copyOfTag(point.region, snapshotId));
    // A completed copy wins over an older failed one of the same snapshot.
    const best =
      found.find((c) => c.state === 'completed') ??
      found.find((c) => c.state === 'pending') ??
      found.find((c) => c.state === 'error');
    if (best === undefined) return { snapshotId, state: 'missing' };
    const state = best.state === 'completed' ? 'copied' : best.state === 'pending' ? 'copying' : 'error';
    return {
      snapshotId,
      state,
      copyId: best.snapshotId,
      ...(best.state === 'error' && { message: stateMessage(best.stateMessage) }),
    };
  });
  const states = new Set(links.map((l) => l.state));
  const copy: CopyState = states.has('error')
    ? 'error'
    : states.has('missing')
      ? 'missing'
      : states.has('copying')
        ? 'copying'
        : 'copied';
  return { copy, copies: links };
}

/** The restore points of one unit, newest first, from the links of its volumes. */
export function pointsOf(unit: Unit, region: string, links: ChainLink[]): RestorePoint[] {
  const byJob = new Map<string, ChainLink[]>();
  for (const link of links) byJob.set(link.job, [...(byJob.get(link.job) ?? []), link]);
  const points = [...byJob.entries()].map(([job, jobLinks]): RestorePoint => {
    const first = jobLinks.reduce((a, b) => (a.startTime <= b.startTime ? a : b));
    return {
      unit: unit.resourceId,
      job,
      level: first.level,
      baseJob: first.baseJob,
      state: jobLinks.every((l) => l.complete)
        ? 'complete'
        : jobLinks.every((l) => l.complete || l.pending)
          ? 'copying'
          : 'incomplete',
      date: first.startTime.toISOString(),
      volumes: jobLinks.length,
      sizeGiB: jobLinks.reduce((n, l) => n + l.sizeGiB, 0),
      ...(jobLinks.every((l) => l.blocks !== undefined) && {
        dataBytes: jobLinks.reduce((n, l) => n + (l.blocks ?? 0), 0) * BLOCK_SIZE,
      }),
      region,
      snapshotIds: jobLinks.map((l) => l.snapshotId),
      live: false,
    };
  });
  return points.sort((a, b) => b.date.localeCompare(a.date));
}

/** `12.5 MiB`, `3.20 GiB`: what a link's streams held, in the unit that reads best. */
function dataSize(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function table(points: RestorePoint[], withCopies: boolean): string {
  const header = [
    'unit',
    'job',
    'level',
    'base',
    'state',
    'date',
    'volumes',
    'size',
    'data',
    'region',
    'live',
  ];
  if (withCopies) header.push('copy');
  const rows = points.map((p) => [
    p.unit,
    p.job,
    p.level,
    p.baseJob ?? '-',
    p.state,
    p.date.replace(/\.\d+Z$/, 'Z'),
    String(p.volumes),
    `${p.sizeGiB} GiB`,
    p.dataBytes === undefined ? '-' : dataSize(p.dataBytes),
    p.region,
    p.live ? 'yes' : 'no',
    ...(withCopies ? [p.copyOf !== undefined ? `copy of ${p.copyOf}` : (p.copy ?? '-')] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * `ec2-bpipe points`: the restore points of the config's units (or of --instance/--volume), from
 * the tags of the snapshots this config took; changes nothing in AWS. A unit's points are those of
 * the volumes it has now.
 */
export async function pointsCommand(ctx: CommandContext, options: PointsOptions): Promise<void> {
  const region = await resolveRegion(ctx.config.aws);
  const clients = createClients(ctx.config.aws, { region });
  // The DR copies of [backup] copy-to-region are restore points too, listed with their Region.
  const copyRegion = ctx.config.backup.copyToRegion;
  const copies =
    copyRegion === undefined
      ? undefined
      : createClients(ctx.config.aws, { region: copyRegion, purpose: 'listing the DR copies' });
  try {
    const explicit = options.instance !== undefined || options.volume !== undefined;
    const gone = await goneInstance(ctx, clients.ec2, options.instance);
    const units = gone
      ? [gone]
      : explicit
        ? [await resolveUnit(ctx.config, clients.ec2, options)]
        : await selectedUnits(ctx.config, clients.ec2);
    if (!explicit) await refuseOverlap(ctx.config, clients.ec2, units);
    const points: RestorePoint[] = [];
    for (const unit of units) {
      const volumeIds = gone
        ? await recordedVolumes(ctx, unit.resourceId)
        : (await planUnit(clients.ec2, ctx.config, region, unit)).volumes.map((v) => v.volumeId);
      /** The links of the unit's volumes among the snapshots `ec2` sees. */
      const linksIn = async (ec2: EC2Client): Promise<ChainLink[]> => {
        const links: ChainLink[] = [];
        for (const volumeId of volumeIds) links.push(...(await volumeLinks(ec2, ctx.config, volumeId)));
        return links;
      };
      const recorded = new Set(
        await recordedJobs(ctx.config.bacula.stateDir, ctx.config.name, unit.resourceId),
      );
      /** Live where its snapshots are complete, with its record on this host. */
      const marked = (list: RestorePoint[]): RestorePoint[] =>
        list.map((p) => ({ ...p, live: p.state === 'complete' && recorded.has(p.job) }));
      const sourcePoints = marked(pointsOf(unit, region, await linksIn(clients.ec2)));
      points.push(...sourcePoints);
      if (copies !== undefined) {
        // The copy Region unreadable (down, or not permitted) must not hide the source's points.
        try {
          const known = await copiesOfConfig(copies.ec2, ctx.config.name);
          for (const point of sourcePoints) Object.assign(point, copyStateOf(point, known));
          const copied = await linksIn(copies.ec2);
          points.push(
            ...marked(pointsOf(unit, copies.region, copied)).map((p) => ({ ...p, copyOf: region })),
          );
        } catch (err) {
          ctx.log.warn(
            `the DR copies of ${unit.resourceId} in ${copies.region} could not be listed (${describeAwsFailure(err) ?? describeError(err)}); the points of ${region} follow`,
          );
        }
      }
    }
    ctx.stdout.write(
      options.json ? `${JSON.stringify(points, null, 2)}\n` : `${table(points, copies !== undefined)}\n`,
    );
  } finally {
    clients.destroy();
    copies?.destroy();
  }
}

/**
 * `--instance` of an instance that no longer runs (after the disaster: terminated, or gone from
 * EC2's answers): its points are those of the volumes its point records name, so `points` lists
 * what `restore --point` can launch. Undefined while the instance exists, or when it has no record.
 */
async function goneInstance(
  ctx: CommandContext,
  ec2: EC2Client,
  instanceId: string | undefined,
): Promise<Unit | undefined> {
  if (instanceId === undefined || !INSTANCE_ID.test(instanceId)) return undefined;
  if ((await recordedVolumes(ctx, instanceId)).length === 0) return undefined;
  const state = await instanceState(ec2, instanceId);
  if (state !== undefined && state !== 'terminated' && state !== 'shutting-down') return undefined;
  ctx.log.info(
    `${instanceId} ${state === undefined ? 'no longer exists' : `is ${state}`}: its points are listed for the volumes its point records name`,
  );
  return { kind: 'instance', resourceId: instanceId, instanceId };
}

/** The volumes of a unit's newest point record; none without a record. */
async function recordedVolumes(ctx: CommandContext, resourceId: string): Promise<string[]> {
  const { stateDir } = ctx.config.bacula;
  let newest: { createdAt: string; volumes: string[] } | undefined;
  for (const job of await recordedJobs(stateDir, ctx.config.name, resourceId)) {
    // A damaged record names no volume: the others still do.
    const record = await readPointRecord(stateDir, ctx.config.name, resourceId, job).catch(() => undefined);
    if (record && (newest === undefined || record.createdAt > newest.createdAt))
      newest = { createdAt: record.createdAt, volumes: record.volumes.map((v) => v.volumeId) };
  }
  return newest?.volumes ?? [];
}
