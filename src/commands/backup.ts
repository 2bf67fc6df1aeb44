import { runBackup } from '../backup/run.js';
import { buildFinalizer } from '../backup/chain-head.js';
import { checkJobName, parseLevel } from '../backup/level.js';
import { createClients, resolveRegion } from '../aws/clients.js';
import { UsageError } from '../errors.js';
import { logSummary } from '../progress.js';
import { resolveUnit } from '../selection.js';
import type { CommandContext } from './context.js';
import type { BackupOptions } from './options.js';

/** `ec2-bpipe backup`: one unit's stream on stdout, or its finalizer. */
export async function backupCommand(ctx: CommandContext, options: BackupOptions): Promise<void> {
  const job = checkJobName(
    options.job ?? `manual-${new Date().toISOString().replace(/[:.]/g, '-')}`,
    '--job',
  );
  const requestedLevel = parseLevel(options.level);
  // A tar stream on a terminal is a screenful of binary and a wasted snapshot. (The finalizer is
  // JSON: it may go to a terminal.)
  if (!options.finalizer && 'isTTY' in ctx.stdout && ctx.stdout.isTTY === true) {
    throw new UsageError(
      'stdout is a terminal: backup writes a tar stream there. Redirect it (> job.tar), pipe it, or run it from Bacula.',
    );
  }
  const clients = createClients(ctx.config.aws, {
    region: await resolveRegion(ctx.config.aws),
    workers: ctx.config.backup.workers,
  });
  try {
    const unit = await resolveUnit(ctx.config, clients.ec2, options);
    if (options.finalizer) {
      const finalizer = await buildFinalizer(ctx.config, clients.ec2, clients.region, unit, job, ctx.log);
      ctx.stdout.write(`${JSON.stringify(finalizer, null, 2)}\n`);
      return;
    }
    // Every record of the job names it and its unit, for a script that reads the JSON log.
    const log = ctx.log.child({ job, unit: unit.resourceId });
    const started = performance.now();
    const summary = await runBackup(
      {
        config: ctx.config,
        ec2: clients.ec2,
        ebs: clients.ebs,
        ebsCounts: clients.ebsCounts,
        region: clients.region,
        log,
      },
      { unit, job, requestedLevel, ...(options.prevJob && { prevJob: options.prevJob }) },
      ctx.stdout,
    );
    logSummary(
      log,
      'backup',
      `${unit.resourceId} job ${job} (${summary.level}), ${summary.volumes} volume(s)`,
      started,
      summary.blocks,
      { jobLevel: summary.level, volumes: summary.volumes },
    );
  } finally {
    clients.destroy();
  }
}
