import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { orderedMap } from '../../src/pool.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
          expect(out).toEqual(delays.map((_, i) => i));
          expect(maxRunning).toBeLessThanOrEqual(workers);
          expect(maxAhead).toBeLessThanOrEqual(window);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('runs calls in parallel', async () => {
    const t0 = Date.now();
    const out: number[] = [];
    for await (const v of orderedMap(from([1, 2, 3, 4, 5, 6, 7, 8]), 8, async (v) => {
      await sleep(100);
      return v;
    }))
      out.push(v);
    expect(out).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(Date.now() - t0).toBeLessThan(400);
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
    await expect(run()).rejects.toThrow('block 1 failed');
    expect(settled).toBe(4);
  });
});
