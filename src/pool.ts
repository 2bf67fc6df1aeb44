/**
 * `work`, started now and awaited later (work sent side by side with other work, or checked in
 * an order of its own): a failure it meets before its await is not an unhandled rejection, and
 * the await still throws it.
 */
export function awaitedLater<T>(work: Promise<T>): Promise<T> {
  work.catch(() => undefined);
  return work;
}

/** How many calls may be in flight: a fixed count, or one that follows what the service allows. */
export interface WorkerLimit {
  /** The most it will ever allow: it sizes the reorder window, hence the memory. */
  readonly max: number;
  current(): number;
  /** Told after every call settles, whatever its outcome. */
  settled(): void;
}

export function fixedLimit(workers: number): WorkerLimit {
  return { max: workers, current: () => workers, settled: () => undefined };
}

/**
 * When a round saw throttling the limit drops to this share of itself. 0.7 is the back-off the
 * AWS SDKs' adaptive retry mode uses (CUBIC's beta): gentler than TCP's halving, because AWS
 * throttles by request rate and a small cut already brings the rate under the quota.
 */
const BACK_OFF = 0.7;

/**
 * How long the limit must run without throttling before it gains a worker. AWS's quotas are
 * request rates, so the climb is paced in time, not in calls: at 10 ms a request, a climb per
 * round of calls would add a worker every few milliseconds and keep the limit far above what
 * the rate allows. A quarter second climbs from 1 to 64 workers in about 16 s, short beside a
 * volume's transfer.
 */
const CLIMB_INTERVAL_MS = 250;

/**
 * Additive increase, multiplicative decrease, driven by throttled requests (AWS's answer when an
 * account exceeds its EBS direct API request rate). `lastThrottledSentAt()` gives the time (on
 * the `now` clock, milliseconds) at which the latest throttled request had been sent. A request
 * sent after the last cut and still throttled shows the limit is still too high: it drops to
 * BACK_OFF of itself. Requests sent before the cut say nothing new, so one burst of refusals
 * counts once. Every CLIMB_INTERVAL_MS without new throttling adds a worker, up to `max`.
 *
 * More workers cannot raise the rate AWS accepts; they only add refused requests and retries. So
 * the limit follows the rate, and `throttleBound()` says when that rate, not the worker count, was
 * what held the transfer back.
 */
export class AdaptiveLimit implements WorkerLimit {
  private limit: number;
  /** When the limit was last cut, and last changed (cut or climbed). */
  private lastCut: number;
  private lastChange: number;
  private calls = 0;
  private limitSum = 0;
  /** How often the limit was cut, and its lowest value. */
  cuts = 0;
  lowest: number;

  constructor(
    readonly max: number,
    private readonly lastThrottledSentAt: () => number,
    private readonly now: () => number = () => performance.now(),
    private readonly climbIntervalMs = CLIMB_INTERVAL_MS,
  ) {
    if (!Number.isInteger(max) || max < 1) throw new Error('AdaptiveLimit: max must be an integer >= 1');
    this.limit = max;
    this.lowest = max;
    this.lastCut = now();
    this.lastChange = this.lastCut;
  }

  current(): number {
    return Math.max(1, Math.floor(this.limit));
  }

  settled(): void {
    this.calls++;
    this.limitSum += this.current();
    const now = this.now();
    if (this.lastThrottledSentAt() > this.lastCut) {
      this.limit = Math.max(1, this.limit * BACK_OFF);
      this.lastCut = now;
      this.lastChange = now;
      this.cuts++;
      this.lowest = Math.min(this.lowest, this.current());
    } else if (this.limit < this.max && now - this.lastChange >= this.climbIntervalMs) {
      this.limit = Math.min(this.max, this.limit + 1);
      this.lastChange = now;
    }
  }

  /** The mean limit the settled calls ran under. */
  mean(): number {
    return this.calls === 0 ? this.max : this.limitSum / this.calls;
  }

  /**
   * Whether throttling held the limit well under `max` (a quarter or more, on average): then
   * AWS's request rate, not the worker count, bounded the transfer.
   */
  throttleBound(): boolean {
    return this.cuts > 0 && this.mean() <= this.max * 0.75;
  }
}

function limitOf(workers: number | WorkerLimit): WorkerLimit {
  return typeof workers === 'number' ? fixedLimit(workers) : workers;
}

/**
 * How many results orderedMap holds at most by default, in flight or waiting for their turn:
 * twice the workers, so that one slow call does not stop the others for long. The backup sizes
 * its own in bytes (backup/volume-stream.ts).
 */
function reorderWindow(maxWorkers: number): number {
  return maxWorkers * 2;
}

/**
 * Maps `source` through `fn` with at most `workers` calls in flight, and yields the results in
 * source order. At most `window` results (in flight or finished but not yet yielded) exist at once,
 * which bounds memory whatever the source length.
 */
export async function* orderedMap<T, R>(
  source: AsyncIterable<T> | Iterable<T>,
  workers: number | WorkerLimit,
  fn: (item: T) => Promise<R>,
  window = reorderWindow(limitOf(workers).max),
): AsyncGenerator<R> {
  const limit = limitOf(workers);
  if (limit.max < 1 || window < limit.max) {
    throw new Error('orderedMap: need workers >= 1 and window >= workers');
  }
  const iterator: AsyncIterator<T> | Iterator<T> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  const queue: Promise<R>[] = [];
  let running = 0;
  const waiters: (() => void)[] = [];
  // Calls start strictly in source order: a freed place goes straight to the longest waiter, and
  // no new item takes one while any waits. A caller whose memory is shared in order (the backup's
  // ring keeps a slot for the block the stream needs next) relies on that block having started
  // whenever a later one has.
  const acquire = (): Promise<void> => {
    if (waiters.length === 0 && running < limit.current()) {
      running++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => waiters.push(resolve));
  };
  const release = (): void => {
    running--;
    limit.settled();
    // As many waiters as there are free places (more than one when the limit has just grown).
    while (waiters.length > 0 && running < limit.current()) {
      running++;
      waiters.shift()?.();
    }
  };
  let exhausted = false;
  try {
    for (;;) {
      while (!exhausted && queue.length < window) {
        const next = await iterator.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        const item = next.value;
        const result = acquire().then(async () => {
          try {
            return await fn(item);
          } finally {
            release();
          }
        });
        // The rejection is observed when this result reaches the head of the queue.
        result.catch(() => undefined);
        queue.push(result);
      }
      const head = queue.shift();
      if (head === undefined) return;
      yield await head;
    }
  } finally {
    await Promise.allSettled(queue);
    if (!exhausted) await iterator.return?.();
  }
}

/**
 * Runs tasks with at most `limit` in flight. `run` waits for a free slot, so a producer that
 * awaits it is held back (backpressure); the first failure is thrown by the next `run` or `drain`.
 */
export class Slots {
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  private readonly limit: WorkerLimit;

  constructor(limit: number | WorkerLimit) {
    this.limit = limitOf(limit);
  }

  async run(task: () => Promise<void>): Promise<void> {
    while (this.inFlight.size >= this.limit.current()) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure.error;
    const promise: Promise<void> = task()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.inFlight.delete(promise);
        this.limit.settled();
      });
    this.inFlight.add(promise);
  }

  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure.error;
  }
}
