import { UsageError } from '../errors.js';
import { VOLUME_ID } from '../ids.js';
import type { Manifest } from '../format/members.js';

/** `restore --volume=vol-a,vol-b`: the volumes to restore, or undefined for all of them. */
export function parseVolumeSelection(raw: string | undefined): ReadonlySet<string> | undefined {
  if (raw === undefined) return undefined;
  const ids = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (ids.length === 0 || ids.some((id) => !VOLUME_ID.test(id))) {
    throw new UsageError(`--volume=${raw}: expected volume ids (vol-...), comma-separated.`);
  }
  return new Set(ids);
}

/** Refuses a --volume that names a volume the stream does not hold. */
export function refuseUnknownVolumes(selection: ReadonlySet<string> | undefined, manifest: Manifest): void {
  const unknown = [...(selection ?? [])].filter((v) => !manifest.volumes.includes(v));
  if (unknown.length) {
    throw new UsageError(
      `--volume=${unknown.join(',')}: not in the stream of job ${manifest.job} of ${manifest.resourceId} (it holds ${manifest.volumes.join(', ')}).`,
    );
  }
}
