/**
 * The restore-to-files transaction (docs/FORMAT.md, "The files-restore journal" and "The
 * files-restore state file"). One restore point is installed into a resource's directory as one
 * transaction over all its volumes and metadata:
 *
 * 1. the new images (a Full) or redo files (a chain link) and the metadata are written under
 *    temporary names and fsynced while the stream is read;
 * 2. once the whole stream verified, the journal is written, fsynced and renamed into place: the
 *    commit point;
 * 3. each temporary file is renamed into place, each redo is applied to its image in place, the
 *    state file is written, the journal removed, the redo files removed.
 *
 * Whoever opens the directory next (any restore into it) first finishes a journal it finds, step 3
 * again from the start (every step of it can be repeated), or, without a journal, removes what an
 * uncommitted transaction left. The state file therefore never disagrees with the images.
 */
import { type Dirent } from 'node:fs';
import { access, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import * as z from 'zod/mini';
import { durableStep } from '../../crash-points.js';
import { messageOf, RuntimeFailure } from '../../errors.js';
import { BLOCK_SIZE, member } from '../../format/container.js';
import { describeIssues, snapshotId } from '../../format/fields.js';
import {
  type Journal,
  JOURNAL_FILE,
  journalSchema,
  newJournal,
  LEFTOVER,
  PARTIAL,
  RECORD,
  recordIndex,
  redoName,
} from '../../format/files-journal.js';
import { type ImageState, imageStateSchema, STATE_FILE } from '../../format/state-file.js';
import { syncDirectory, writeSynced } from '../../durable.js';

export const MOVE_ASIDE = 'Move the directory aside and restore the chain again from its Full.';

/** Reads a JSON file of ours, or undefined when it does not exist; anything else damaged is refused. */
async function readJson<T>(path: string, schema: z.ZodMiniType<T>, what: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RuntimeFailure(`${path}: cannot read the ${what} (${messageOf(err)}). ${MOVE_ASIDE}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RuntimeFailure(
      `${path} is not valid JSON (${messageOf(err)}): the ${what} is unknown. ${MOVE_ASIDE}`,
    );
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new RuntimeFailure(`${path}: ${describeIssues(parsed.error)}. ${MOVE_ASIDE}`);
  return parsed.data;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** One resource's directory of images, opened for a transaction. */
export class ImageDirectory {
  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  private path(name: string): string {
    return join(this.dir, name);
  }

  /**
   * Settles whatever an interrupted restore left (finishing a committed one, removing an
   * uncommitted one's files), then returns the state, checked against the images' sidecars.
   */
  async open(): Promise<ImageState | undefined> {
    const journal = await this.loadJournal();
    let state: ImageState | undefined;
    if (journal !== undefined) {
      this.log.warn(
        `${this.dir}: finishing the interrupted restore of job ${journal.job} (its journal is committed)`,
      );
      await this.finish(journal);
      state = journal.state;
    } else {
      state = await this.loadState();
      if (state?.applying !== undefined) state = await this.finishLegacy(state);
    }
    await this.removeLeftovers();
    if (state !== undefined) await this.checkSidecars(state);
    return state;
  }

  /** The committed journal, or undefined when no transaction is committed and unfinished. */
  async loadJournal(): Promise<Journal | undefined> {
    return readJson(this.path(JOURNAL_FILE), journalSchema, 'restore journal');
  }

  async loadState(): Promise<ImageState | undefined> {
    return readJson(this.path(STATE_FILE), imageStateSchema, 'image state');
  }

  /** The commit point: once this returns, the transaction is finished by whoever opens the directory. */
  async commit(journal: Journal): Promise<void> {
    await this.writeFile(JOURNAL_FILE, journal);
  }

  /** Carries out a committed journal: every step may run again after a crash in it. */
  async finish(journal: Journal): Promise<void> {
    for (const name of journal.install) {
      const partial = this.path(name + PARTIAL);
      if (await exists(partial)) {
        await durableStep(`rename ${partial}`);
        await rename(partial, this.path(name));
      } else if (!(await exists(this.path(name)))) {
        throw new RuntimeFailure(
          `${this.path(JOURNAL_FILE)}: job ${journal.job} installs ${name}, but neither it nor ${name}${PARTIAL} exists: the directory was changed outside ec2-bpipe. ${MOVE_ASIDE}`,
        );
      }
    }
    await durableStep(`fsync ${this.dir}`);
    await syncDirectory(this.dir);
    for (const volumeId of journal.redo) await this.applyRedo(journal.job, volumeId);
    await this.writeFile(STATE_FILE, journal.state);
    await durableStep(`delete ${this.path(JOURNAL_FILE)}`);
    await rm(this.path(JOURNAL_FILE));
    await durableStep(`fsync ${this.dir}`);
    await syncDirectory(this.dir);
    // Garbage from here on: a crash that leaves one is cleaned by the next open.
    for (const volumeId of journal.redo) {
      await durableStep(`delete ${this.path(redoName(volumeId))}`);
      await rm(this.path(redoName(volumeId)), { force: true });
    }
  }

  /**
   * Applies a redo log to its image: every record writes a whole block at its index, so applying
   * it again, whole or after a part, leaves the same image.
   */
  private async applyRedo(job: string, volumeId: string): Promise<void> {
    const redo = this.path(redoName(volumeId));
    const imagePath = this.path(member.volumeData(volumeId));
    await durableStep(`apply ${redo} to ${imagePath}`);
    let log;
    try {
      log = await open(redo, 'r');
    } catch (err) {
      throw new RuntimeFailure(
        `${redo}: job ${job} is committed but its redo log cannot be read (${messageOf(err)}); the image ${imagePath} is not finished. ${MOVE_ASIDE}`,
      );
    }
    const image = await open(imagePath, 'r+');
    try {
      const { size: imageSize } = await image.stat();
      const record = Buffer.allocUnsafe(RECORD);
      for (let offset = 0; ; offset += RECORD) {
        const { bytesRead } = await log.read(record, 0, RECORD, offset);
        if (bytesRead === 0) break;
        if (bytesRead !== RECORD) throw new RuntimeFailure(`${redo} is damaged. ${MOVE_ASIDE}`);
        const index = recordIndex(record);
        if (!Number.isSafeInteger(index) || (index + 1) * BLOCK_SIZE > imageSize)
          throw new RuntimeFailure(`${redo} is damaged (block ${index}). ${MOVE_ASIDE}`);
        await image.write(record, 8, BLOCK_SIZE, index * BLOCK_SIZE);
      }
      await image.sync();
    } finally {
      await log.close();
      await image.close();
    }
  }

  /**
   * A directory a 0.2 restore left mid-apply: 0.2 deleted each volume's redo once applied, and
   * saved the state only after all of them, so a volume without its redo is applied already.
   */
  private async finishLegacy(state: ImageState): Promise<ImageState> {
    const applying = state.applying;
    if (applying === undefined) return state;
    this.log.warn(`${this.dir}: finishing the application of job ${applying.job} that ec2-bpipe 0.2 left`);
    const next: ImageState = {
      config: state.config,
      resourceId: state.resourceId,
      volumes: { ...state.volumes },
    };
    const redo: string[] = [];
    for (const { volumeId: id, snapshotId: snapshot } of applying.volumes) {
      const held = state.volumes[id];
      if (held === undefined)
        throw new RuntimeFailure(
          `${this.path(STATE_FILE)}: applying job ${applying.job} to ${id}, which it does not hold. ${MOVE_ASIDE}`,
        );
      if (await exists(this.path(redoName(id)))) redo.push(id);
      next.volumes[id] = {
        job: applying.job,
        level: applying.level,
        snapshotId: snapshot,
        chain: [...held.chain, applying.job],
        ...(applying.createdAt !== undefined && { createdAt: applying.createdAt }),
      };
    }
    const journal = newJournal({ job: applying.job, level: applying.level, install: [], redo, state: next });
    await this.commit(journal);
    await this.finish(journal);
    return next;
  }

  /** Without a journal nothing was committed: the temporary files and redo logs are garbage. */
  private async removeLeftovers(): Promise<void> {
    let entries: Dirent[];
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const leftovers = entries.filter((e) => e.isFile() && LEFTOVER.test(e.name)).map((e) => e.name);
    if (leftovers.length === 0) return;
    for (const name of leftovers) await rm(this.path(name), { force: true });
    this.log.info(
      `${this.dir}: removed ${leftovers.length} file(s) an interrupted restore left (${leftovers.join(', ')}); the images are as they were`,
    );
  }

  /**
   * Each image's sidecar (`<vol>.json`, the stream's volume metadata) names the snapshot the
   * image was read from; the state names the same one, or the directory was changed by hand.
   */
  private async checkSidecars(state: ImageState): Promise<void> {
    for (const [id, held] of Object.entries(state.volumes)) {
      const sidecar = this.path(member.volumeMeta(id));
      const meta = await readJson(sidecar, z.looseObject({ snapshotId }), 'volume metadata');
      if (meta === undefined || !(await exists(this.path(member.volumeData(id))))) {
        throw new RuntimeFailure(
          `${this.path(STATE_FILE)} says ${member.volumeData(id)} holds job ${held.job}, but ${meta === undefined ? sidecar : this.path(member.volumeData(id))} is missing. ${MOVE_ASIDE}`,
        );
      }
      if (meta.snapshotId !== held.snapshotId) {
        throw new RuntimeFailure(
          `${sidecar} names ${meta.snapshotId}, but ${STATE_FILE} says ${member.volumeData(id)} holds job ${held.job} from ${held.snapshotId}: the directory was changed outside ec2-bpipe. ${MOVE_ASIDE}`,
        );
      }
    }
  }

  /** A small file of ours put in place whole: temporary name, fsync, rename, directory fsync. */
  async writeFile(name: string, value: unknown): Promise<void> {
    const path = this.path(name);
    await durableStep(`write ${path}${PARTIAL}`);
    await writeSynced(path + PARTIAL, `${JSON.stringify(value, null, 2)}\n`);
    await durableStep(`rename ${path}${PARTIAL}`);
    await rename(path + PARTIAL, path);
    await durableStep(`fsync ${this.dir}`);
    await syncDirectory(this.dir);
  }
}
