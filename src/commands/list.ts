import { resolve } from 'node:path';
import { parseLevel } from '../backup/level.js';
import { acceptedPlan } from '../backup/plan.js';
import { createClients, resolveRegion } from '../aws/clients.js';
import { UsageError } from '../errors.js';
import { refuseOverlap, selectedUnits, type Unit } from '../selection.js';
import { FINALIZER_NAME } from '../format/container.js';
import type { CommandContext } from './context.js';
import type { ListOptions } from './options.js';

/** Bacula cuts generator lines at 1000 bytes; a cut line would run a different command. */
export const MAX_LINE = 999;

export interface LineRequest {
  program: string;
  config: string;
  configName: string;
  region: string;
  job: string;
  level: string;
  prevJob: string;
}

/**
 * Bacula splits a bpipe line on `:` and the command on blanks (quotes are not a shell's), so no
 * value may hold a colon, a blank or a quote.
 */
export function checkValue(what: string, value: string): void {
  const bad = /[:\s"'\\]/.exec(value);
  if (bad) {
    const shown = bad[0] === ':' ? '":"' : bad[0].trim() === '' ? 'a blank' : `"${bad[0]}"`;
    throw new UsageError(
      `${what} "${value}" holds ${shown}, which a Bacula bpipe line cannot carry. Rename or move it.`,
    );
  }
}

function unitFlag(unit: Unit): string {
  return unit.kind === 'instance' ? `--instance=${unit.instanceId}` : `--volume=${unit.volumeIds.join(',')}`;
}

/** The two plugin lines of one unit: its data stream for this job, then the constant-name finalizer. */
export function bpipeLines(request: LineRequest, unit: Unit): string[] {
  const dir = `/@ec2-bpipe/${request.configName}/${request.region}/${unit.resourceId}`;
  const common = `--config=${request.config}`;
  const reader = [
    request.program,
    'backup',
    common,
    unitFlag(unit),
    `--job=${request.job}`,
    `--level=${request.level}`,
    `--prev-job=${request.prevJob}`,
  ].join(' ');
  const finalizer = [
    request.program,
    'backup',
    '--finalizer',
    common,
    unitFlag(unit),
    `--job=${request.job}`,
  ].join(' ');
  // Data writers never launch: the finalizer, restored once after all the data, does.
  const dataWriter = `${request.program} restore ${common} --where=%w --replace=%r --no-launch --skip-incomplete`;
  const finalWriter = `${request.program} restore ${common} --where=%w --replace=%r`;
  const lines = [
    `bpipe:${dir}/${request.job}.tar:${reader}:${dataWriter}`,
    `bpipe:${dir}/${FINALIZER_NAME}:${finalizer}:${finalWriter}`,
  ];
  for (const line of lines) {
    if (Buffer.byteLength(line) > MAX_LINE) {
      throw new UsageError(
        `the plugin line for ${unit.resourceId} would be ${Buffer.byteLength(line)} bytes; Bacula cuts lines at 1000. ` +
          'Shorten the program or config path, or the job name.',
      );
    }
  }
  return lines;
}

/** `ec2-bpipe list`: the FileSet generator. Changes nothing in AWS; a Bacula estimate runs it too. */
export async function listCommand(ctx: CommandContext, options: ListOptions): Promise<void> {
  const { config } = ctx;
  if (config.file === undefined)
    throw new UsageError('list needs --config=FILE (the FileSet line passes it).');
  const job = options.job ?? '';
  if (job === '') throw new UsageError('list needs --job=%j.');
  const level = parseLevel(options.level || 'Full');
  const prevJob = options.prevJob ?? '';
  const program = resolve(process.argv[1] ?? 'ec2-bpipe');
  const configPath = resolve(config.file);
  checkValue('the program path', program);
  checkValue('the config path', configPath);
  checkValue('the job name', job);
  if (prevJob !== '') checkValue('the previous job name', prevJob);
  const clients = createClients(config.aws, { region: await resolveRegion(config.aws) });
  try {
    const units = await selectedUnits(config, clients.ec2);
    await refuseOverlap(config, clients.ec2, units);
    if (units.length === 0) {
      if (config.bacula.allowEmpty) {
        ctx.log.info(`${config.file}: the selection is empty; nothing to back up (allow-empty)`);
        return;
      }
      throw new UsageError(
        `${config.file}: the selection matches no instance or volume in ${clients.region}; set [bacula] allow-empty = yes if that is fine.`,
      );
    }
    const request = {
      program,
      config: configPath,
      configName: config.name,
      region: clients.region,
      job,
      level,
      prevJob,
    };
    // What backup would refuse is refused here, before Bacula starts a reader for it.
    for (const unit of units) await acceptedPlan(clients.ec2, config, clients.region, unit);
    const lines = units.flatMap((unit) => bpipeLines(request, unit));
    for (const unit of units) ctx.log.info(`job ${job} (${level}): ${unit.kind} ${unit.resourceId}`);
    ctx.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    clients.destroy();
  }
}
