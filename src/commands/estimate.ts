import type { EBSClient } from '@aws-sdk/client-ebs';
import { type BlockRef, changedBlocks, snapshotBlocks } from '../aws/blocks.js';
import { createClients, resolveRegion } from '../aws/clients.js';
import { chooseBase, parseLevel } from '../backup/level.js';
import { type ChainLink, volumeLinks } from '../backup/links.js';
import { planUnit } from '../backup/plan.js';
import { UsageError } from '../errors.js';
import { resolveUnit } from '../selection.js';
import { BLOCK_SIZE, GIB } from '../format/container.js';
import type { Level } from '../format/fields.js';
import type { CommandContext } from './context.js';
import type { EstimateOptions } from './options.js';

/** How many past intervals (pairs of consecutive complete snapshots) a prediction averages. */
const HISTORY_INTERVALS = 3;

/** docs/DESIGN.md §7: one worker per 0.5 MiB/s of bandwidth, within the config's 1 to 256. */
export function workersFor(bandwidthMiBps: number): number {
  return Math.min(256, Math.max(1, Math.ceil(bandwidthMiBps / 0.5)));
}

async function count(refs: AsyncIterable<BlockRef>): Promise<number> {
  let n = 0;
  for await (const _ of refs) n++;
  return n;
}

export interface VolumeEstimate {
  volumeId: string;
  sizeGiB: number;
  /** Blocks the stream would hold, or null when no snapshot says. */
  blocks: number | null;
  /** True when the figure is a lower bound (changes after the newest snapshot are not visible). */
  atLeast: boolean;
  /** True when the figure is a prediction from the volume's history, not a measurement. */
  predicted?: boolean;
  basis: string;
}

/**
 * The blocks that changed in each of the last intervals between consecutive complete snapshots of
 * the volume (newest interval first), from ListChangedBlocks.
 */
async function recentChanges(ebs: EBSClient, links: ChainLink[]): Promise<number[]> {
  const complete = links.filter((l) => l.complete).slice(0, HISTORY_INTERVALS + 1);
  const changes: number[] = [];
  for (let i = 0; i + 1 < complete.length; i++) {
    const newer = complete[i];
    const older = complete[i + 1];
    if (newer === undefined || older === undefined) break;
    changes.push(await count(changedBlocks(ebs, older.snapshotId, newer.snapshotId)));
  }
  return changes;
}

/**
 * What a backup of one volume would move, from the snapshots that exist: no snapshot is taken
 * (a real backup takes one at stream time). A Full is estimated from the newest snapshot of the
 * volume; an Incremental or Differential from the blocks changed between its base and the newest
 * snapshot, a lower bound.
 */
async function estimateVolume(
  ebs: EBSClient,
  links: ChainLink[],
  volumeId: string,
  sizeGiB: number,
  level: Level,
  prevJob: string | undefined,
): Promise<VolumeEstimate> {
  const newest = links.find((l) => l.complete) ?? links[0];
  if (level !== 'Full') {
    const choice = chooseBase(links, level, prevJob, sizeGiB);
    if (choice.base && newest && newest.snapshotId !== choice.base.snapshotId) {
      const blocks = await count(changedBlocks(ebs, choice.base.snapshotId, newest.snapshotId));
      return {
        volumeId,
        sizeGiB,
        blocks,
        atLeast: true,
        basis: `changed from job ${choice.base.job} to job ${newest.job}`,
      };
    }
    if (choice.base) {
      // Nothing newer than the base to measure: what changes by the next job is predicted from
      // the volume's recent history, assuming jobs run on a steady schedule.
      const history = await recentChanges(ebs, links);
      if (history.length === 0) {
        return {
          volumeId,
          sizeGiB,
          blocks: 0,
          atLeast: true,
          basis: `no snapshot newer than the base job ${choice.base.job}, and no history to predict from`,
        };
      }
      const mean = Math.round(history.reduce((a, b) => a + b, 0) / history.length);
      return {
        volumeId,
        sizeGiB,
        blocks: mean,
        atLeast: false,
        predicted: true,
        basis: `predicted: the mean change of the last ${history.length} interval(s) between complete jobs (${history.join(', ')} blocks, newest first)`,
      };
    }
  }
  if (!newest) return { volumeId, sizeGiB, blocks: null, atLeast: false, basis: 'no ec2-bpipe snapshot yet' };
  const blocks = await count(snapshotBlocks(ebs, newest.snapshotId));
  return {
    volumeId,
    sizeGiB,
    blocks,
    atLeast: false,
    basis: `written blocks of job ${newest.job}'s snapshot`,
  };
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** `ec2-bpipe estimate`: volumes, blocks and bytes a backup would move, and the workers and time a bandwidth calls for. */
export async function estimateCommand(ctx: CommandContext, options: EstimateOptions): Promise<void> {
  const level = parseLevel(options.level);
  const prevJob = options.prevJob || undefined;
  const raw = options.bandwidth;
  const bandwidth = raw === undefined ? undefined : Number(raw);
  if (bandwidth !== undefined && !(Number.isFinite(bandwidth) && bandwidth > 0)) {
    throw new UsageError(`--bandwidth=${raw}: expected MiB/s, a number above 0.`);
  }
  const clients = createClients(ctx.config.aws, { region: await resolveRegion(ctx.config.aws) });
  try {
    const unit = await resolveUnit(ctx.config, clients.ec2, options);
    const plan = await planUnit(clients.ec2, ctx.config, clients.region, unit);
    let bytes = 0;
    let upperBound = 0;
    const estimates: (VolumeEstimate & { bytes: number })[] = [];
    for (const { volumeId, sizeGiB } of plan.volumes) {
      const links = (await volumeLinks(clients.ec2, ctx.config, volumeId)).filter(
        (l) => l.sizeGiB === sizeGiB,
      );
      const e = await estimateVolume(clients.ebs, links, volumeId, sizeGiB, level, prevJob);
      const volumeBytes = e.blocks === null ? sizeGiB * GIB : e.blocks * BLOCK_SIZE;
      if (e.blocks === null) upperBound += volumeBytes;
      else bytes += volumeBytes;
      estimates.push({ ...e, bytes: volumeBytes });
      const amount =
        e.blocks === null
          ? `up to ${sizeGiB * 2048} blocks`
          : `${e.atLeast ? 'at least ' : e.predicted ? 'about ' : ''}${e.blocks} blocks`;
      if (!options.json) {
        ctx.stdout.write(
          `volume ${volumeId} size=${sizeGiB}GiB ${level}: ${amount} (${mib(volumeBytes)}); ${e.basis}\n`,
        );
      }
    }
    const total = bytes + upperBound;
    const workers = bandwidth === undefined ? undefined : workersFor(bandwidth);
    const minutes = bandwidth === undefined ? undefined : Math.ceil(total / 2 ** 20 / bandwidth / 60);
    if (options.json) {
      const report = {
        unit: unit.resourceId,
        level,
        volumes: estimates,
        totalBytes: total,
        upperBoundBytes: upperBound,
        ...(bandwidth !== undefined && { bandwidthMiBps: bandwidth, workers, minutes }),
      };
      ctx.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    ctx.stdout.write(
      `total ${unit.resourceId}: ${plan.volumes.length} volume(s), ${mib(total)}${upperBound ? ` (of which ${mib(upperBound)} an upper bound)` : ''}\n`,
    );
    if (bandwidth !== undefined) {
      ctx.stdout.write(
        `bandwidth ${bandwidth} MiB/s: workers=${workers}, about ${minutes} min for the data\n`,
      );
    }
  } finally {
    clients.destroy();
  }
}
