import { join } from 'node:path';
import { Argument, Command, CommanderError, Option, type OptionValues } from 'commander';
import type * as z from 'zod/mini';
import type { Logger } from 'pino';
import { describeAwsFailure } from './aws/failure.js';
import type { CommandContext } from './commands/context.js';
import {
  backupFlags,
  type CommonOptions,
  commonFlags,
  doctorFlags,
  estimateFlags,
  FLAGS,
  listFlags,
  pointsFlags,
  restoreFlags,
  verifyFlags,
} from './commands/options.js';
import { type CompletionSpec, completionScript, SHELLS, type Shell } from './commands/completion.js';
import { manPage } from './commands/man.js';
import {
  type Config,
  defaultConfig,
  type KeyOf,
  loadConfig,
  type SectionName,
  setKey,
  validate,
} from './config.js';
import { armCrashPoints } from './crash-points.js';
import { exitCodeOf, messageOf, RuntimeFailure, UsageError } from './errors.js';
import { guardProcess, interruptedState, resetNotes } from './lifecycle.js';
import { startLiveDisplay, stopLiveDisplay } from './display.js';
import { captureProcessWarnings, createLogger, type LogFormat } from './log.js';

export { VERSION } from './version.js';
import { VERSION } from './version.js';

/**
 * A flag that sets a config key, validated exactly as the INI file is: declared once, here, with
 * the key it sets, which the type system checks is a key of that section. The flag is the key's
 * name unless `flag` says otherwise; `value` is its argument, or none for a yes/no key.
 */
type ConfigFlag = {
  [K in SectionName]: {
    section: K;
    key: KeyOf<K>;
    flag?: string;
    value?: string;
    description: string;
    hidden?: boolean;
  };
}[SectionName];

/** Every command's connection flags. */
const COMMON_FLAGS: ConfigFlag[] = [
  {
    section: 'aws',
    key: 'profile',
    value: '<name>',
    description: 'AWS shared-config profile ([aws] profile)',
  },
  {
    section: 'aws',
    key: 'endpoint-url',
    value: '<url>',
    description: 'AWS endpoint URL, for a VPC endpoint or a test ([aws] endpoint-url)',
  },
];

/** backup's flags that override [backup] keys. */
const BACKUP_FLAGS: ConfigFlag[] = [
  { section: 'backup', key: 'workers', value: '<n>', description: 'parallel EBS block reads (default 8)' },
];

/** restore's flags that override [restore] and [bacula] keys. */
const RESTORE_FLAGS: ConfigFlag[] = [
  { section: 'restore', key: 'workers', value: '<n>', description: 'parallel EBS block writes (default 8)' },
  // The name restore's --workers had before; kept so that existing Bacula jobs keep working.
  {
    section: 'restore',
    key: 'workers',
    flag: 'restore-workers',
    value: '<n>',
    description: 'the former name of --workers',
    hidden: true,
  },
  {
    section: 'restore',
    key: 'instance-type',
    value: '<type>',
    description: 'launch with this instance type',
  },
  {
    section: 'restore',
    key: 'subnet-id',
    value: '<id>',
    description: 'launch in this subnet (its AZ wins over the stored one)',
  },
  {
    section: 'restore',
    key: 'security-group-ids',
    value: '<ids>',
    description: 'comma-separated security groups',
  },
  { section: 'restore', key: 'key-name', value: '<name>', description: 'key pair for the new instance' },
  { section: 'restore', key: 'placement-group', value: '<name>', description: 'placement group' },
  {
    section: 'restore',
    key: 'partition-number',
    value: '<n>',
    description: 'partition in the placement group',
  },
  {
    section: 'restore',
    key: 'kms-key-id',
    value: '<arn>',
    description: 're-encrypt restored snapshots with this KMS key',
  },
  { section: 'restore', key: 'keep-image', description: 'keep the AMI registered after launch' },
  {
    section: 'restore',
    key: 'iam-instance-profile',
    value: '<profile>',
    description: 'launch with this instance profile (an ARN or a name), or none; the stored one by default',
  },
  {
    section: 'restore',
    key: 'keep-private-ip',
    description: 'launch with the stored private IPv4 addresses (refused when not free)',
  },
  {
    section: 'restore',
    key: 'ena-support',
    description:
      'register the image with ENA: the restored OS has the ENA driver, so an ENA-only type can run it',
  },
  {
    section: 'restore',
    key: 'from-snapshots',
    value: '<mode>',
    description:
      'auto: restore a stream whose snapshots AWS still holds from them, still verifying it; never: write every block',
  },
  {
    section: 'restore',
    key: 'create-volume',
    description: 'volume streams: also create a volume from each restored snapshot',
  },
  { section: 'restore', key: 'availability-zone', value: '<az>', description: 'zone for --create-volume' },
  { section: 'bacula', key: 'state-dir', value: '<dir>', description: 'where the restore journal lives' },
];

const flagName = (f: ConfigFlag): string => f.flag ?? f.key;

/** commander's property for a flag: `--instance-type` is `instanceType`. */
const optionName = (f: ConfigFlag): string =>
  flagName(f).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function addConfigFlags(cmd: Command, flags: ConfigFlag[]): Command {
  for (const f of flags) {
    const option = new Option(`--${flagName(f)}${f.value === undefined ? '' : ` ${f.value}`}`, f.description);
    cmd.addOption(f.hidden === true ? option.hideHelp() : option);
  }
  return cmd;
}

/** Loads the config (or the defaults), then applies the flags on top. */
function buildConfig(
  common: CommonOptions,
  options: OptionValues,
  section: 'backup' | 'restore',
  /** The command's own flags that set config keys (BACKUP_FLAGS, RESTORE_FLAGS). */
  commandFlags: ConfigFlag[],
): Config {
  const config = common.config !== undefined ? loadConfig(common.config) : defaultConfig();
  if (common.region !== undefined)
    setKey(config, section === 'restore' ? 'restore' : 'aws', 'region', common.region, '--region');
  for (const f of [...COMMON_FLAGS, ...commandFlags]) {
    const value: unknown = options[optionName(f)];
    if (value === undefined) continue;
    setKey(
      config,
      f.section,
      f.key,
      typeof value === 'string' ? value : value === true ? 'yes' : 'no',
      `--${flagName(f)}`,
    );
  }
  validate(config, common.config ?? 'command line');
  return config;
}

/** The `list` log: [bacula] log-file, else list.log in the state dir; nowhere if neither can be opened. */
function listLogger(config: Config, format: LogFormat, level: string): Logger {
  const file = config.bacula.logFile ?? join(config.bacula.stateDir, 'list.log');
  try {
    return createLogger({ format, level, file });
  } catch {
    return createLogger({ format, level, file: '/dev/null' });
  }
}

/**
 * Hands one command its typed options, parsed from commander's untyped values through the
 * command's flag table (commands/options.ts), and runs it. Each command module is loaded only
 * when it runs, so `list` does not load the EBS client, for one.
 */
async function dispatch(
  name: string,
  ctx: CommandContext,
  options: OptionValues,
  args: string[],
): Promise<void> {
  switch (name) {
    case 'backup':
      return (await import('./commands/backup.js')).backupCommand(ctx, backupFlags.parse(options));
    case 'restore':
      return (await import('./commands/restore.js')).restoreCommand(ctx, {
        ...restoreFlags.parse(options),
        files: args,
      });
    case 'verify':
      return (await import('./commands/verify.js')).verifyCommand(ctx, {
        ...verifyFlags.parse(options),
        files: args,
      });
    case 'list':
      return (await import('./commands/list.js')).listCommand(ctx, listFlags.parse(options));
    case 'points':
      return (await import('./commands/points.js')).pointsCommand(ctx, pointsFlags.parse(options));
    case 'estimate':
      return (await import('./commands/estimate.js')).estimateCommand(ctx, estimateFlags.parse(options));
    case 'doctor':
      return (await import('./commands/doctor.js')).doctorCommand(ctx, doctorFlags.parse(options));
    default:
      throw new UsageError(`unknown command ${name}`);
  }
}

/** Adds a flag table's options (commands/options.ts) to a command, each with its help line. */
function addFlags(cmd: Command, table: z.ZodMiniObject): Command {
  for (const [name, schema] of Object.entries(table.shape)) {
    const meta = FLAGS.get(schema);
    if (meta === undefined) throw new Error(`option ${name} has no flag in commands/options.ts`);
    const option = new Option(meta.flag, meta.description);
    if (meta.choices !== undefined) option.choices(meta.choices);
    if (meta.default !== undefined) option.default(meta.default);
    if (meta.hidden === true) option.hideHelp();
    cmd.addOption(option);
  }
  return cmd;
}

export function buildProgram(
  run: (name: string, common: CommonOptions, options: OptionValues, args: string[]) => Promise<void>,
): Command {
  const program = new Command('ec2-bpipe')
    .description('Back up EC2 instances and EBS volumes into Bacula through bpipe, and restore them.')
    .version(VERSION)
    // Inherited by the subcommands below: commander errors come back to run() and exit 2, not 1.
    .exitOverride()
    // --help and --version answer on stdout, as asked for (`$(ec2-bpipe --version)`); errors on stderr.
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
      // A usage error says what was wrong in one line, and where the rest is: not the whole help.
      outputError: (s, write) => write(`${s.trimEnd()} (ec2-bpipe <command> --help lists the options)\n`),
    });

  const common = (cmd: Command): Command => addConfigFlags(addFlags(cmd, commonFlags), COMMON_FLAGS);

  const action = (name: string) =>
    function (this: Command, ...rest: unknown[]): Promise<void> {
      const args = rest.find((r): r is string[] => Array.isArray(r) && r.every((a) => typeof a === 'string'));
      const options = this.opts();
      return run(name, commonFlags.parse(options), options, args ?? []);
    };

  addConfigFlags(addFlags(common(program.command('backup')), backupFlags), BACKUP_FLAGS)
    .description('Snapshot, read the blocks and write one tar stream to stdout')
    .action(action('backup'));

  addConfigFlags(
    addFlags(common(program.command('restore')), restoreFlags)
      .description('Read streams (files, or stdin) and restore them to AWS or to a directory')
      .argument('[files...]', 'stream files, applied in the order given; stdin when none'),
    RESTORE_FLAGS,
  ).action(action('restore'));

  addFlags(common(program.command('verify')), verifyFlags)
    .description('Check streams without AWS: structure, every block digest, aggregates, end marker')
    .argument('[files...]', 'stream files, oldest first (their chain order is checked); stdin when none')
    .action(action('verify'));

  addFlags(common(program.command('list')), listFlags)
    .description('Print the bpipe plugin lines for a Bacula job (FileSet generator)')
    .action(action('list'));

  addFlags(common(program.command('points')), pointsFlags)
    .description("List the restore points of the config's units, from the tags of their snapshots")
    .action(action('points'));

  addFlags(common(program.command('estimate')), estimateFlags)
    .description('Say what a backup would move and how many workers the bandwidth calls for')
    .action(action('estimate'));

  addFlags(common(program.command('doctor')), doctorFlags)
    .description(
      'Check the setup before the first job: Node, state directory, bpipe plugin, credentials, every permission',
    )
    .action(action('doctor'));

  program
    .command('completion')
    .description('Print a shell completion script: source <(ec2-bpipe completion bash)')
    .addArgument(new Argument('<shell>', 'the shell').choices(SHELLS))
    .action(function (this: Command, shell: Shell) {
      process.stdout.write(completionScript(shell, completionSpec(program)));
    });

  program
    .command('man')
    .description('Print the manual page (roff): ec2-bpipe man | man -l -')
    .action(function (this: Command) {
      process.stdout.write(manPage(program));
    });

  return program;
}

/** The commands and long options of the program, as the completion script offers them. */
function completionSpec(program: Command): CompletionSpec {
  const choices: Record<string, string[]> = {};
  const commands = program.commands.map((command) => {
    const options = command.options.filter((o) => !o.hidden && o.long !== undefined);
    for (const o of options) if (o.argChoices && o.long) choices[o.long] = o.argChoices;
    return {
      name: command.name(),
      description: command.description(),
      options: options.flatMap((o) =>
        o.long ? [{ flag: o.long, takesValue: o.required || o.optional, description: o.description }] : [],
      ),
    };
  });
  // Levels are free text for Bacula's sake (any case), but these three are what a user types.
  choices['--level'] = ['Full', 'Incremental', 'Differential'];
  choices['--replace'] = ['a', 'w', 'o', 'n'];
  // The word after `completion` is its shell.
  choices.completion = SHELLS;
  return { commands, choices };
}

export interface RunIo {
  stdout: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
}

/** What the process-level failure path needs to know of the command under way. */
const current: { log: Logger | undefined; command: string } = { log: undefined, command: '' };

/** Runs one command line; resolves to the process exit code. */
export async function run(
  argv: string[],
  io: RunIo = { stdout: process.stdout, stdin: process.stdin },
): Promise<number> {
  let log: Logger | undefined;
  let command = '';
  let exitCode = 0;
  resetNotes();
  const program = buildProgram(async (name, common, options, args) => {
    command = name;
    current.command = name;
    armCrashPoints();
    const format = common.logFormat;
    // `list` runs as Bacula's FileSet generator: its stderr would become plugin lines, so it
    // logs to a file, and never before the config says which.
    log = createLogger({ format, level: common.logLevel, ...(name === 'list' && { file: '/dev/null' }) });
    current.log = log;
    captureProcessWarnings(log);
    const config =
      name === 'restore'
        ? buildConfig(common, options, 'restore', RESTORE_FLAGS)
        : buildConfig(common, options, 'backup', name === 'backup' ? BACKUP_FLAGS : []);
    if (name === 'list') {
      log = listLogger(config, format, common.logLevel);
      current.log = log;
      captureProcessWarnings(log);
    }
    // An operator's terminal gets a live progress display; Bacula, pipes and cron get log lines.
    if (format === 'human' && (name === 'backup' || name === 'restore')) await startLiveDisplay();
    await dispatch(name, { config, log, stdout: io.stdout, stdin: io.stdin }, options, args);
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    stopLiveDisplay();
    if (err instanceof CommanderError) {
      // --help and --version end here with code 0; everything else is a usage error.
      return err.exitCode === 0 ? 0 : 2;
    }
    exitCode = exitCodeOf(err);
    const state = interruptedState();
    const what = describeAwsFailure(err) ?? messageOf(err);
    const message = state ? `${what}; ${state}` : what;
    if (command === 'list') io.stdout.write(`ec2-bpipe list: ${message.replace(/\s+/g, ' ')}\n`);
    if (log) log.error(message);
    else process.stderr.write(`error: ${message}\n`);
    if (!(err instanceof UsageError) && !(err instanceof RuntimeFailure) && log) {
      log.debug({ stack: err instanceof Error ? err.stack : undefined }, 'unexpected failure');
    }
  } finally {
    stopLiveDisplay();
  }
  return exitCode;
}

export async function main(argv: string[]): Promise<void> {
  const guard = guardProcess(() => current);
  const code = await run(argv);
  guard.settle();
  process.exitCode = code;
}
