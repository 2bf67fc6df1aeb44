import { afterEach, describe, expect, it } from 'vitest';
import { POLICY, pollUntil, useClock, withRetry } from '../../src/retry.js';

/** A clock that records every sleep and moves its time by it, instantly. */
function fakeClock() {
  const slept: number[] = [];
  let now = 0;
  return {
    slept,
    clock: {
      sleep: (ms: number) => {
        slept.push(ms);
        now += ms;
        return Promise.resolve();
      },
      now: () => now,
    },
  };
}

let restore: (() => void) | undefined;
afterEach(() => restore?.());

describe('the retry policy', () => {
  it('retries a block read with exponential delays up to 5 s, ten attempts in all, then gives up', async () => {
    const fake = fakeClock();
    restore = useClock(fake.clock);
    let attempts = 0;
    const failing = withRetry(
      POLICY.blockRead,
      () => true,
      () => {
        attempts++;
        return Promise.reject(new Error(`attempt ${attempts}`));
      },
    );
    await expect(failing).rejects.toThrow('attempt 10');
    expect(fake.slept).toEqual([200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
  });

  it('stops at once on an error the caller does not retry, and scales every delay', async () => {
    const fake = fakeClock();
    restore = useClock(fake.clock, 0.01);
    let attempts = 0;
    const result = await withRetry(
      POLICY.blockWrite,
      (err) => (err as Error).message === 'later',
      () => {
        attempts++;
        return attempts < 3 ? Promise.reject(new Error('later')) : Promise.resolve('written');
      },
    );
    expect(result).toBe('written');
    expect(fake.slept).toEqual([15, 30]);
    await expect(
      withRetry(
        POLICY.blockWrite,
        () => false,
        () => Promise.reject(new Error('final')),
      ),
    ).rejects.toThrow('final');
    expect(fake.slept).toHaveLength(2);
  });

  it('polls with growing delays until the probe answers, and fails naming what did not happen after the timeout', async () => {
    const fake = fakeClock();
    restore = useClock(fake.clock);
    let probes = 0;
    expect(await pollUntil('the thing', 60, () => Promise.resolve(++probes === 4 ? 'done' : undefined))).toBe(
      'done',
    );
    expect(fake.slept).toEqual([250, 500, 1000]);
    await expect(pollUntil('snapshot completion', 10, () => Promise.resolve(undefined))).rejects.toThrow(
      'snapshot completion did not happen within 10s',
    );
  });
});
