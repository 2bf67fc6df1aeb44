/**
 * docs/FORMAT.md, "The finalizer: `restore.json`": its schema and parser, and what a restore
 * derives from it. backup/chain-head.ts builds it.
 */
import * as z from 'zod/mini';
import { messageOf, RuntimeFailure } from '../errors.js';
import { VERSION } from '../version.js';
import { FORMAT_NAME, FORMAT_VERSION } from './container.js';
import {
  configName,
  describeIssues,
  jobName,
  label,
  levelSchema,
  region,
  timestamp,
  unitKind,
} from './fields.js';
import { instanceMetaSchema, type Manifest, resourceIdValid, volumeMetaSchema } from './members.js';

export const FINALIZER_FORMAT = 'ec2-bpipe-finalizer';

export const finalizerSchema = z.object({
  format: z.literal(FINALIZER_FORMAT),
  formatVersion: z.literal(1),
  toolVersion: label,
  config: configName,
  /** The job that wrote this finalizer (Bacula's %j). */
  job: jobName,
  /** The newest complete stream: this job's, or, when its data stream failed, the last complete one before it. */
  head: z.nullable(jobName),
  headLevel: z.nullable(levelSchema),
  region,
  kind: unitKind,
  resourceId: z.string().check(z.maxLength(1024)),
  createdAt: timestamp,
  instance: z.nullable(instanceMetaSchema),
  /** The head's volumes, as its streams described them. */
  volumes: z.array(volumeMetaSchema).check(z.maxLength(128)),
});
export type Finalizer = z.infer<typeof finalizerSchema>;

/** A new finalizer: the format, its version and the tool's version, with what the backup found. */
export function newFinalizer(fields: Omit<Finalizer, 'format' | 'formatVersion' | 'toolVersion'>): Finalizer {
  return { format: FINALIZER_FORMAT, formatVersion: 1, toolVersion: VERSION, ...fields };
}

/** Parses a finalizer's bytes; `name` is what messages call it. Refuses anything out of shape. */
export function parseFinalizer(bytes: Buffer, name: string): Finalizer {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    throw new RuntimeFailure(`${name}: not a stream and not a valid finalizer (${messageOf(err)})`);
  }
  const format = (value as { format?: unknown } | null)?.format;
  if (format !== FINALIZER_FORMAT)
    throw new RuntimeFailure(`${name}: JSON that is not an ec2-bpipe finalizer`);
  const parsed = finalizerSchema.safeParse(value);
  if (!parsed.success) {
    throw new RuntimeFailure(`${name}: not a valid finalizer of version 1: ${describeIssues(parsed.error)}`);
  }
  const finalizer = parsed.data;
  if (!resourceIdValid(finalizer.kind, finalizer.resourceId)) {
    throw new RuntimeFailure(
      `${name}: the finalizer's resourceId "${finalizer.resourceId}" is not a ${finalizer.kind} id`,
    );
  }
  if ((finalizer.head === null) !== (finalizer.volumes.length === 0)) {
    throw new RuntimeFailure(`${name}: the finalizer's head and its volumes disagree`);
  }
  return finalizer;
}

/** The manifest the finalizer's head stream had, as far as launching needs it. */
export function finalizerManifest(finalizer: Finalizer): Manifest {
  return {
    format: FORMAT_NAME,
    formatVersion: FORMAT_VERSION,
    toolVersion: finalizer.toolVersion,
    config: finalizer.config,
    job: finalizer.head ?? finalizer.job,
    level: finalizer.headLevel ?? 'Full',
    requestedLevel: finalizer.headLevel ?? 'Full',
    baseJob: null,
    baseCreatedAt: null,
    region: finalizer.region,
    kind: finalizer.kind,
    resourceId: finalizer.resourceId,
    createdAt: finalizer.createdAt,
    volumes: finalizer.volumes.map((v) => v.volumeId),
    encryptedVolumes: finalizer.volumes.filter((v) => v.encrypted).map((v) => v.volumeId),
  };
}
