/**
 * docs/FORMAT.md, "The files-restore journal: `ec2-bpipe-journal.json`": the commit record of a
 * restore point installed into a directory of images, the redo files it applies, and the names of
 * the temporary files a transaction leaves. restore/files/state.ts runs the transaction.
 */
import * as z from 'zod/mini';
import { BLOCK_SIZE, member } from './container.js';
import { jobName, levelSchema, volumeId } from './fields.js';
import { imageStateSchema } from './state-file.js';

export const JOURNAL_FILE = 'ec2-bpipe-journal.json';
const JOURNAL_FORMAT = 'ec2-bpipe-files-journal';

/** What a file is called while it is written, until the transaction installs it. */
export const PARTIAL = '.partial';

/** A chain link's blocks for one volume, collected before they are applied to its image in place. */
export const redoName = (volumeId: string): string => `${member.volumeData(volumeId)}.redo`;

/**
 * A redo record: the block index (8 bytes, unsigned, big-endian), then the block. Each record
 * writes a whole block at its index, so applying a redo file again gives the same image.
 */
export const RECORD = 8 + BLOCK_SIZE;

/** The first 8 bytes of the record of block `index`. */
export function recordHead(index: number): Buffer {
  const head = Buffer.allocUnsafe(8);
  head.writeBigUInt64BE(BigInt(index), 0);
  return head;
}

/** The block index a record holds; the caller checks it against the image. */
export function recordIndex(record: Buffer): number {
  return Number(record.readBigUInt64BE(0));
}

/** The names a journal may install: the stream's own members, nothing a stream could aim elsewhere. */
const INSTALLABLE =
  /^(?:manifest|instance|vol-(?:[0-9a-f]{8}|[0-9a-f]{17})(?:\.sum)?)\.json$|^vol-(?:[0-9a-f]{8}|[0-9a-f]{17})\.ebs$/;

export const journalSchema = z.object({
  format: z.literal(JOURNAL_FORMAT),
  formatVersion: z.literal(1),
  /** The restore point being installed. */
  job: jobName,
  level: levelSchema,
  /** Files whose `<name>.partial` is renamed to `<name>`. */
  install: z.array(z.string().check(z.regex(INSTALLABLE))).check(z.maxLength(1024)),
  /** Volumes whose `<vol>.ebs.redo` is applied to `<vol>.ebs` in place. */
  redo: z.array(volumeId).check(z.maxLength(128)),
  /** The state file once the point is installed. */
  state: imageStateSchema,
});
export type Journal = z.infer<typeof journalSchema>;

export function newJournal(fields: Omit<Journal, 'format' | 'formatVersion'>): Journal {
  return { format: JOURNAL_FORMAT, formatVersion: 1, ...fields };
}

/** Leftovers of a transaction that never committed: temporary files and redo logs of ours. */
export const LEFTOVER =
  /^(?:(?:manifest|instance|vol-[0-9a-f]+(?:\.sum)?)\.json|vol-[0-9a-f]+\.ebs(?:\.redo)?|ec2-bpipe-(?:state|journal)\.json)\.partial$|^vol-[0-9a-f]+\.ebs\.redo$/;
