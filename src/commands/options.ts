/**
 * Every command's own flags, each declared once: a zod schema whose output is the options type the
 * command receives, with the flag commander declares and the line --help shows registered on it.
 * cli.ts builds each command's options from these tables and parses commander's untyped values
 * through them, so a flag, its type and its help cannot drift apart. The flags that set a config
 * key are cli.ts's (ConfigFlag): config.ts's schema is their type.
 */
import * as z from 'zod/mini';

/** What commander needs of a flag: its syntax (`--to-dir <dir>`, `--force`, `--no-launch`), its help. */
export interface FlagMeta {
  flag: string;
  description: string;
  hidden?: boolean;
  choices?: readonly string[];
  /** What an absent flag means, as --help says it (the schema gives the same default). */
  default?: string;
}

/** The flags, by their schema: cli.ts reads each option's flag from here. */
export const FLAGS = z.registry<FlagMeta>();

/** A flag that takes a value: absent is undefined. */
function value(flag: string, description: string, extra: Partial<FlagMeta> = {}) {
  return z.optional(z.string()).register(FLAGS, { flag, description, ...extra });
}

/** A flag that takes a value, or the default the help shows. */
function valueOr(fallback: string, flag: string, description: string, extra: Partial<FlagMeta> = {}) {
  return z._default(z.string(), fallback).register(FLAGS, { flag, description, default: fallback, ...extra });
}

/** A switch: false unless given. */
function on(flag: string, description: string) {
  return z._default(z.boolean(), false).register(FLAGS, { flag, description });
}

/** A `--no-…` switch: true unless given. */
function off(flag: string, description: string) {
  return z._default(z.boolean(), true).register(FLAGS, { flag, description });
}

/** Every command's connection and logging flags (the config keys among them are cli.ts's). */
export const commonFlags = z.object({
  config: value('--config <file>', 'INI config file (see examples/ec2-bpipe.ini)'),
  region: value('--region <region>', 'AWS region (backup: the source; restore: the target)'),
  logFormat: z._default(z.enum(['human', 'json']), 'human').register(FLAGS, {
    flag: '--log-format <format>',
    description: 'log line format on stderr',
    choices: ['human', 'json'],
    default: 'human',
  }),
  logLevel: valueOr('info', '--log-level <level>', 'least severe level logged', {
    choices: ['debug', 'info', 'warn', 'error'],
  }),
});
export type CommonOptions = z.output<typeof commonFlags>;

/** The unit a backup, an estimate or `points` works on, instead of the config's selection. */
const unitFlags = {
  instance: value('--instance <id>', 'back up this instance (all its EBS volumes, crash-consistent)'),
  volume: value('--volume <ids>', 'back up these volumes (comma-separated)'),
};

export const backupFlags = z.object({
  ...unitFlags,
  job: value('--job <name>', 'job name recorded in the stream and in snapshot tags (Bacula: %j)'),
  level: valueOr('Full', '--level <level>', 'backup level (Bacula: %l)'),
  prevJob: value('--prev-job <name>', 'job the level is based on (Bacula: %S)'),
  finalizer: on('--finalizer', 'write the chain finalizer (restore.json) instead of data'),
});
export type BackupOptions = z.output<typeof backupFlags>;

export const restoreFlags = z.object({
  toDir: value('--to-dir <dir>', 'write raw images and metadata under this directory'),
  where: value(
    '--where <path>',
    'Bacula restore location (%w): empty or / restores to AWS, else to files under it',
  ),
  replace: value(
    '--replace <code>',
    'Bacula replace code (%r) for files: a always, w ifnewer, o ifolder, n never',
  ),
  force: on(
    '--force',
    'with --to-dir: overwrite images that hold a newer restore point (refused without it)',
  ),
  json: on('--json', 'with --dry-run: print the plan as one JSON object; with --test: the report'),
  point: value(
    '--point <job>',
    'launch from the snapshots of this job (or latest) that AWS still holds; reads no stream',
  ),
  instance: value('--instance <id>', 'with --point: the instance whose point it is'),
  test: on(
    '--test',
    'restore test: launch, wait for the status checks, then remove everything the test created',
  ),
  launch: off('--no-launch', 'restore snapshots only, launch no instance'),
  skipIncomplete: on(
    '--skip-incomplete',
    'skip, with a warning, a stream cut short by a failed backup (Bacula data lines)',
  ),
  volume: value(
    '--volume <ids>',
    'restore only these volumes of the stream (comma-separated); launches no instance',
  ),
  dryRun: on(
    '--dry-run',
    'verify the streams, check the chain and every override, print the plan; create nothing',
  ),
  acceptFormat1: on(
    '--accept-format-1',
    'restore format 1 streams (ec2-bpipe 0.1), which cannot prove where each block belongs',
  ),
});
/** The restore's flags, and the stream files and finalizers it applies in order (stdin when none). */
export type RestoreOptions = z.output<typeof restoreFlags> & { files: string[] };

export const verifyFlags = z.object({
  json: on('--json', 'print one JSON object instead of lines'),
});
/** The verify's flags, and the stream files it checks, oldest first (stdin when none). */
export type VerifyOptions = z.output<typeof verifyFlags> & { files: string[] };

export const listFlags = z.object({
  job: value('--job <name>', 'Bacula %j'),
  level: value('--level <level>', 'Bacula %l'),
  prevJob: value('--prev-job <name>', 'Bacula %S'),
});
export type ListOptions = z.output<typeof listFlags>;

export const pointsFlags = z.object({
  ...unitFlags,
  json: on('--json', 'print JSON instead of a table'),
});
export type PointsOptions = z.output<typeof pointsFlags>;

export const estimateFlags = z.object({
  ...unitFlags,
  level: value('--level <level>', 'level to estimate: Full (default), Incremental or Differential'),
  prevJob: value('--prev-job <name>', 'job an Incremental or Differential would be based on'),
  bandwidth: value(
    '--bandwidth <MiB/s>',
    'available bandwidth in MiB/s: prints the workers and time it calls for',
  ),
  json: on('--json', 'print JSON instead of lines'),
});
export type EstimateOptions = z.output<typeof estimateFlags>;

export const doctorFlags = z.object({
  baculaFdConf: value(
    '--bacula-fd-conf <file>',
    "the file daemon's config (default: /etc/bacula/bacula-fd.conf)",
  ),
  json: on('--json', 'print JSON instead of a checklist'),
});
export type DoctorOptions = z.output<typeof doctorFlags>;
