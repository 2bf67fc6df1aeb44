import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { instanceMeta } from '../aws/metadata.js';
import type { Config } from '../config.js';
import type { Unit } from '../selection.js';
import { newFinalizer } from '../format/finalizer.js';
import type { Finalizer } from '../format/finalizer.js';
import type { Level } from '../format/fields.js';
import type { VolumeMeta } from '../format/members.js';
import { chooseBase } from './level.js';
import { volumeLinks } from './links.js';
import { planUnit } from './plan.js';
import { volumeMeta } from './volume-stream.js';

/**
 * The chain's head for one unit, written as `restore.json` after the job's data stream: the
 * newest complete stream up to `job` (normally `job` itself; when its stream failed, or it left no
 * snapshot at all, the newest complete one before it). Restoring it launches the instance from the
 * head's restored snapshots, or closes a files restore.
 */
export async function buildFinalizer(
  config: Config,
  ec2: EC2Client,
  region: string,
  unit: Unit,
  job: string,
  log: Logger,
): Promise<Finalizer> {
  const plan = await planUnit(ec2, config, region, unit);
  const volumes: VolumeMeta[] = [];
  let head: string | null = null;
  let headLevel: Level | null = null;
  for (const planned of plan.volumes) {
    const links = await volumeLinks(ec2, config, planned.volumeId);
    const choice = chooseBase(links, 'Incremental', job, planned.sizeGiB);
    if (!choice.base) {
      log.warn(`finalizer: no complete stream of ${planned.volumeId} up to job ${job} (${choice.reason})`);
      head = null;
      break;
    }
    if (head !== null && choice.base.job !== head) {
      log.warn(
        `finalizer: the volumes' newest complete streams come from different jobs (${head}, ${choice.base.job})`,
      );
      head = null;
      break;
    }
    const base = choice.base;
    head = base.job;
    headLevel = base.level;
    const parent = base.baseJob ? links.find((l) => l.job === base.baseJob) : undefined;
    volumes.push(volumeMeta(planned, base.snapshotId, base.sizeGiB, base.level, parent, 0));
  }
  if (head !== job)
    log.warn(`finalizer: job ${job}'s own stream is not complete; the head is ${head ?? 'missing'}`);
  return newFinalizer({
    config: config.name,
    job,
    head,
    headLevel,
    region,
    kind: unit.kind,
    resourceId: unit.resourceId,
    createdAt: new Date().toISOString(),
    instance: plan.instance ? await instanceMeta(ec2, plan.instance, (line) => log.warn(line)) : null,
    volumes: head === null ? [] : volumes,
  });
}
