/**
 * Maps `source` through `fn` with at most `workers` calls in flight, and yields the results in
 * source order. At most `window` results (in flight or finished but not yet yielded) exist at once,
 * which bounds memory whatever the source length.
 */
export async function* orderedMap<T, R>(
  source: AsyncIterable<T>,
  workers: number,
  fn: (item: T) => Promise<R>,
  window = workers * 2,
): AsyncGenerator<R> {
  if (workers < 1 || window < workers) throw new Error('orderedMap: need workers >= 1 and window >= workers');
  const iterator = source[Symbol.asyncIterator]();
  const queue: Promise<R>[] = [];
  let running = 0;
  const waiters: (() => void)[] = [];
  const acquire = async (): Promise<void> => {
    while (running >= workers) await new Promise<void>((resolve) => waiters.push(resolve));
    running++;
  };
  const release = (): void => {
    running--;
    waiters.shift()?.();
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

  constructor(private readonly limit: number) {}

  async run(task: () => Promise<void>): Promise<void> {
    while (this.inFlight.size >= this.limit) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure.error;
    const promise: Promise<void> = task()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.inFlight.delete(promise));
    this.inFlight.add(promise);
  }

  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure.error;
  }
}
