import type { EBSClient } from '@aws-sdk/client-ebs';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { instanceMeta } from './aws/metadata.js';
import { Backup, volumeMeta } from './backup.js';
import { chooseBase, volumeLinks } from './chain.js';
import type { Config } from './config.js';
import { FINALIZER_FORMAT, type Finalizer, type Level, type VolumeMeta } from './stream/schema.js';
import type { Unit } from './selection.js';
import { VERSION } from './version.js';

/** The constant name of the finalizer in the Bacula catalog: printed last, restored once, after all the data. */
export const FINALIZER_NAME = 'restore.json';

export async function buildFinalizer(
  config: Config,
  ec2: EC2Client,
  ebs: EBSClient,
  region: string,
  unit: Unit,
  job: string,
  log: Logger,
): Promise<Finalizer> {
  const plan = await new Backup(config, ec2, ebs, region, log).plan(unit);
  const volumes: VolumeMeta[] = [];
  let head: string | null = null;
  let headLevel: Level | null = null;
  for (const planned of plan.volumes) {
    const volumeId = planned.volume.VolumeId!;
    const links = await volumeLinks(ec2, config, volumeId);
    const choice = chooseBase(links, 'Incremental', job, planned.volume.Size!);
    if (!choice.base) {
      log.warn(`finalizer: no complete stream of ${volumeId} up to job ${job} (${choice.reason})`);
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
    head = choice.base.job;
    headLevel = choice.base.level;
    const base = choice.base.baseJob ? links.find((l) => l.job === choice.base.baseJob) : undefined;
    volumes.push(
      volumeMeta(planned, choice.base.snapshotId, choice.base.sizeGiB, choice.base.level, base, 0),
    );
  }
  if (head !== job)
    log.warn(`finalizer: job ${job}'s own stream is not complete; the head is ${head ?? 'missing'}`);
  return {
    format: FINALIZER_FORMAT,
    formatVersion: 1,
    toolVersion: VERSION,
    config: config.name,
    job,
    head,
    headLevel,
    region,
    kind: unit.kind,
    resourceId: unit.resourceId,
    createdAt: new Date().toISOString(),
    instance: plan.instance ? await instanceMeta(ec2, plan.instance) : null,
    volumes: head === null ? [] : volumes,
  };
}
