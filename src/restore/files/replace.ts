/**
 * Bacula's replace code (%r) for a restore to files: which images a Full may replace, and, by
 * hand, the refusal to roll images back to an older restore point.
 */
import { UsageError } from '../../errors.js';
import type { Manifest } from '../../format/members.js';
import type { ImageState } from '../../format/state-file.js';

/** Bacula's replace code (%r), as its letters (a, w, o, n) or words say it. */
export type ReplaceCode = 'always' | 'ifnewer' | 'ifolder' | 'never';

/**
 * What a files restore does with images that hold another restore point: a replace code, or, by
 * hand (--to-dir without --replace or --force), refuse to roll back images that hold a newer one.
 */
export type ReplacePolicy = ReplaceCode | 'refuse-rollback';

const REPLACE_CODES: Record<string, ReplaceCode> = {
  a: 'always',
  always: 'always',
  w: 'ifnewer',
  ifnewer: 'ifnewer',
  o: 'ifolder',
  ifolder: 'ifolder',
  n: 'never',
  never: 'never',
};

/** Parses --replace (Bacula's %r); absent means always, as Bacula's own default. */
export function parseReplace(raw: string | undefined): ReplaceCode {
  if (raw === undefined || raw === '') return 'always';
  const code = REPLACE_CODES[raw.toLowerCase()];
  if (code === undefined) {
    throw new UsageError(
      `--replace=${raw}: expected a Bacula replace code: a (always), w (ifnewer), o (ifolder) or n (never).`,
    );
  }
  return code;
}

/**
 * Whether Bacula's replace code keeps the images this stream would replace: the reason, or
 * undefined to apply it. Only a Full replaces images; a link continues the chain it is based on,
 * and is kept when that base was kept.
 */
export function keptBy(
  replace: ReplacePolicy,
  kept: ReadonlySet<string>,
  dir: string,
  manifest: Manifest,
  state: ImageState | undefined,
): string | undefined {
  if (manifest.level !== 'Full') {
    return manifest.baseJob !== null && kept.has(manifest.baseJob)
      ? `job ${manifest.job} not applied: its base job ${manifest.baseJob} was kept out by replace=${replace}`
      : undefined;
  }
  const held = manifest.volumes.flatMap((v) => {
    const entry = state?.volumes[v];
    return entry === undefined ? [] : [entry];
  });
  if (held.length === 0 || replace === 'always') return undefined;
  const jobs = [...new Set(held.map((h) => h.job))].join(', ');
  if (replace === 'refuse-rollback') {
    refuseRollback(dir, manifest, held);
    return undefined;
  }
  if (replace === 'never') {
    return `${dir} holds job ${jobs}: replace=never keeps it; nothing of job ${manifest.job} was written`;
  }
  const dates = held.map((h) => h.createdAt);
  if (dates.some((d) => d === undefined)) {
    return `${dir} holds job ${jobs} of an unknown date: replace=${replace} cannot compare, so it keeps it (restore with replace=always to overwrite)`;
  }
  const newestHeld =
    dates
      .map((d) => d ?? '')
      .sort()
      .at(-1) ?? '';
  const streamIsNewer = Date.parse(manifest.createdAt) > Date.parse(newestHeld);
  if (replace === 'ifnewer' && !streamIsNewer) {
    return `${dir} holds job ${jobs} of ${newestHeld}, not older than job ${manifest.job} of ${manifest.createdAt}: replace=ifnewer keeps it`;
  }
  if (replace === 'ifolder' && streamIsNewer) {
    return `${dir} holds job ${jobs} of ${newestHeld}, older than job ${manifest.job} of ${manifest.createdAt}: replace=ifolder keeps it`;
  }
  return undefined;
}

/**
 * By hand, a Full over images that hold a later restore point (or one of an unknown date) would
 * roll them back without a word: refused, as coldsnap refuses to overwrite, until --force.
 */
function refuseRollback(dir: string, manifest: Manifest, held: ImageState['volumes'][string][]): void {
  const newer = held.filter(
    (h) =>
      h.job !== manifest.job &&
      (h.createdAt === undefined || Date.parse(h.createdAt) >= Date.parse(manifest.createdAt)),
  );
  if (newer.length === 0) return;
  const what = [...new Set(newer.map((h) => `job ${h.job} of ${h.createdAt ?? 'an unknown date'}`))].join(
    ', ',
  );
  throw new UsageError(
    `${dir} holds ${what}, not older than job ${manifest.job} of ${manifest.createdAt}: restoring it would roll the images back. ` +
      'Give --force to overwrite them, or restore into another directory.',
  );
}
