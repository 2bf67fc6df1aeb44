import { DescribeSnapshotsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { JOURNAL_TAG } from '../aws/tags.js';

type Entries = Record<string, string>;

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
    this.file = join(stateDir, 'restore-journal.json');
  }

  private static key(region: string, config: string, volumeId: string, job: string): string {
    return [region, config, volumeId, job].join('/');
  }

  private async load(): Promise<Entries> {
    try {
      return JSON.parse(await readFile(this.file, 'utf8')) as Entries;
    } catch {
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
    const recorded = (await this.load())[RestoreJournal.key(region, config, volumeId, job)];
    if (recorded !== undefined) {
      try {
        const { Snapshots = [] } = await ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [recorded] }));
        if (Snapshots[0]?.State === 'completed') return recorded;
      } catch {
        // Deleted since: fall back to the tags.
      }
    }
    const { Snapshots = [] } = await ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [
          { Name: `tag:${JOURNAL_TAG.config}`, Values: [config] },
          { Name: `tag:${JOURNAL_TAG.volume}`, Values: [volumeId] },
          { Name: `tag:${JOURNAL_TAG.job}`, Values: [job] },
          { Name: 'status', Values: ['completed'] },
        ],
      }),
    );
    const newest = Snapshots.sort((a, b) => (b.StartTime?.getTime() ?? 0) - (a.StartTime?.getTime() ?? 0))[0];
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
      entries[RestoreJournal.key(region, config, volumeId, job)] = snapshotId;
      const temporary = `${this.file}.${process.pid}.tmp`;
      await writeFile(temporary, `${JSON.stringify(entries, null, 2)}\n`, { mode: 0o600 });
      await rename(temporary, this.file);
    } catch (err) {
      // The tags on the snapshot still record it; only the fast path is lost.
      this.log.warn(
        `could not write the restore journal ${this.file}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
}
