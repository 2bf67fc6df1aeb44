import { mkdir, open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { RuntimeFailure } from '../errors.js';
import type { Input } from '../inputs.js';
import { BLOCK_SIZE, type Manifest, member, type VolumeMeta } from '../stream/format.js';
import { readStream } from '../stream/reader.js';

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
const PARTIAL = '.partial';

/**
 * Restores streams to raw sparse images under `<root>/<resource-id>/`. Images and metadata are
 * written under temporary names and renamed only once the whole stream has verified, so a
 * failed or truncated stream never leaves a finished-looking image.
 */
export class FilesRestore {
  constructor(
    private readonly root: string,
    private readonly log: Logger,
  ) {}

  async apply(input: Input): Promise<string[]> {
    let dir = '';
    const partials: string[] = [];
    const metadata = new Map<string, unknown>();
    let file: FileHandle | undefined;
    const finals: string[] = [];
    try {
      await readStream(input.open(), input.name, {
        manifest: async (m: Manifest) => {
          if (m.level !== 'Full') {
            throw new RuntimeFailure(
              `${input.name}: job ${m.job} is a ${m.level} stream; applying chains to files is not available in this version, restore its Full instead.`,
            );
          }
          dir = join(this.root, m.resourceId);
          await mkdir(dir, { recursive: true, mode: 0o700 });
          metadata.set(member.manifest, m);
        },
        instance: (meta) => {
          metadata.set(member.instance, meta);
        },
        volumeStart: async (meta: VolumeMeta) => {
          metadata.set(member.volumeMeta(meta.volumeId), meta);
          const path = join(dir, member.volumeData(meta.volumeId) + PARTIAL);
          partials.push(path);
          file = await open(path, 'w', 0o600);
          await file.truncate(meta.sizeBytes);
        },
        block: async (_meta, index, data) => {
          // A fresh image reads as zeros already; skipping zero blocks keeps it sparse.
          if (data.equals(ZERO_BLOCK)) return;
          await file!.write(data, 0, data.length, index * BLOCK_SIZE);
        },
        volumeEnd: async (meta, sum) => {
          metadata.set(member.volumeSum(meta.volumeId), sum);
          await file!.sync();
          await file!.close();
          file = undefined;
        },
        end: async () => {
          for (const [name, value] of metadata) {
            await writeFile(join(dir, name + PARTIAL), `${JSON.stringify(value, null, 2)}\n`, {
              mode: 0o600,
            });
            partials.push(join(dir, name + PARTIAL));
          }
          for (const partial of partials) {
            const final = partial.slice(0, -PARTIAL.length);
            await rename(partial, final);
            finals.push(final);
          }
        },
      });
    } catch (err) {
      await file?.close().catch(() => undefined);
      await Promise.all(partials.map((p) => rm(p, { force: true })));
      throw err;
    }
    for (const path of finals.filter((f) => f.endsWith('.ebs'))) this.log.info(`restored ${path}`);
    return finals;
  }
}
