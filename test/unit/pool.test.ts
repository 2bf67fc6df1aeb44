import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AdaptiveLimit, orderedMap, Slots } from '../../src/pool.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The tests run on vitest's fake clock: `setTimeout` and `performance.now` advance only as the
 * timers fire, so a test proves an order of events and never races the machine's load.
 */
beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Runs `work` to its end on the fake clock, firing each timer as the work reaches it. */
async function onFakeClock<T>(work: () => Promise<T>): Promise<T> {
  const done = work();
  // A rejection is read by the caller once the timers ran; until then it is not unhandled.
  done.catch(() => undefined);
  await vi.runAllTimersAsync();
  return done;
}

async function* from<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

describe('orderedMap (the reordering window)', () => {
  it('yields results in source order whatever the completion order, within the concurrency and window bounds', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 60 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 6 }),
        async (delays, workers, extra) => {
          const window = workers + extra;
          let running = 0;
          let maxRunning = 0;
          let started = 0;
          let yielded = 0;
          let maxAhead = 0;
          const out: number[] = [];
          await onFakeClock(async () => {
            for await (const value of orderedMap(
              from(delays.map((d, i) => [d, i] as const)),
              workers,
              async ([delay, i]) => {
                started++;
                maxAhead = Math.max(maxAhead, started - yielded);
                running++;
                maxRunning = Math.max(maxRunning, running);
                await sleep(delay);
                running--;
                return i;
              },
              window,
            )) {
              out.push(value);
              yielded++;
            }
          });
          expect(out).toEqual(delays.map((_, i) => i));
          expect(maxRunning).toBeLessThanOrEqual(workers);
          expect(maxAhead).toBeLessThanOrEqual(window);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('runs calls in parallel', async () => {
    const t0 = performance.now();
    const out: number[] = [];
    await onFakeClock(async () => {
      for await (const v of orderedMap(from([1, 2, 3, 4, 5, 6, 7, 8]), 8, async (v) => {
        await sleep(100);
        return v;
      }))
        out.push(v);
    });
    expect(out).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // Eight calls of 100 ms each, all at once: one call's time on the clock, not eight.
    expect(performance.now() - t0).toBe(100);
  });

  it('starts calls strictly in source order, even while the limit moves', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.nat({ max: 100 }), { minLength: 1, maxLength: 20 }),
        fc.array(fc.nat({ max: 2 }), { minLength: 1, maxLength: 20 }),
        async (count, max, steps, delays) => {
          let settled = 0;
          let current = max;
          const limit = {
            max,
            current: () => current,
            settled: () => {
              current = 1 + ((steps[settled++ % steps.length] ?? 0) % max);
            },
          };
          const started: number[] = [];
          await onFakeClock(async () => {
            for await (const _ of orderedMap(
              from(Array.from({ length: count }, (_, i) => i)),
              limit,
              async (i) => {
                started.push(i);
                // 0: the call ends within the same turn, as a body already buffered does; several
                // then settle before a waiter woken by the first one has run.
                const delay = delays[i % delays.length] ?? 0;
                await (delay > 0 ? sleep(delay) : Promise.resolve());
                return i;
              },
              max * 2,
            ));
          });
          expect(started).toEqual(Array.from({ length: count }, (_, i) => i));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('propagates the first failure in source order and waits for calls in flight', async () => {
    let settled = 0;
    const run = async () => {
      const out: number[] = [];
      for await (const v of orderedMap(from([0, 1, 2, 3]), 4, async (v) => {
        await sleep(v === 1 ? 10 : 40);
        settled++;
        if (v === 1) throw new Error('block 1 failed');
        return v;
      }))
        out.push(v);
      return out;
    };
    await expect(onFakeClock(run)).rejects.toThrow('block 1 failed');
    expect(settled).toBe(4);
  });
});

/**
 * A service that refuses requests over `capacity` in flight, as AWS refuses those over its quota,
 * and a client that tries a refused request again after a short pause, as the SDK does.
 */
function quotaService(capacity: () => number) {
  const counts = { requests: 0, throttled: 0, lastThrottledSentAt: -Infinity };
  let inFlight = 0;
  const call = async (): Promise<void> => {
    for (;;) {
      counts.requests++;
      if (inFlight >= capacity()) {
        counts.throttled++;
        counts.lastThrottledSentAt = performance.now();
        await sleep(1);
        continue;
      }
      inFlight++;
      await sleep(2);
      inFlight--;
      return;
    }
  };
  return { counts, call };
}

describe('AdaptiveLimit (workers under throttling)', () => {
  it('cuts the workers while the service throttles: fewer requests per item than a fixed count', async () => {
    const items = Array.from({ length: 300 }, (_, i) => i);
    const fixed = quotaService(() => 3);
    await onFakeClock(async () => {
      for await (const _ of orderedMap(from(items), 16, fixed.call));
    });
    const adaptive = quotaService(() => 3);
    const limit = new AdaptiveLimit(16, () => adaptive.counts.lastThrottledSentAt);
    await onFakeClock(async () => {
      for await (const _ of orderedMap(from(items), limit, adaptive.call));
    });
    expect(fixed.counts.requests / items.length).toBeGreaterThan(2);
    expect(adaptive.counts.requests / items.length).toBeLessThan(
      (fixed.counts.requests / items.length) * 0.6,
    );
    expect(limit.cuts).toBeGreaterThan(0);
    expect(limit.lowest).toBeLessThanOrEqual(4);
    expect(limit.throttleBound()).toBe(true);
  });

  it('climbs back to the configured workers once throttling stops', async () => {
    let done = 0;
    const service = quotaService(() => (done < 100 ? 2 : Infinity));
    const limit = new AdaptiveLimit(12, () => service.counts.lastThrottledSentAt, undefined, 5);
    let lowDuringThrottle = 12;
    await onFakeClock(async () => {
      for await (const _ of orderedMap(from(Array.from({ length: 600 }, (_, i) => i)), limit, async () => {
        await service.call();
        done++;
        if (done === 100) lowDuringThrottle = limit.current();
      }));
    });
    expect(lowDuringThrottle).toBeLessThan(6);
    expect(limit.current()).toBe(12);
  });

  it('keeps the limit between 1 and its maximum, and cuts once for requests sent before a cut', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 64 }),
        fc.array(fc.constantFrom('quiet', 'new', 'stale'), { maxLength: 500 }),
        (max, signals) => {
          // A fake clock: each call settles one tick later; `new` is a request throttled after
          // having been sent at this tick, `stale` one sent before the last cut.
          let tick = 0;
          let lastThrottledSentAt = -Infinity;
          const limit = new AdaptiveLimit(
            max,
            () => lastThrottledSentAt,
            () => tick,
          );
          let expectedCuts = 0;
          for (const signal of signals) {
            tick++;
            const before = limit.current();
            if (signal === 'new') lastThrottledSentAt = tick;
            if (signal === 'stale') lastThrottledSentAt = Math.max(lastThrottledSentAt, -1);
            limit.settled();
            if (signal === 'new') {
              expectedCuts++;
              expect(limit.current()).toBeLessThanOrEqual(Math.max(1, before));
            }
            expect(limit.current()).toBeGreaterThanOrEqual(1);
            expect(limit.current()).toBeLessThanOrEqual(max);
          }
          expect(limit.cuts).toBe(expectedCuts);
          if (!signals.includes('new')) expect(limit.current()).toBe(max);
        },
      ),
    );
  });

  it("also bounds the restore's writes (Slots)", async () => {
    const service = quotaService(() => 2);
    const limit = new AdaptiveLimit(10, () => service.counts.lastThrottledSentAt);
    const slots = new Slots(limit);
    await onFakeClock(async () => {
      for (let i = 0; i < 200; i++) await slots.run(service.call);
      await slots.drain();
    });
    expect(limit.cuts).toBeGreaterThan(0);
    expect(service.counts.requests / 200).toBeLessThan(2);
  });
});
