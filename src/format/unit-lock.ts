/**
 * docs/FORMAT.md, "The unit lock: `locks/<config>.<digest>.lock`": the file one backup of a unit
 * holds from its start to its end. backup/job-lock.ts takes it and reads it.
 */
import { createHash } from 'node:crypto';
import * as z from 'zod/mini';
import { jobName } from './fields.js';

export const LOCK_DIRECTORY = 'locks';

/** The lock's name: the config, and the unit's resource id by its digest (ids joined by `+` can be long). */
export function lockName(config: string, resourceId: string): string {
  return `${config}.${createHash('sha256').update(resourceId).digest('hex').slice(0, 20)}.lock`;
}

export const lockSchema = z.object({
  job: jobName,
  pid: z.int().check(z.positive()),
  host: z.string().check(z.maxLength(253)),
  since: z.iso.datetime(),
  resourceId: z.string().check(z.maxLength(4096)),
});
export type Lock = z.infer<typeof lockSchema>;
