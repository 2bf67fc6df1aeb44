/**
 * docs/FORMAT.md, "The files-restore state file: `ec2-bpipe-state.json`": which job each image of a
 * restore to files holds. Bacula's replace codes and the next chain link are decided from it.
 */
import * as z from 'zod/mini';
import { configName, jobName, levelSchema, snapshotId, volumeId } from './fields.js';

export const STATE_FILE = 'ec2-bpipe-state.json';

/** What one image holds. */
const heldSchema = z.object({
  job: jobName,
  level: levelSchema,
  snapshotId,
  chain: z.array(jobName).check(z.maxLength(100_000)),
  /** When the held job's backup was made: what Bacula's replace codes compare (since 0.3). */
  createdAt: z.optional(z.iso.datetime()),
});
export type Held = z.infer<typeof heldSchema>;

/** The state file beside the images: which job each image holds. */
export const imageStateSchema = z.object({
  config: configName,
  resourceId: z.string().check(z.maxLength(1024)),
  volumes: z.record(volumeId, heldSchema),
  /**
   * Written by 0.2 only, while a chain link was applied: the job and the volumes it changes. A
   * directory a 0.2 crash left is finished from it once, then the field is gone.
   */
  applying: z.optional(
    z.object({
      job: jobName,
      level: levelSchema,
      volumes: z.array(z.object({ volumeId, snapshotId })),
      createdAt: z.optional(z.iso.datetime()),
    }),
  ),
});
export type ImageState = z.infer<typeof imageStateSchema>;
