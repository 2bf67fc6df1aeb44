import type { EBSClient } from '@aws-sdk/client-ebs';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { Logger } from 'pino';
import { instanceMeta, type InstanceMeta } from './aws/metadata.js';
import { Backup, volumeMeta } from './backup.js';
import { chooseBase, volumeLinks } from './chain.js';
import type { Config } from './config.js';
import type { Level, VolumeMeta } from './stream/format.js';
import type { Unit } from './selection.js';
import { VERSION } from './version.js';

export const FINALIZER_FORMAT = 'ec2-bpipe-finalizer';
/** The constant name of the finalizer in the Bacula catalog: printed last, restored once, after all the data. */
export const FINALIZER_NAME = 'restore.json';

/**
 * The chain's head for one unit, written as `restore.json` after the job's data stream. Restoring
 * it launches the instance from the head's restored snapshots, or closes a files restore.
 */
export interface Finalizer {
  format: typeof FINALIZER_FORMAT;
  formatVersion: 1;
  toolVersion: string;
  config: string;
  /** The job that wrote this finalizer (Bacula's %j). */
  job: string;
  /** The newest complete stream: this job's, or, when its data stream failed, the last complete one before it. */
  head: string | null;
  headLevel: Level | null;
  region: string;
  kind: 'instance' | 'volumes';
  resourceId: string;
  createdAt: string;
  instance: InstanceMeta | null;
  /** The head's volumes, as its streams described them. */
  volumes: VolumeMeta[];
}

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
    const links = await volumeLinks(ec2, config.name, volumeId);
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
