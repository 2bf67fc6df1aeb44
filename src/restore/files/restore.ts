import { rmSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { durableStep } from '../../crash-points.js';
import { messageOf, RuntimeFailure } from '../../errors.js';
import { CONFIG_NAME, REGION } from '../../ids.js';
import type { Input } from '../../inputs.js';
import { liveDisplay } from '../../display.js';
import { onInterrupt } from '../../lifecycle.js';
import { writeSynced } from '../../durable.js';
import { ImageDirectory, MOVE_ASIDE } from './state.js';
import { keptBy, type ReplacePolicy } from './replace.js';
import {
  describeSystemError,
  FILE_WRITES,
  ImageFlush,
  type ImageWrite,
  isSystemError,
  under,
  writeAll,
} from './writer.js';
import { newJournal, PARTIAL, RECORD, recordHead, redoName } from '../../format/files-journal.js';
import type { ImageState } from '../../format/state-file.js';
import { refuseUnknownVolumes } from '../volume-filter.js';
import { VolumeProgress } from '../../progress.js';
import { BLOCK_SIZE, member } from '../../format/container.js';
import { ZERO_BLOCK_SHA256 } from '../../format/digests.js';
import { readStream, warnFormat1 } from '../../stream/reader.js';
import type { Finalizer } from '../../format/finalizer.js';
import { type Manifest, resourceIdValid } from '../../format/members.js';

/** What a stream or a finalizer left in the directory: its images, and whether the policy kept them as they were. */
export interface FilesOutcome {
  images: string[];
  kept: boolean;
}

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
  /** Jobs this run did not apply because the replace code kept the images (and links on them). */
  private readonly kept = new Set<string>();
  /** Blocks read and verified from the streams so far (the summary line says them). */
  blocksRead = 0;

  constructor(
    private readonly root: string,
    private readonly log: Logger,
    private readonly layout: 'plain' | 'catalog' = 'plain',
    private readonly replace: ReplacePolicy = 'always',
    /** Write only these volumes' images (--volume); the others are read and checked only. */
    private readonly volumes?: ReadonlySet<string>,
    /** Read format 1 streams, which prove less (--accept-format-1). */
    private readonly acceptFormat1 = false,
  ) {}

  private selected(volumeId: string): boolean {
    return this.volumes === undefined || this.volumes.has(volumeId);
  }

  private dirFor(unit: {
    config: string;
    region: string;
    resourceId: string;
    kind: 'instance' | 'volumes';
  }): string {
    // Checked here again, whatever the caller checked: these names become directories.
    if (
      !CONFIG_NAME.test(unit.config) ||
      !REGION.test(unit.region) ||
      !resourceIdValid(unit.kind, unit.resourceId)
    ) {
      throw new RuntimeFailure(
        `refusing the unit ${JSON.stringify([unit.config, unit.region, unit.resourceId])}: not a config name, region and resource id`,
      );
    }
    return this.layout === 'plain'
      ? under(this.root, unit.resourceId)
      : under(this.root, '@ec2-bpipe', unit.config, unit.region, unit.resourceId);
  }

  /** Refuses a stream whose base is not what the images hold now. */
  private checkBase(dir: string, manifest: Manifest, state: ImageState | undefined): void {
    if (manifest.level === 'Full') return;
    for (const volumeId of manifest.volumes.filter((v) => this.selected(v))) {
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
  async close(finalizer: Finalizer, name: string): Promise<FilesOutcome> {
    const dir = this.dirFor(finalizer);
    const state = await new ImageDirectory(dir, this.log).open();
    if (finalizer.head === null) {
      throw new RuntimeFailure(
        `${name}: job ${finalizer.job} of ${finalizer.resourceId} has no complete stream to restore`,
      );
    }
    if (this.kept.has(finalizer.head)) {
      this.log.info(
        `${dir}: kept as it was (replace=${this.replace}); job ${finalizer.head} was not applied`,
      );
      return { images: finalizer.volumes.map((v) => join(dir, member.volumeData(v.volumeId))), kept: true };
    }
    const wanted = finalizer.volumes.filter((v) => this.selected(v.volumeId));
    const behind = wanted.filter((v) => state?.volumes[v.volumeId]?.job !== finalizer.head);
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
    return { images: wanted.map((v) => join(dir, member.volumeData(v.volumeId))), kept: false };
  }

  /**
   * Whether the images hold this chain link already: a rerun after an interrupted restore, which
   * the directory's journal finished. The stream is then read and checked, and nothing written.
   */
  private holdsAlready(manifest: Manifest, state: ImageState | undefined): boolean {
    if (manifest.level === 'Full' || state === undefined) return false;
    const selected = manifest.volumes.filter((v) => this.selected(v));
    return selected.length > 0 && selected.every((v) => state.volumes[v]?.job === manifest.job);
  }

  async apply(input: Input): Promise<FilesOutcome> {
    let dir = '';
    let directory: ImageDirectory | undefined;
    let manifest: Manifest | undefined;
    let state: ImageState | undefined;
    /** Files of this transaction written so far: removed when it fails before its commit. */
    const written: string[] = [];
    const metadata = new Map<string, unknown>();
    const snapshots = new Map<string, string>();
    let file: ImageWrite | undefined;
    /** Set when the replace code keeps the images: the stream is read and checked, and nothing written. */
    let keep: string | undefined;
    let already = false;
    // A signal or a closed pipe ends the process at once. Before the commit, what is half written
    // goes with it; from the commit on, the journal finishes the job at the next open.
    let phase: 'reading' | 'committing' | 'committed' = 'reading';
    const forget = onInterrupt(() => {
      if (phase !== 'reading') {
        return `job ${manifest?.job ?? '?'} was interrupted while it was installed in ${dir}; the next restore into that directory finishes it (or, had it not committed, removes it) before anything else`;
      }
      for (const path of written) rmSync(path, { force: true });
      return written.length
        ? `files of job ${manifest?.job ?? '?'} in ${dir} removed; the images are as they were`
        : undefined;
    });
    const currentFile = (): ImageWrite => {
      if (file === undefined) throw new Error('a block came outside a volume');
      return file;
    };
    try {
      const report = await readStream(
        await input.open(),
        input.name,
        {
          manifest: async (m: Manifest) => {
            manifest = m;
            dir = this.dirFor(m);
            await mkdir(dir, { recursive: true, mode: 0o700 });
            directory = new ImageDirectory(dir, this.log);
            state = await directory.open();
            keep = keptBy(this.replace, this.kept, dir, m, state);
            if (keep !== undefined) {
              this.kept.add(m.job);
              this.log.warn(keep);
              return;
            }
            refuseUnknownVolumes(this.volumes, m);
            liveDisplay()?.planJob(
              m.volumes.filter((v) => this.selected(v)).map((volumeId) => ({ volumeId })),
            );
            already = this.holdsAlready(m, state);
            if (already) return;
            this.checkBase(dir, m, state);
            metadata.set(member.manifest, m);
          },
          instance: (meta) => {
            metadata.set(member.instance, meta);
          },
          volumeStart: async (meta) => {
            if (keep !== undefined || !this.selected(meta.volumeId)) return;
            if (already) {
              const held = state?.volumes[meta.volumeId];
              if (held?.snapshotId !== meta.snapshotId) {
                throw new RuntimeFailure(
                  `${join(dir, member.volumeData(meta.volumeId))} holds job ${held?.job ?? '?'} from ${held?.snapshotId ?? 'no snapshot'}, ` +
                    `but this stream of job ${manifest?.job ?? '?'} was read from ${meta.snapshotId}: they are not one job. ${MOVE_ASIDE}`,
                );
              }
              return;
            }
            metadata.set(member.volumeMeta(meta.volumeId), meta);
            snapshots.set(meta.volumeId, meta.snapshotId);
            // A Full is a new image under a temporary name; a chain link is a redo log of its blocks.
            const path = under(
              dir,
              meta.level === 'Full' ? member.volumeData(meta.volumeId) + PARTIAL : redoName(meta.volumeId),
            );
            written.push(path);
            await durableStep(`create ${path}`);
            const handle = await open(path, 'w', 0o600);
            file = {
              handle,
              path,
              records: 0,
              flush: new ImageFlush(handle, path),
              progress: new VolumeProgress(this.log, meta.volumeId, meta.blockCount, BLOCK_SIZE),
            };
            if (meta.level === 'Full') await handle.truncate(meta.sizeBytes);
          },
          block: async (meta, index, data, digest) => {
            if (keep !== undefined || already || !this.selected(meta.volumeId)) return;
            const target = currentFile();
            target.progress.block();
            if (meta.level === 'Full') {
              // A fresh image reads as zeros already; skipping zero blocks keeps it sparse. The
              // digest tells a zero block without comparing its 512 KiB.
              if (digest.equals(ZERO_BLOCK_SHA256)) return;
              // Settles once written: until then the reader keeps the block's memory for us.
              await writeAll(target.handle, target.path, [data], index * BLOCK_SIZE);
              target.flush.wrote(BLOCK_SIZE);
              return;
            }
            // In a chain a zero block is an explicit change: it overwrites what the base held.
            const at = target.records++ * RECORD;
            await writeAll(target.handle, target.path, [recordHead(index), data], at);
            target.flush.wrote(RECORD);
          },
          volumeEnd: async (meta, sum) => {
            if (keep !== undefined || already || !this.selected(meta.volumeId)) return;
            metadata.set(member.volumeSum(meta.volumeId), sum);
            const done = currentFile();
            file = undefined;
            await durableStep(`fsync ${done.path}`);
            await done.flush.done();
            await done.handle.close();
            this.log.info(
              { event: 'volume', ...done.progress.fields() },
              `${done.progress.finish()}, written; its checksums matched`,
            );
          },
          // Called only after the whole stream, its end records included, verified.
          end: async () => {
            if (keep !== undefined || already) return;
            for (const [name, value] of metadata) {
              const path = under(dir, name + PARTIAL);
              written.push(path);
              await durableStep(`write ${path}`);
              await writeSynced(path, `${JSON.stringify(value, null, 2)}\n`);
            }
          },
        },
        { blocksLent: FILE_WRITES, acceptFormat1: this.acceptFormat1 },
      );
      warnFormat1(this.log, input.name, report.formatVersion);
      this.blocksRead += report.volumes.reduce((n, v) => n + v.blocks, 0);
    } catch (err) {
      // The reader settled every write before it threw: the handle can close.
      if (file !== undefined) {
        await file.flush.settled();
        await file.handle.close().catch(() => undefined);
      }
      await Promise.all(written.map((p) => rm(p, { force: true })));
      forget();
      if (!isSystemError(err) || manifest === undefined) throw err;
      throw new RuntimeFailure(
        `${describeSystemError(err)}: nothing of job ${manifest.job} was installed, the images in ${dir} are as they were. Fix the cause (free space on a full disk) and run the restore again.`,
        { cause: err },
      );
    }
    if (manifest === undefined || directory === undefined) {
      forget();
      throw new RuntimeFailure(`${input.name}: the stream held no manifest`);
    }
    const images = manifest.volumes
      .filter((v) => this.selected(v))
      .map((v) => join(dir, member.volumeData(v)));
    if (keep !== undefined) {
      forget();
      return { images, kept: true };
    }
    if (already) {
      forget();
      this.log.info(
        `${dir} holds job ${manifest.job} already (a restore before this one installed it); its stream verified again, nothing written`,
      );
      return { images, kept: false };
    }
    const journal = newJournal({
      job: manifest.job,
      level: manifest.level,
      install: [
        ...metadata.keys(),
        ...(manifest.level === 'Full' ? [...snapshots.keys()].map(member.volumeData) : []),
      ],
      redo: manifest.level === 'Full' ? [] : [...snapshots.keys()],
      state: this.nextState(dir, manifest, snapshots, state),
    });
    try {
      phase = 'committing';
      await directory.commit(journal);
      phase = 'committed';
      await directory.finish(journal);
    } catch (err) {
      const committed = phase === 'committed' || (await directory.loadJournal()) !== undefined;
      if (!committed) await Promise.all(written.map((p) => rm(p, { force: true })));
      const cause = isSystemError(err) ? describeSystemError(err) : messageOf(err);
      throw new RuntimeFailure(
        committed
          ? `${cause}: job ${manifest.job} is committed in ${dir} but not installed yet. Fix the cause (free space on a full disk) and run any restore into that directory: it finishes job ${manifest.job} first.`
          : `${cause}: nothing of job ${manifest.job} was installed, the images in ${dir} are as they were. Fix the cause and run the restore again.`,
        { cause: err },
      );
    } finally {
      forget();
    }
    for (const path of images)
      this.log.info(`${manifest.level === 'Full' ? 'restored' : 'updated'} ${path} to job ${manifest.job}`);
    return { images, kept: false };
  }

  /** The state once this verified stream is installed: its job is the new head of each volume it wrote. */
  private nextState(
    dir: string,
    manifest: Manifest,
    snapshots: Map<string, string>,
    previous: ImageState | undefined,
  ): ImageState {
    const next: ImageState = {
      config: manifest.config,
      resourceId: manifest.resourceId,
      volumes: { ...previous?.volumes },
    };
    for (const [volumeId, snapshotId] of snapshots) {
      const chain = manifest.level === 'Full' ? [] : previous?.volumes[volumeId]?.chain;
      // checkBase refused a chain link whose base the images do not hold.
      if (chain === undefined)
        throw new RuntimeFailure(`${dir}: no image state to apply job ${manifest.job} to`);
      next.volumes[volumeId] = {
        job: manifest.job,
        level: manifest.level,
        snapshotId,
        chain: [...chain, manifest.job],
        createdAt: manifest.createdAt,
      };
    }
    return next;
  }
}
