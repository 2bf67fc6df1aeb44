import type { Handler } from '../cli.js';
import { RuntimeFailure, UsageError } from '../errors.js';
import { streamInputs } from '../inputs.js';
import { FilesRestore } from './files.js';

/** `ec2-bpipe restore`: to a directory with --to-dir (or a Bacula --where other than / and empty), else to AWS. */
export const restoreCommand: Handler = async (ctx, options, files) => {
  const toDir = options.toDir as string | undefined;
  const where = options.where as string | undefined;
  if (toDir !== undefined && where !== undefined) throw new UsageError('Give --to-dir or --where, not both.');
  const dir = toDir ?? (where !== undefined && where !== '' && where !== '/' ? where : undefined);
  if (dir === undefined) {
    throw new RuntimeFailure(
      'Restore to AWS is not available in this version yet; restore to files with --to-dir=DIR.',
    );
  }
  if (dir === '') throw new UsageError('--to-dir needs a directory.');
  const target = new FilesRestore(dir, ctx.log);
  for (const input of await streamInputs(files, ctx.stdin)) {
    const written = await target.apply(input);
    for (const path of written.filter((p) => p.endsWith('.ebs'))) ctx.stdout.write(`image ${path}\n`);
  }
};
