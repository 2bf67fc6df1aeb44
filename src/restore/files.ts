import { type FileHandle, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { RuntimeFailure } from '../errors.js';
import type { Finalizer } from '../finalizer.js';
import type { Input } from '../inputs.js';
import { BLOCK_SIZE, type Manifest, member, type VolumeMeta } from '../stream/format.js';
import { readStream } from '../stream/reader.js';

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);
const PARTIAL = '.partial';
const STATE_FILE = 'ec2-bpipe-state.json';
/** A redo record: the 8-byte block index, then the block. */
const RECORD = 8 + BLOCK_SIZE;

/** What the images of one resource hold: the state file beside them. */
export interface ImageState {
  config: string;
  resourceId: string;
  volumes: Record<string, { job: string; level: string; snapshotId: string; chain: string[] }>;
  /** Set while verified changes are being applied; a crash leaves it, and the next run finishes the job. */
  applying?: { job: string; level: string; volumes: { volumeId: string; snapshotId: string }[] };
}

const redoName = (volumeId: string): string => `${member.volumeData(volumeId)}.redo`;

/**
 * Restores streams to raw sparse images under `<root>/<resource-id>/`.
 *
 * A Full is written under temporary names and renamed once the whole stream verified. An
 * Incremental or Differential is first collected in a redo file per volume (only its blocks);
 * once the whole stream verified, the redo is applied to the images in place and the state file
 * records the new head. A failed stream leaves the images and the state as they were.
 */
export class FilesRestore {
  /**
   * `plain` (--to-dir): `<root>/<resource-id>/`. `catalog` (Bacula's --where): the catalog
   * directory under the restore location, `<root>/@ec2-bpipe/<config>/<region>/<resource-id>/`.
   */
  constructor(
    private readonly root: string,
    private readonly log: Logger,
    private readonly layout: 'plain' | 'catalog' = 'plain',
  ) {}

  private dirFor(unit: { config: string; region: string; resourceId: string }): string {
    return this.layout === 'plain'
      ? join(this.root, unit.resourceId)
      : join(this.root, '@ec2-bpipe', unit.config, unit.region, unit.resourceId);
  }

  private async loadState(dir: string): Promise<ImageState | undefined> {
    try {
      return JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as ImageState;
    } catch {
      return undefined;
    }
  }

  private async saveState(dir: string, state: ImageState): Promise<void> {
    const path = join(dir, STATE_FILE);
    await writeFile(path + PARTIAL, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    await rename(path + PARTIAL, path);
  }

  /** Applies verified redo files to the images, then records the new head. Safe to repeat after a crash. */
  private async applyRedo(dir: string, state: ImageState): Promise<void> {
    const applying = state.applying!;
    for (const { volumeId, snapshotId } of applying.volumes) {
      const redo = join(dir, redoName(volumeId));
      const image = await open(join(dir, member.volumeData(volumeId)), 'r+');
      const log = await open(redo, 'r');
      try {
        const record = Buffer.allocUnsafe(RECORD);
        for (let offset = 0; ; offset += RECORD) {
          const { bytesRead } = await log.read(record, 0, RECORD, offset);
          if (bytesRead === 0) break;
          if (bytesRead !== RECORD)
            throw new RuntimeFailure(`${redo} is damaged; restore the chain again from its Full`);
          const index = Number(record.readBigUInt64BE(0));
          await image.write(record, 8, BLOCK_SIZE, index * BLOCK_SIZE);
        }
        await image.sync();
      } finally {
        await log.close();
        await image.close();
      }
      const entry = state.volumes[volumeId]!;
      state.volumes[volumeId] = {
        job: applying.job,
        level: applying.level,
        snapshotId,
        chain: [...entry.chain, applying.job],
      };
      await rm(redo, { force: true });
    }
    delete state.applying;
    await this.saveState(dir, state);
  }

  /** Refuses a stream whose base is not what the images hold now. */
  private checkBase(dir: string, manifest: Manifest, state: ImageState | undefined): void {
    if (manifest.level === 'Full') return;
    for (const volumeId of manifest.volumes) {
      const held = state?.volumes[volumeId];
      if (held?.job === manifest.baseJob) continue;
      const now = held ? `holds job ${held.job}` : 'does not exist';
      throw new RuntimeFailure(
        `job ${manifest.job} (${manifest.level}) is based on job ${manifest.baseJob} of ${manifest.baseCreatedAt ?? 'an unknown date'}, ` +
          `but ${join(dir, member.volumeData(volumeId))} ${now}. Restore job ${manifest.baseJob} (and the chain before it) first.`,
      );
    }
  }

  /** A finalizer closes a files restore: every image must hold the chain's head. */
  async close(finalizer: Finalizer, name: string): Promise<string[]> {
    const dir = this.dirFor(finalizer);
    const state = await this.loadState(dir);
    if (finalizer.head === null) {
      throw new RuntimeFailure(
        `${name}: job ${finalizer.job} of ${finalizer.resourceId} has no complete stream to restore`,
      );
    }
    const behind = finalizer.volumes.filter(
      (v) => state?.volumes[v.volumeId]?.job !== finalizer.head || state.applying,
    );
    if (behind.length) {
      const held = behind
        .map((v) => `${v.volumeId} holds ${state?.volumes[v.volumeId]?.job ?? 'nothing'}`)
        .join(', ');
      throw new RuntimeFailure(
        `${name}: the images in ${dir} do not hold job ${finalizer.head}, the head of the chain (${held}). ` +
          'Restore the whole directory of the resource, or its chain in order.',
      );
    }
    this.log.info(`${dir}: complete at job ${finalizer.head}`);
    return finalizer.volumes.map((v) => join(dir, member.volumeData(v.volumeId)));
  }

  async apply(input: Input): Promise<string[]> {
    let dir = '';
    let manifest: Manifest | undefined;
    let state: ImageState | undefined;
    const partials: string[] = [];
    const metadata = new Map<string, unknown>();
    let file: FileHandle | undefined;
    let redoBuffer: Buffer | undefined;
    const finals: string[] = [];
    try {
      await readStream(input.open(), input.name, {
        manifest: async (m: Manifest) => {
          manifest = m;
          dir = this.dirFor(m);
          await mkdir(dir, { recursive: true, mode: 0o700 });
          state = await this.loadState(dir);
          if (state?.applying) {
            this.log.warn(`finishing the interrupted application of job ${state.applying.job} in ${dir}`);
            await this.applyRedo(dir, state);
          }
          this.checkBase(dir, m, state);
          metadata.set(member.manifest, m);
        },
        instance: (meta) => {
          metadata.set(member.instance, meta);
        },
        volumeStart: async (meta: VolumeMeta) => {
          metadata.set(member.volumeMeta(meta.volumeId), meta);
          if (manifest!.level === 'Full') {
            const path = join(dir, member.volumeData(meta.volumeId) + PARTIAL);
            partials.push(path);
            file = await open(path, 'w', 0o600);
            await file.truncate(meta.sizeBytes);
          } else {
            const path = join(dir, redoName(meta.volumeId) + PARTIAL);
            partials.push(path);
            file = await open(path, 'w', 0o600);
            redoBuffer = Buffer.allocUnsafe(RECORD);
          }
        },
        block: async (_meta, index, data) => {
          if (manifest!.level === 'Full') {
            // A fresh image reads as zeros already; skipping zero blocks keeps it sparse.
            if (data.equals(ZERO_BLOCK)) return;
            await file!.write(data, 0, data.length, index * BLOCK_SIZE);
            return;
          }
          // In a chain a zero block is an explicit change: it overwrites what the base held.
          redoBuffer!.writeBigUInt64BE(BigInt(index), 0);
          data.copy(redoBuffer!, 8);
          await file!.write(redoBuffer!, 0, RECORD);
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
    await this.record(dir, manifest!, state);
    const images = manifest!.volumes.map((v) => join(dir, member.volumeData(v)));
    for (const path of images)
      this.log.info(`${manifest!.level === 'Full' ? 'restored' : 'updated'} ${path} to job ${manifest!.job}`);
    return images;
  }

  /** The stream verified whole: record it as the images' new head, applying a chain link in place. */
  private async record(dir: string, manifest: Manifest, previous: ImageState | undefined): Promise<void> {
    const snapshots = new Map<string, string>();
    for (const volumeId of manifest.volumes) {
      const meta = JSON.parse(await readFile(join(dir, member.volumeMeta(volumeId)), 'utf8')) as VolumeMeta;
      snapshots.set(volumeId, meta.snapshotId);
    }
    if (manifest.level === 'Full') {
      const state: ImageState = {
        config: manifest.config,
        resourceId: manifest.resourceId,
        volumes: { ...previous?.volumes },
      };
      for (const [volumeId, snapshotId] of snapshots) {
        state.volumes[volumeId] = { job: manifest.job, level: 'Full', snapshotId, chain: [manifest.job] };
      }
      await this.saveState(dir, state);
      return;
    }
    const state = previous!;
    state.applying = {
      job: manifest.job,
      level: manifest.level,
      volumes: [...snapshots].map(([volumeId, snapshotId]) => ({ volumeId, snapshotId })),
    };
    await this.saveState(dir, state);
    await this.applyRedo(dir, state);
  }
}
