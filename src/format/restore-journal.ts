/**
 * docs/FORMAT.md, "The restore journal: `restore-journal.json`": which restored snapshot holds which
 * source job's volume, per target Region. A cache of the tags on the restored snapshots
 * (tags.ts, JOURNAL_TAG), which stay the record; restore/aws/journal.ts reads and writes it.
 */
import * as z from 'zod/mini';
import { SNAPSHOT_ID } from '../ids.js';

export const RESTORE_JOURNAL_FILE = 'restore-journal.json';

/** `region/config/volume/job` to the restored snapshot id. */
export const entriesSchema = z.record(
  z.string().check(z.maxLength(512)),
  z.string().check(z.regex(SNAPSHOT_ID)),
);
export type Entries = z.infer<typeof entriesSchema>;

export function entryKey(region: string, config: string, volumeId: string, job: string): string {
  return [region, config, volumeId, job].join('/');
}
