import type { Tag } from '@aws-sdk/client-ec2';
import { createHash } from 'node:crypto';
import { RESTORE_TAG } from '../../format/tags.js';
import type { RestoreSettings } from '../../config.js';

/** Tags on everything a restore creates: the restore flag, an RFC 3339 date, the original id, and the user's tags. */
export function restoreTags(settings: RestoreSettings, source: string, date: string): Tag[] {
  return [
    ...Object.entries(settings.tags).map(([Key, Value]) => ({ Key, Value })),
    { Key: RESTORE_TAG.restored, Value: 'true' },
    { Key: RESTORE_TAG.date, Value: date },
    { Key: RESTORE_TAG.source, Value: source },
  ];
}

export function tagLimitNote(dropped: string[], source: string): string {
  return `EC2 takes 50 tags per resource; ${dropped.length} original tag(s) of ${source} were left out to keep the restore tags: ${dropped.join(', ')}`;
}

/** A deterministic token, so a retried restore does not launch a second instance. */
export function idempotencyToken(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 64);
}
