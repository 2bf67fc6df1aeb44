import { UsageError } from '../errors.js';
import { JOB_NAME } from '../ids.js';
import { type Level, levelSchema } from '../format/fields.js';
import type { ChainLink } from './links.js';

export function parseLevel(raw: string | undefined): Level {
  const level = levelSchema.options.find((l) => l.toLowerCase() === (raw ?? 'Full').toLowerCase());
  if (!level) throw new UsageError(`--level=${raw}: expected Full, Incremental or Differential.`);
  return level;
}

export function checkJobName(job: string, flag: string): string {
  if (!JOB_NAME.test(job)) {
    throw new UsageError(
      `${flag}=${job}: a job name may hold only letters, digits, ".", "_" and "-" (at most 128).`,
    );
  }
  return job;
}

/** A base, with a note when it is not the one asked for; or why there is none. */
export type BaseChoice = { base: ChainLink; note?: string } | { base: undefined; reason: string };

/**
 * The base of an Incremental or Differential for one volume (docs/DESIGN.md §4):
 * - with a previous job (Bacula's %S): its snapshot if that stream is complete, else the newest
 *   complete one found by walking its base-job tags back;
 * - without: the newest complete snapshot;
 * - a Differential needs a Full, so the walk continues to the newest complete Full;
 * - a base of another size cannot be diffed into this volume's stream.
 */
export function chooseBase(
  links: ChainLink[],
  level: Level,
  prevJob: string | undefined,
  sizeGiB: number,
): BaseChoice {
  const byJob = new Map(links.map((l) => [l.job, l]));
  const usable = (l: ChainLink): boolean => l.complete && (level !== 'Differential' || l.level === 'Full');
  const want = level === 'Differential' ? 'complete Full' : 'complete stream';
  let candidate: ChainLink | undefined;
  let note: string | undefined;
  let link = prevJob === undefined ? undefined : byJob.get(prevJob);
  if (prevJob !== undefined && link !== undefined) {
    const seen = new Set<string>();
    while (link && !usable(link)) {
      seen.add(link.job);
      const next: ChainLink | undefined = link.baseJob ? byJob.get(link.baseJob) : undefined;
      if (!next || seen.has(next.job)) {
        return { base: undefined, reason: `no ${want} was found going back from job ${prevJob}` };
      }
      link = next;
    }
    candidate = link;
  } else {
    // No previous job given, or it left no snapshot at all (it failed before taking one, or its
    // snapshots were deleted): the newest usable stream is what it would have walked back to.
    candidate = links.find(usable);
    if (!candidate) {
      const why = prevJob === undefined ? '' : `job ${prevJob} left no snapshot, and `;
      return { base: undefined, reason: `${why}no ${want} of this volume exists` };
    }
    if (prevJob !== undefined) {
      note = `job ${prevJob} left no snapshot (it failed before taking one, or they were deleted); the newest ${want} is job ${candidate.job}`;
    }
  }
  if (candidate.sizeGiB !== sizeGiB) {
    return {
      base: undefined,
      reason: `the base ${candidate.snapshotId} is ${candidate.sizeGiB} GiB, the volume now ${sizeGiB} GiB`,
    };
  }
  return note === undefined ? { base: candidate } : { base: candidate, note };
}

/** One volume as level choice sees it: its size now, and this config's snapshots of it. */
export interface VolumeHistory {
  volumeId: string;
  sizeGiB: number;
  links: ChainLink[];
}

export interface LevelChoice {
  level: Level;
  baseJob: string | null;
  /** Per volume id, the snapshot its changed blocks are listed against. */
  bases: Map<string, ChainLink>;
  baseCreatedAt: string | null;
  /** What the job log should say about the choice, in order. */
  said: { level: 'info' | 'warn'; text: string }[];
}

/**
 * The level a stream really gets (docs/DESIGN.md §4). Every volume needs a usable base from the
 * same job; when one has none, the whole stream becomes a Full, and `said` tells why.
 */
export function chooseLevel(
  requested: Level,
  prevJob: string | undefined,
  volumes: VolumeHistory[],
): LevelChoice {
  const said: LevelChoice['said'] = [];
  const full = (): LevelChoice => ({
    level: 'Full',
    baseJob: null,
    bases: new Map(),
    baseCreatedAt: null,
    said,
  });
  if (requested === 'Full') return full();
  const bases = new Map<string, ChainLink>();
  for (const volume of volumes) {
    const choice = chooseBase(volume.links, requested, prevJob, volume.sizeGiB);
    if (!choice.base) {
      said.push({
        level: 'warn',
        text: `${requested} of ${volume.volumeId} not possible: ${choice.reason}; taking a Full`,
      });
      return full();
    }
    if (choice.note !== undefined) said.push({ level: 'info', text: `${volume.volumeId}: ${choice.note}` });
    bases.set(volume.volumeId, choice.base);
  }
  const jobs = [...new Set([...bases.values()].map((b) => b.job))];
  const base = [...bases.values()][0];
  if (base === undefined || jobs.length > 1) {
    said.push({
      level: 'warn',
      text: `the volumes' bases come from different jobs (${jobs.join(', ')}); taking a Full`,
    });
    return full();
  }
  said.push({
    level: 'info',
    text: `${requested} based on job ${base.job} (${base.level}, ${base.startTime.toISOString()})`,
  });
  return { level: requested, baseJob: base.job, bases, baseCreatedAt: base.startTime.toISOString(), said };
}
