import { statSync } from 'node:fs';
import { refuseUnknownProfile } from '../aws/profile.js';
import { describeError, RuntimeFailure, UsageError } from '../errors.js';
import { logSummary } from '../progress.js';
import { type Classified, classify, type Input, streamInputs } from '../inputs.js';
import type { AppliedStream } from '../restore/aws/applied.js';
import { parsePointChoice, type PointChoice } from '../restore/aws/point.js';
import { volumesUnit } from '../selection.js';
import { INSTANCE_ID } from '../ids.js';
import { onInterruptCleanup } from '../lifecycle.js';
import { ApplicabilityCheck } from '../restore/aws/applicable.js';
import { FilesRestore } from '../restore/files/restore.js';
import { parseReplace } from '../restore/files/replace.js';
import { parseVolumeSelection } from '../restore/volume-filter.js';
import { StreamDefect } from '../stream/reader.js';
import type { CommandContext } from './context.js';
import type { RestoreOptions } from './options.js';

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
  const point = pointRequest(options, dir, files);
  if (point !== undefined && ctx.config.restore.kmsKeyId !== undefined)
    throw new UsageError(
      '--point launches the snapshots as they are, in their own key: [restore] kms-key-id (--kms-key-id) needs a restore from the stream.',
    );
  // A point restore reads no stream: not even stdin.
  const inputs = point === undefined ? await streamInputs(files, ctx.stdin) : [];
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
      point !== undefined
        ? `point ${options.point ?? ''} of ${point.resourceId} from its snapshots, no stream`
        : `${streams} stream(s)${finalizers ? ' and the finalizer' : ''} to ${to === 'aws' ? 'AWS' : (dir ?? '')}`,
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
  if (options.json && !options.dryRun && !options.test) {
    throw new UsageError(
      '--json prints the plan of a --dry-run or the report of a --test; give one of them with it.',
    );
  }
  if (options.test && (dir !== undefined || !options.launch || options.dryRun))
    throw new UsageError(
      '--test launches an instance and removes it: not with --to-dir, --where, --no-launch or --dry-run.',
    );
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
    const [{ AwsRestore }, { RestoreTest }, { closeCreations }] = await Promise.all([
      import('../restore/aws/restore.js'),
      import('../restore/aws/restore-test.js'),
      import('../aws/creation-gate.js'),
    ]);
    const test = options.test ? new RestoreTest(ctx.log) : undefined;
    const target = new AwsRestore(test ? test.configure(ctx.config) : ctx.config, ctx.log, print, {
      launch,
      dryRun: options.dryRun,
      json: options.json,
      acceptFormat1: options.acceptFormat1,
      ...(volumes && { volumes }),
      ...(test && { testId: test.id }),
    });
    /**
     * A test removes what it created once, at its end or on a signal. The gate closes first, so
     * nothing the run is still launching appears after the removal has looked.
     */
    let removal: Promise<string> | undefined;
    const remove = (): Promise<string> =>
      (removal ??= closeCreations()
        .then(() => test?.remove(target.regions()))
        .then((r) =>
          r === undefined
            ? ''
            : `the restore test removed ${r.terminated.length} instance(s), ${r.deregistered.length} image(s), ${r.volumes.length} volume(s), ${r.snapshots.length} snapshot(s)` +
              (r.left.length ? `; left ${r.left.join('; ')}` : ''),
        ));
    const withdraw = test ? onInterruptCleanup(remove) : () => undefined;
    try {
      let head: AppliedStream | undefined;
      if (point !== undefined) head = await target.applyPoint(point.resourceId, point.choice);
      for (const [n, input] of inputs.entries()) {
        const item = await next(input);
        try {
          head =
            item.kind === 'stream'
              ? await target.apply(item.input, { last: n === inputs.length - 1 })
              : await target.applyFinalizer(item.finalizer, item.name);
        } catch (err) {
          if (!skippable(err)) throw err;
        }
      }
      test?.stage('restored');
      // One instance for the whole chain, from its head: the last stream applied.
      const launched =
        head?.launched !== undefined
          ? await head.launched
          : head && (launch || options.dryRun)
            ? await target.finish(head)
            : undefined;
      if (test) {
        if (head === undefined || launched === undefined)
          throw new UsageError(
            '--test needs an instance to launch: give the streams or the point of an instance.',
          );
        await test.check(head.clients.ec2, head.clients.region, launched);
      }
    } catch (err) {
      // A refusal (exit 2) stays one: the config or the command line is to fix, not the backup.
      if (test === undefined || err instanceof UsageError) throw err;
      test.report.failure = describeError(err);
    } finally {
      if (test) {
        const said = await remove();
        withdraw();
        ctx.log.info(said);
      }
      target.close();
    }
    if (!options.dryRun) summarize('aws', target.blocksRead);
    if (test) {
      const { report } = test;
      const left = report.removed?.left ?? [];
      ctx.stdout.write(
        options.json ? `${JSON.stringify(report, null, 2)}\n` : `${test.lines().join('\n')}\n`,
      );
      const leftover = left.length ? `; it left ${left.join('; ')}: remove them by hand` : '';
      if (!report.passed)
        throw new RuntimeFailure(
          `restore test ${report.test} failed: ${report.failure ?? 'no verdict'}${leftover}`,
        );
      if (leftover) throw new RuntimeFailure(`restore test ${report.test} passed${leftover}`);
    }
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

/**
 * `--point` (with `--instance`, or `--volume` naming a volumes unit): the unit and point of a
 * restore from snapshots. Refuses what cannot go with it: stream files, a restore to files, and a
 * new KMS key (the snapshots are launched as they are; re-encrypting needs a stream restore).
 */
function pointRequest(
  options: RestoreOptions,
  dir: string | undefined,
  files: string[],
): { resourceId: string; choice: PointChoice } | undefined {
  if (options.point === undefined) {
    if (options.instance !== undefined)
      throw new UsageError(
        '--instance names the unit of a --point restore; a stream restore takes it from the stream.',
      );
    return undefined;
  }
  const choice = parsePointChoice(options.point);
  if (files.length)
    throw new UsageError(
      '--point launches from snapshots AWS holds and reads no stream: give no stream files.',
    );
  if (dir !== undefined) throw new UsageError('--point restores to AWS: not with --to-dir or --where.');
  if (options.instance !== undefined) {
    if (!INSTANCE_ID.test(options.instance))
      throw new UsageError(`--instance=${options.instance}: expected an instance id (i-...).`);
    return { resourceId: options.instance, choice };
  }
  const ids = parseVolumeSelection(options.volume);
  if (ids === undefined)
    throw new UsageError('--point needs the unit: --instance=ID, or --volume=ID,... for a volumes unit.');
  return { resourceId: volumesUnit([...ids]).resourceId, choice };
}
