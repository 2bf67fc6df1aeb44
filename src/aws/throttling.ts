/**
 * How AWS's throttling is seen and answered: the share of EBS requests it refused, and a worker
 * limit that follows the request rate AWS accepts (see AdaptiveLimit) for the block reads of a
 * backup and the block writes of a restore.
 */
import { AdaptiveLimit, fixedLimit, type WorkerLimit } from '../pool.js';
import type { RequestCounts } from './clients.js';

/** The EBS requests sent between two counts, how many AWS throttled, and their share in percent. */
export function throttledSince(
  before: RequestCounts | undefined,
  after: RequestCounts | undefined,
): { requests: number; throttled: number; percent: number } | undefined {
  if (before === undefined || after === undefined) return undefined;
  const requests = after.requests - before.requests;
  const throttled = after.throttled - before.throttled;
  if (requests === 0) return undefined;
  return { requests, throttled, percent: Math.round((throttled / requests) * 100) };
}

/** `, 12% of 2300 EBS requests throttled`: what AWS's throttling cost this volume, or nothing. */
export function throttledShare(before: RequestCounts | undefined, after: RequestCounts | undefined): string {
  const since = throttledSince(before, after);
  return since === undefined ? '' : `, ${since.percent}% of ${since.requests} EBS requests throttled`;
}

/** The worker limit of one volume: adaptive when asked and when throttling can be seen. */
export function workerLimit(workers: number, adapt: boolean, counts: RequestCounts | undefined): WorkerLimit {
  return adapt && counts !== undefined
    ? new AdaptiveLimit(workers, () => counts.lastThrottledSentAt)
    : fixedLimit(workers);
}

/**
 * `; AWS's request rate held it to 3.2 of 16 workers on average (lowest 2): more workers would not
 * help`, when throttling kept the limit well under the configured workers for the volume.
 */
export function throttleNote(limit: WorkerLimit): string {
  if (!(limit instanceof AdaptiveLimit) || !limit.throttleBound()) return '';
  return (
    `; AWS's request rate held it to ${limit.mean().toFixed(1)} of ${limit.max} workers on average` +
    ` (lowest ${limit.lowest}): more workers would not help`
  );
}
