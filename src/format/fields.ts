/**
 * The values every persisted contract is made of (docs/FORMAT.md): ids, job names, levels,
 * timestamps and digests, each with the pattern a reader holds it to. One definition, so the stream,
 * the finalizer, the state file and the journals accept exactly the same values.
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { CONFIG_NAME, INSTANCE_ID, JOB_NAME, REGION, SNAPSHOT_ID, VOLUME_ID } from '../ids.js';

// zod/mini, not the full zod: a tenth of its 750 KB, which every command loaded at start-up
// (`list` at every Bacula job start). Its messages default to "Invalid input"; the English ones
// give the reader of a refusal the expected type or bound. Set once, here, where every persisted
// contract starts.
z.config(en());

const LEVELS = ['Full', 'Incremental', 'Differential'] as const;
export const levelSchema = z.enum(LEVELS);
export type Level = z.infer<typeof levelSchema>;

export const instanceId = z.string().check(z.regex(INSTANCE_ID, 'expected an instance id (i-…)'));
export const volumeId = z.string().check(z.regex(VOLUME_ID, 'expected a volume id (vol-…)'));
export const snapshotId = z.string().check(z.regex(SNAPSHOT_ID, 'expected a snapshot id (snap-…)'));
export const jobName = z.string().check(z.regex(JOB_NAME, 'expected a job name'));
export const configName = z.string().check(z.regex(CONFIG_NAME, 'expected a config name'));
/** What a unit is: an instance with its volumes, or volumes on their own. */
export const unitKind = z.enum(['instance', 'volumes']);
export const region = z.string().check(z.regex(REGION, 'expected a region name'));
export const timestamp = z.iso.datetime({ offset: true });
/** A short printable value: names, types, ARNs; never a path the reader builds. */
export const label = z.string().check(z.maxLength(2048));
export const count = z.int().check(z.nonnegative(), z.maximum(Number.MAX_SAFE_INTEGER));
export const base64Sha256 = z.string().check(z.regex(/^[A-Za-z0-9+/]{43}=$/, 'expected a base64 SHA-256'));
export const hexSha256 = z.string().check(z.regex(/^[0-9a-f]{64}$/, 'expected a hex SHA-256'));

/** Turns zod's issues into one line that names the member and the field. */
export function describeIssues(error: z.core.$ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => {
      const path = issue.path.length ? issue.path.map(String).join('.') : '(the whole value)';
      return `field ${path}: ${issue.message}`;
    })
    .join('; ');
}
