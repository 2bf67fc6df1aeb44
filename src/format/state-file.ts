/**
 * docs/FORMAT.md, "The files-restore state file: `ec2-bpipe-state.json`": which job each image of a
 * restore to files holds. Bacula's replace codes and the next chain link are decided from it.
 */
import { z } from 'zod';
import { configName, jobName, levelSchema, snapshotId, volumeId } from './fields.js';

export const STATE_FILE = 'ec2-bpipe-state.json';

/** What one image holds. */
const heldSchema = z.object({
  job: jobName,
  level: levelSchema,
  snapshotId,
  chain: z.array(jobName).max(100_000),
  /** When the held job's backup was made: what Bacula's replace codes compare (since 0.3). */
  createdAt: z.iso.datetime().optional(),
});
export type Held = z.infer<typeof heldSchema>;

/** The state file beside the images: which job each image holds. */
export const imageStateSchema = z.object({
  config: configName,
  resourceId: z.string().max(1024),
  volumes: z.record(volumeId, heldSchema),
  /**
   * Written by 0.2 only, while a chain link was applied: the job and the volumes it changes. A
   * directory a 0.2 crash left is finished from it once, then the field is gone.
   */
  applying: z
    .object({
      job: jobName,
      level: levelSchema,
      volumes: z.array(z.object({ volumeId, snapshotId })),
      createdAt: z.iso.datetime().optional(),
    })
    .optional(),
});
export type ImageState = z.infer<typeof imageStateSchema>;
