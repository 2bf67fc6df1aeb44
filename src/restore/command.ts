import type { Handler } from '../cli.js';
import { UsageError } from '../errors.js';
import { classify, streamInputs } from '../inputs.js';
import { AwsRestore } from './aws.js';
import { FilesRestore } from './files.js';

/**
 * `ec2-bpipe restore`: to a directory with --to-dir (or a Bacula --where other than / and empty),
 * else to AWS. Streams are applied in the order given.
 */
export const restoreCommand: Handler = async (ctx, options, files) => {
  const toDir = options.toDir as string | undefined;
  const where = options.where as string | undefined;
  if (toDir !== undefined && where !== undefined) throw new UsageError('Give --to-dir or --where, not both.');
  if (toDir === '') throw new UsageError('--to-dir needs a directory.');
  const dir = toDir ?? (where !== undefined && where !== '' && where !== '/' ? where : undefined);
  if (options.replace !== undefined) ctx.log.debug(`Bacula replace code ${options.replace as string}`);
  const inputs = await streamInputs(files, ctx.stdin);
  const print = (line: string): void => void ctx.stdout.write(`${line}\n`);
  if (dir === undefined) {
    const launch = options.launch !== false;
    const target = new AwsRestore(ctx.config, ctx.log, print, { launch });
    try {
      let head;
      for (const input of inputs) {
        const item = await classify(input);
        head =
          item.kind === 'stream'
            ? await target.apply(item.input)
            : await target.applyFinalizer(item.finalizer, item.name);
      }
      // One instance for the whole chain, from its head: the last stream applied.
      if (head && launch) await target.finish(head);
    } finally {
      target.close();
    }
    return;
  }
  const target = new FilesRestore(dir, ctx.log, toDir !== undefined ? 'plain' : 'catalog');
  for (const input of inputs) {
    const item = await classify(input);
    const images =
      item.kind === 'stream' ? await target.apply(item.input) : await target.close(item.finalizer, item.name);
    for (const path of images) print(`image ${path}`);
  }
};
