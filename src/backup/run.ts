import type { EBSClient } from '@aws-sdk/client-ebs';
import type { EC2Client, Tag as AwsTag } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { instanceMeta } from '../aws/metadata.js';
import {
  setStreamState,
  tagStreamComplete,
  tagTaken,
  takeSnapshots,
  waitForSnapshots,
} from '../aws/snapshots.js';
import { configPathTag, TAG } from '../format/tags.js';
import type { RequestCounts } from '../aws/clients.js';
import type { Config } from '../config.js';
import { describeError, messageOf, RuntimeFailure } from '../errors.js';
import { liveDisplay } from '../display.js';
import { onInterrupt } from '../lifecycle.js';
import { awaitedLater } from '../pool.js';
import type { Unit } from '../selection.js';
import { FORMAT_NAME, FORMAT_VERSION, member } from '../format/container.js';
import { newFinalizer } from '../format/finalizer.js';
import { pruneRecords, recordsKept, writePointRecord } from '../format/point-record.js';
import type { Finalizer } from '../format/finalizer.js';
import type { Level } from '../format/fields.js';
import type { Manifest, VolumeMeta } from '../format/members.js';
import { StreamWriter } from '../stream/writer.js';
import { VERSION } from '../version.js';
import { chooseLevel } from './level.js';
import { volumeLinks } from './links.js';
import { acceptedPlan, acceptedSettings } from './plan.js';
import { retainEach } from './retention.js';
import { backupHost, lockUnit, refuseRunningJobs } from './job-lock.js';
import { copyToRegion } from './copies.js';
import { streamVolume } from './volume-stream.js';
import { betweenHooks } from './hooks.js';

export interface BackupRequest {
  unit: Unit;
  job: string;
  requestedLevel: Level;
  prevJob?: string;
}

export interface BackupTarget {
  config: Config;
  ec2: EC2Client;
  ebs: EBSClient;
  /** The EBS client's request counts, for the throttled share in each volume's log line. */
  ebsCounts?: RequestCounts;
  region: string;
  log: Logger;
}

function snapshotTags(
  config: Config,
  job: string,
  level: Level,
  baseJob: string | null,
  instanceId: string | undefined,
): AwsTag[] {
  const tags: Record<string, string> = {
    ...config.backup.snapshotTags,
    [TAG.config]: config.name,
    [TAG.configPath]: configPathTag(config.path),
    [TAG.job]: job,
    [TAG.baseJob]: baseJob ?? '',
    [TAG.level]: level,
    [TAG.instance]: instanceId ?? '',
    [TAG.state]: 'streaming',
    [TAG.host]: backupHost(),
  };
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

/**
 * One backup job of one unit: chooses the level, takes the snapshots (tagged `streaming`),
 * writes the stream (manifest, instance, each volume, end marker) to `destination`, then tags the
 * snapshots `complete` and applies retention. A failure leaves the snapshots `streaming` and the
 * stream without its end records, so nothing takes either for a good one.
 */
/** What a completed backup streamed: its whole-job summary line says it. */
export interface BackupSummary {
  level: string;
  volumes: number;
  blocks: number;
}

export async function runBackup(
  target: BackupTarget,
  request: BackupRequest,
  destination: NodeJS.WritableStream,
): Promise<BackupSummary> {
  const { config, log } = target;
  const { unit, job } = request;
  const release = await lockUnit(config.bacula.stateDir, config.name, unit.resourceId, job, log);
  try {
    return await backUpUnit(target, request, destination);
  } finally {
    await release();
  }
}

async function backUpUnit(
  target: BackupTarget,
  request: BackupRequest,
  destination: NodeJS.WritableStream,
): Promise<BackupSummary> {
  const { config, ec2, ebs, region, log } = target;
  const { unit, job } = request;
  // Each volume's links are looked up at once, and a volume unit's while its plan is checked:
  // each a round trip before the snapshots are taken. Not before the config is accepted: a job
  // it refuses makes no call.
  acceptedSettings(config, region);
  const early = new Map(
    (unit.kind === 'volumes' ? unit.volumeIds : []).map((id) => [
      id,
      awaitedLater(volumeLinks(ec2, config, id)),
    ]),
  );
  const plan = await acceptedPlan(ec2, config, region, unit);
  const [meta, histories] = await Promise.all([
    plan.instance ? instanceMeta(ec2, plan.instance, (line) => log.warn(line)) : undefined,
    Promise.all(
      plan.volumes.map(async (v) => ({
        volumeId: v.volumeId,
        sizeGiB: v.sizeGiB,
        links: await (early.get(v.volumeId) ?? volumeLinks(ec2, config, v.volumeId)),
      })),
    ),
  ]);
  refuseRunningJobs(histories, job);
  const choice = chooseLevel(request.requestedLevel, request.prevJob, histories);
  for (const line of choice.said) log[line.level](line.text);
  const { level, baseJob, bases, baseCreatedAt } = choice;

  const snapshotIds = new Map<string, string>();
  const taking = onInterrupt(() =>
    snapshotIds.size
      ? `snapshots ${[...snapshotIds.values()].join(', ')} of job ${job} left streaming; the next job will not base on them`
      : `no snapshot of job ${job} was taken`,
  );
  const instances = [...new Set(plan.groups.flatMap((g) => (g.instance ? [g.instance.instanceId] : [])))];
  const hooks = {
    ...(config.backup.preSnapshotCommand !== undefined && { pre: config.backup.preSnapshotCommand }),
    ...(config.backup.postSnapshotCommand !== undefined && { post: config.backup.postSnapshotCommand }),
    timeoutS: config.backup.hookTimeout,
  };
  const hookContext = {
    job,
    instanceId: instances.length === 1 ? (instances[0] ?? '') : '',
    volumeIds: plan.volumes.map((v) => v.volumeId),
  };
  await betweenHooks(hooks, hookContext, log, async () => {
    for (const group of plan.groups) {
      const taken = await takeSnapshots(ec2, {
        ...(group.instance && { instanceId: group.instance.instanceId, attached: group.instance.attached }),
        volumeIds: group.volumeIds,
        description:
          config.backup.snapshotDescription ?? `ec2-bpipe ${config.name} ${job} ${unit.resourceId}`,
        tags: snapshotTags(config, job, level, baseJob, group.instance?.instanceId),
        copyVolumeTags: config.backup.copyVolumeTags,
      });
      for (const [volumeId, snapshotId] of taken) snapshotIds.set(volumeId, snapshotId);
    }
  });
  const ids = [...snapshotIds.values()];
  log.info(`snapshots started: ${[...snapshotIds].map(([v, s]) => `${v}=${s}`).join(' ')}`);
  // Tagged while AWS completes them: two round trips at once before the first block.
  const tagging = awaitedLater(tagTaken(ec2, snapshotIds));
  const snapshots = await waitForSnapshots(ec2, ids, config.backup.snapshotTimeout, log);
  await tagging;
  const sizes = new Map(snapshots.map((s) => [s.SnapshotId, s.VolumeSize]));

  const writer = new StreamWriter(destination);
  let totalBlocks = 0;
  /** The blocks each snapshot's stream held: tagged on it with its `complete` state. */
  const streamed = new Map<string, number>();
  /** Each volume's metadata as the stream wrote it: the job's point record keeps them. */
  const volumes: VolumeMeta[] = [];
  const createdAt = new Date().toISOString();
  try {
    const manifest: Manifest = {
      format: FORMAT_NAME,
      formatVersion: FORMAT_VERSION,
      toolVersion: VERSION,
      config: config.name,
      job,
      level,
      requestedLevel: request.requestedLevel,
      baseJob,
      baseCreatedAt,
      region,
      kind: unit.kind,
      resourceId: unit.resourceId,
      createdAt,
      volumes: plan.volumes.map((v) => v.volumeId),
      encryptedVolumes: plan.volumes.filter((v) => v.volume.Encrypted).map((v) => v.volumeId),
    };
    await writer.json(member.manifest, manifest);
    liveDisplay()?.planJob(plan.volumes.map((v) => ({ volumeId: v.volumeId, sizeGiB: v.sizeGiB })));
    if (meta) await writer.json(member.instance, meta);
    for (const planned of plan.volumes) {
      const snapshotId = snapshotIds.get(planned.volumeId);
      if (snapshotId === undefined) throw new RuntimeFailure(`no snapshot was taken of ${planned.volumeId}`);
      const { blockCount: blocks, meta: volume } = await streamVolume(
        ebs,
        writer,
        {
          planned,
          snapshotId,
          sizeGiB: sizes.get(snapshotId) ?? planned.sizeGiB,
          level,
          base: bases.get(planned.volumeId),
          workers: config.backup.workers,
          adaptWorkers: config.backup.adaptWorkers,
        },
        log,
        target.ebsCounts,
      );
      totalBlocks += blocks;
      streamed.set(snapshotId, blocks);
      volumes.push(volume);
    }
    await writer.end(plan.volumes.length, totalBlocks);
  } catch (err) {
    writer.abort(err instanceof Error ? err : new Error(messageOf(err)));
    // Said on the snapshots, so that no host takes this job for one still running.
    await setStreamState(ec2, ids, 'failed').catch((tagErr: unknown) =>
      log.warn(
        `could not tag the snapshots of job ${job} failed (${describeError(tagErr)}); they stay streaming`,
      ),
    );
    throw err;
  }
  await tagStreamComplete(ec2, streamed);
  taking();
  log.info(`stream complete: ${unit.resourceId} job ${job} (${level}), ${plan.volumes.length} volume(s)`);
  // The point record is local, retention is AWS's: neither waits for the other, and neither fails
  // the job (each says what it could not do).
  await Promise.all([
    recordPoint(config, log, {
      config: config.name,
      job,
      head: job,
      headLevel: level,
      region,
      kind: unit.kind,
      resourceId: unit.resourceId,
      createdAt,
      instance: meta ?? null,
      volumes,
    }),
    retainEach(
      ec2,
      config,
      plan.volumes.map((v) => v.volumeId),
      config.backup.keepSnapshots,
      log,
      job,
    ),
  ]);
  try {
    await copyToRegion({ config, sourceRegion: region, ec2, snapshots: snapshotIds, job, log });
  } catch (err) {
    log.warn(
      `DR copies to ${config.backup.copyToRegion ?? '?'} failed (${describeError(err)}); the stream is whole`,
    );
  }
  return { level, volumes: plan.volumes.length, blocks: totalBlocks };
}

/**
 * Keeps the job's point record (docs/FORMAT.md, "Point records") for `restore --point`. The
 * stream is whole and its snapshots tagged complete whatever happens here: a record that could
 * not be written costs only the restore from snapshots without a stream, and is said.
 */
async function recordPoint(
  config: Config,
  log: Logger,
  fields: Omit<Finalizer, 'format' | 'formatVersion' | 'toolVersion'> & { head: string },
): Promise<void> {
  const stateDir = config.bacula.stateDir;
  try {
    await writePointRecord(stateDir, { ...newFinalizer(fields), head: fields.head });
    await pruneRecords(stateDir, fields.config, fields.resourceId, recordsKept(config.backup.keepSnapshots));
  } catch (err) {
    log.warn(
      `the point record of job ${fields.job} could not be written under ${stateDir} (${describeError(err)}); ` +
        'restore --point cannot launch this job without a stream. Check [bacula] state-dir.',
    );
  }
}
