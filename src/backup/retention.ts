import type { EC2Client } from '@aws-sdk/client-ec2';
import { deleteSnapshot } from '../aws/snapshots.js';
import type { Logger } from 'pino';
import { describeError, messageOf } from '../errors.js';
import { runningChains } from './job-lock.js';
import { type ConfigIdentity, volumeLinks } from './links.js';

/**
 * After a complete stream: deletes this config's older snapshots of the volume beyond `keep`,
 * never the newest complete one nor the newest complete Full, and only snapshots whose tags say
 * ec2-bpipe took them for this config (docs/DESIGN.md §4).
 */
export async function applyRetention(
  ec2: EC2Client,
  config: ConfigIdentity,
  volumeId: string,
  keep: number,
  log: Logger,
  /** The job applying it: its own snapshots are not another job's that may still run. */
  job: string,
  /** Said in the log lines when retention works on the DR copies of another Region. */
  copyRegion?: string,
): Promise<string[]> {
  const where = copyRegion === undefined ? '' : ` of the DR copies in ${copyRegion}`;
  const links = await volumeLinks(ec2, config, volumeId, (doubtful) =>
    log.warn(
      `retention${where}: kept ${doubtful.snapshotId}, which carries the tags of ${config.name} for ${doubtful.volumeId}: ${doubtful.why}; ec2-bpipe deletes only snapshots it can prove it took`,
    ),
  );
  const protect = new Map<string, string>();
  const newestComplete = links.find((l) => l.complete);
  const newestFull = links.find((l) => l.complete && l.level === 'Full');
  if (newestComplete) protect.set(newestComplete.snapshotId, 'the newest complete link');
  if (newestFull) protect.set(newestFull.snapshotId, 'the newest complete Full');
  const running = runningChains(links, job);
  const deleted: string[] = [];
  for (const link of links.slice(keep)) {
    if (protect.has(link.snapshotId)) continue;
    const why = running.get(link.snapshotId);
    if (why !== undefined) {
      log.info(`retention${where}: kept ${link.snapshotId} of ${volumeId} (job ${link.job}): ${why}`);
      continue;
    }
    try {
      await deleteSnapshot(ec2, link.snapshotId);
    } catch (err) {
      // DeleteSnapshot (EC2 API reference): a snapshot an AMI uses cannot be deleted. A restore
      // from this link with keep-image registered one; the others are still pruned.
      if (!(err instanceof Error && err.name === 'InvalidSnapshot.InUse')) throw err;
      log.warn(
        `retention${where}: kept ${link.snapshotId} of ${volumeId} (job ${link.job}): ${messageOf(err)}; ` +
          'an image registered from it (a restore with keep-image) must be deregistered first',
      );
      continue;
    }
    log.info(
      `retention${where}: deleted ${link.snapshotId} of ${volumeId} (job ${link.job}, ${link.level}${link.complete ? '' : ', incomplete'})`,
    );
    deleted.push(link.snapshotId);
  }
  return deleted;
}

/**
 * Retention for each volume of a complete stream, here or among the DR copies of `copyRegion`.
 * The stream is whole by then: a failure costs storage, not data, so it warns, and the next job
 * tries again.
 */
export async function retainEach(
  ec2: EC2Client,
  config: ConfigIdentity,
  volumeIds: Iterable<string>,
  keep: number,
  log: Logger,
  job: string,
  copyRegion?: string,
): Promise<void> {
  for (const volumeId of volumeIds) {
    try {
      await applyRetention(ec2, config, volumeId, keep, log, job, copyRegion);
    } catch (err) {
      const [what, kept] =
        copyRegion === undefined
          ? [`retention for ${volumeId}`, 'older snapshots']
          : [`retention of the DR copies of ${volumeId} in ${copyRegion}`, 'older copies'];
      log.warn(`${what} failed (${describeError(err)}); ${kept} are kept until the next job`);
    }
  }
}
