import { statSync } from 'node:fs';
import { refuseUnknownProfile } from '../aws/profile.js';
import { UsageError } from '../errors.js';
import { logSummary } from '../progress.js';
import { type Classified, classify, type Input, streamInputs } from '../inputs.js';
import type { AppliedStream } from '../restore/aws.js';
import { ApplicabilityCheck } from '../restore/applicable.js';
import { FilesRestore, parseReplace } from '../restore/files.js';
import { parseVolumeSelection } from '../restore/selection.js';
import { StreamDefect } from '../stream/reader.js';
import type { CommandContext } from './context.js';

export interface RestoreOptions {
  /** Stream files and finalizers, applied in the order given; stdin when none. */
  files: string[];
  /** Restore to raw images under this directory. */
  toDir?: string;
  /** Bacula's %w: empty or / restores to AWS, anything else to files under it. */
  where?: string;
  /** Bacula's %r: a (always, the default), w (ifnewer), o (ifolder), n (never) for files. */
  replace?: string;
  /** Launch an instance from the chain's head (false with --no-launch). */
  launch: boolean;
  /** Skip, with a warning, a stream a failed backup cut short (Bacula's data writers). */
  skipIncomplete: boolean;
  /** Verify and plan a restore to AWS; create nothing. */
  dryRun: boolean;
  /** Restore only these volumes (comma-separated ids), to AWS or to files. */
  volume?: string;
  /** Restore format 1 streams (ec2-bpipe 0.1), which prove less. */
  acceptFormat1: boolean;
  /** With --dry-run: the plan as one JSON object. */
  json: boolean;
  /** With --to-dir: overwrite images that hold a newer restore point. */
  force?: boolean;
}

/**
 * `ec2-bpipe restore`: to a directory with --to-dir (or a Bacula --where other than / and empty),
 * else to AWS. Streams are applied in the order given.
 */
export async function restoreCommand(ctx: CommandContext, options: RestoreOptions): Promise<void> {
  const { toDir, where, files } = options;
  if (toDir !== undefined && where !== undefined) throw new UsageError('Give --to-dir or --where, not both.');
  if (toDir === '') throw new UsageError('--to-dir needs a directory.');
  const dir = toDir ?? (where !== undefined && where !== '' && where !== '/' ? where : undefined);
  if (dir !== undefined) refuseNonDirectory(dir, toDir !== undefined ? '--to-dir' : '--where');
  const replace = parseReplace(options.replace);
  if (options.force && (toDir === undefined || (options.replace !== undefined && replace !== 'always'))) {
    throw new UsageError(
      toDir === undefined
        ? '--force guards a restore with --to-dir; under Bacula (--where) the replace code (%r) decides.'
        : `--force overwrites; --replace=${options.replace ?? ''} keeps: give one of them.`,
    );
  }
  /**
   * By hand (--to-dir, no --replace), images that hold a newer restore point are not rolled back
   * without --force. Bacula's --where keeps %r's meaning: always, unless the job says otherwise.
   */
  const guard = toDir !== undefined && options.replace === undefined && !options.force;
  const volumes = parseVolumeSelection(options.volume);
  // A restore to AWS takes its Region from the stream, not resolveRegion: its profile is checked here.
  if (dir === undefined) await refuseUnknownProfile(ctx.config.aws);
  const inputs = await streamInputs(files, ctx.stdin);
  const started = performance.now();
  /** What the restore printed (images, snapshots, the instance): the summary record lists it. */
  const results: string[] = [];
  const print = (line: string): void => {
    results.push(line);
    ctx.stdout.write(`${line}\n`);
  };
  let streams = 0;
  let finalizers = 0;
  /** The next input, classified and counted for the summary. */
  const next = async (input: Input): Promise<Classified> => {
    const item = await classify(input);
    if (item.kind === 'stream') streams++;
    else finalizers++;
    return item;
  };
  const summarize = (to: 'aws' | 'files', blocks: number): void =>
    logSummary(
      ctx.log,
      'restore',
      `${streams} stream(s)${finalizers ? ' and the finalizer' : ''} to ${to === 'aws' ? 'AWS' : (dir ?? '')}`,
      started,
      blocks,
      { to, streams, results },
    );
  /**
   * Under Bacula (the data lines of `list`), a stream cut short is what a failed reader left in
   * the catalog. Nothing of it is applied either way; skipping it, with a warning, lets the rest
   * of the chain restore. A later link that needed it is still refused, and so is a finalizer
   * whose head it was, so skipping never hides missing data.
   */
  const skippable = (err: unknown): boolean => {
    if (!(options.skipIncomplete && err instanceof StreamDefect && err.incomplete)) return false;
    ctx.log.warn(
      `${err.message}; skipped: a failed backup leaves its stream incomplete, and nothing of it was applied`,
    );
    return true;
  };
  if (options.json && !options.dryRun) {
    throw new UsageError('--json prints the plan of a --dry-run; give both, or neither.');
  }
  if (options.dryRun && dir !== undefined) {
    throw new UsageError(
      '--dry-run plans a restore to AWS. For a restore to files, `ec2-bpipe verify` checks the streams without writing anything.',
    );
  }
  if (dir === undefined) {
    // A restore to AWS makes new snapshots, images and instances: it replaces nothing.
    if (replace !== 'always')
      ctx.log.info(
        `replace=${replace} has nothing to keep: a restore to AWS creates new resources and replaces none`,
      );
    const launch = options.launch;
    // Loaded only here: a restore to files needs none of the AWS SDK (docs/PERFORMANCE.md).
    const { AwsRestore } = await import('../restore/aws.js');
    const target = new AwsRestore(ctx.config, ctx.log, print, {
      launch,
      dryRun: options.dryRun,
      json: options.json,
      acceptFormat1: options.acceptFormat1,
      ...(volumes && { volumes }),
    });
    try {
      let head: AppliedStream | undefined;
      for (const input of inputs) {
        const item = await next(input);
        try {
          head =
            item.kind === 'stream'
              ? await target.apply(item.input)
              : await target.applyFinalizer(item.finalizer, item.name);
        } catch (err) {
          if (!skippable(err)) throw err;
        }
      }
      // One instance for the whole chain, from its head: the last stream applied.
      if (head && (launch || options.dryRun)) await target.finish(head);
    } finally {
      target.close();
    }
    if (!options.dryRun) summarize('aws', target.blocksRead);
    return;
  }
  new ApplicabilityCheck(ctx.config, ctx.log).check({ to: 'files' }, `a restore to files under ${dir}`);
  const target = new FilesRestore(
    dir,
    ctx.log,
    toDir !== undefined ? 'plain' : 'catalog',
    guard ? 'refuse-rollback' : replace,
    volumes,
    options.acceptFormat1,
  );
  for (const input of inputs) {
    const item = await next(input);
    try {
      const { images, kept } =
        item.kind === 'stream'
          ? await target.apply(item.input)
          : await target.close(item.finalizer, item.name);
      // What the replace code kept is said as kept: the image there is not this stream's.
      for (const path of images) print(`${kept ? 'kept' : 'image'} ${path}`);
    } catch (err) {
      if (!skippable(err)) throw err;
    }
  }
  summarize('files', target.blocksRead);
}

/** A restore target that exists must be a directory: a file there is a mistake in the command line. */
function refuseNonDirectory(dir: string, option: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch {
    // Missing (it is created), or unreadable: the restore then says what it could not do.
    return;
  }
  if (!isDirectory)
    throw new UsageError(
      `${option}=${dir}: it exists and is not a directory; name a directory to restore the images under.`,
    );
}
