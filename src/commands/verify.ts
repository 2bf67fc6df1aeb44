import { RuntimeFailure } from '../errors.js';
import { streamInputs } from '../inputs.js';
import { readStream } from '../stream/reader.js';
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
      const report = await readStream(await input.open(), input.name);
      const m = report.manifest;
      for (const v of report.volumes) {
        ctx.stdout.write(
          `ok ${input.name} ${m.resourceId} ${v.volumeId} ${m.level} job=${m.job} blocks=${v.blocks} ` +
            `bytes=${v.sizeBytes} sha256-linear=${v.checksum}` +
            (v.indexedSha256 === null ? '' : ` sha256-indexed=${v.indexedSha256}`) +
            '\n',
        );
      }
      if (report.formatVersion < 2) {
        ctx.log.warn(
          `${input.name}: format version ${report.formatVersion}: its blocks match their checksum, but nothing in it ` +
            'proves where each block belongs nor that its metadata is unaltered; take a new Full to get those proofs',
        );
      }
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
