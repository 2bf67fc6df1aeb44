import type { EC2Client } from '@aws-sdk/client-ec2';
import { describeSnapshots, ownSnapshots } from '../../aws/snapshots.js';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { JOURNAL_TAG, TAG, tagValue } from '../../format/tags.js';
import { messageOf } from '../../errors.js';
import { syncDirectory, writeSynced } from '../../durable.js';
import { type Entries, entriesSchema, entryKey, RESTORE_JOURNAL_FILE } from '../../format/restore-journal.js';

/**
 * Which restored snapshot holds which source job's volume, per target region. Each Bacula writer
 * is a separate process: this is how a later one finds the parent an earlier one restored. The
 * state-dir file is the fast path; the tags on the restored snapshots are the record that
 * survives a lost state dir or a restore from another host.
 */
export class RestoreJournal {
  private readonly file: string;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.file = join(stateDir, RESTORE_JOURNAL_FILE);
  }

  /**
   * The state-dir journal is a cache of what the tags record: a missing one is empty, and a
   * damaged one is set aside with a warning (the tags still answer) rather than trusted.
   */
  private async load(): Promise<Entries> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log.warn(
          `cannot read the restore journal ${this.file} (${messageOf(err)}); using the snapshot tags`,
        );
      return {};
    }
    try {
      return entriesSchema.parse(JSON.parse(text));
    } catch {
      this.log.warn(
        `the restore journal ${this.file} is damaged; using the snapshot tags, and it is rewritten`,
      );
      return {};
    }
  }

  async find(
    ec2: EC2Client,
    region: string,
    config: string,
    volumeId: string,
    job: string,
  ): Promise<string | undefined> {
    const recorded = (await this.load())[entryKey(region, config, volumeId, job)];
    if (recorded !== undefined) {
      try {
        const [snapshot] = await describeSnapshots(ec2, [recorded]);
        // The entry is trusted only when the snapshot's own tags say the same: a restored
        // snapshot's journal tags, or, for a job's own snapshot that a restore found live
        // ([restore] from-snapshots), the backup's tags of a complete stream.
        const tags = snapshot?.Tags;
        const same =
          tagValue(tags, JOURNAL_TAG.config) === config &&
          ((tagValue(tags, JOURNAL_TAG.volume) === volumeId && tagValue(tags, JOURNAL_TAG.job) === job) ||
            (tagValue(tags, TAG.volume) === volumeId &&
              tagValue(tags, TAG.job) === job &&
              tagValue(tags, TAG.state) === 'complete'));
        if (snapshot?.State === 'completed' && same) return recorded;
      } catch {
        // Deleted since: fall back to the tags.
      }
    }
    const restored = await ownSnapshots(
      ec2,
      { [JOURNAL_TAG.config]: config, [JOURNAL_TAG.volume]: volumeId, [JOURNAL_TAG.job]: job },
      'completed',
    );
    const newest = restored.sort((a, b) => (b.StartTime?.getTime() ?? 0) - (a.StartTime?.getTime() ?? 0))[0];
    return newest?.SnapshotId;
  }

  async record(
    region: string,
    config: string,
    volumeId: string,
    job: string,
    snapshotId: string,
  ): Promise<void> {
    try {
      await mkdir(join(this.file, '..'), { recursive: true, mode: 0o700 });
      const entries = await this.load();
      entries[entryKey(region, config, volumeId, job)] = snapshotId;
      const temporary = `${this.file}.${process.pid}.tmp`;
      await writeSynced(temporary, `${JSON.stringify(entries, null, 2)}\n`);
      await rename(temporary, this.file);
      await syncDirectory(dirname(this.file));
    } catch (err) {
      // The tags on the snapshot still record it; only the fast path is lost.
      this.log.warn(`could not write the restore journal ${this.file}: ${messageOf(err)}`);
    }
  }
}
