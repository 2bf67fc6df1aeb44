import { RuntimeFailure } from '../errors.js';
import { streamInputs } from '../inputs.js';
import { readStream, warnFormat1 } from '../stream/reader.js';
import type { CommandContext } from './context.js';

export interface VerifyOptions {
  /** Stream files, in order; stdin when none. */
  files: string[];
}

/** `ec2-bpipe verify`: checks streams offline and prints one line per volume. */
export async function verifyCommand(ctx: CommandContext, { files }: VerifyOptions): Promise<void> {
  const failures: string[] = [];
  for (const input of await streamInputs(files, ctx.stdin)) {
    try {
      // verify reads format 1 and says what it cannot prove; restores need --accept-format-1.
      const report = await readStream(await input.open(), input.name, {}, { acceptFormat1: true });
      const m = report.manifest;
      for (const v of report.volumes) {
        ctx.stdout.write(
          `ok ${input.name} ${m.resourceId} ${v.volumeId} ${m.level} job=${m.job} blocks=${v.blocks} ` +
            `bytes=${v.sizeBytes} sha256-linear=${v.checksum}` +
            (v.indexedSha256 === null ? '' : ` sha256-indexed=${v.indexedSha256}`) +
            '\n',
        );
      }
      warnFormat1(ctx.log, input.name, report.formatVersion);
      ctx.log.info(`${input.name}: complete and intact (${report.volumes.length} volume(s), job ${m.job})`);
    } catch (err) {
      if (!(err instanceof RuntimeFailure)) throw err;
      const message = err.message;
      ctx.stdout.write(`FAILED ${message}\n`);
      failures.push(message);
    }
  }
  if (failures.length)
    throw new RuntimeFailure(`${failures.length} stream(s) failed verification: ${failures.join('; ')}`);
}
