import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BlockMemory, BlockRef } from '../../src/aws/blocks.js';
import { blockRing, readWindow, readsInOrder, ringSlots } from '../../src/backup/volume-stream.js';
import { fixedLimit, type WorkerLimit } from '../../src/pool.js';
import { BlockRing, type RingSlot } from '../../src/stream/block-ring.js';

/** A few turns of the event loop: answers, bodies and writes land in any order. */
const turns = (n: number): Promise<void> =>
  n <= 0 ? Promise.resolve() : new Promise((resolve) => setImmediate(() => void turns(n - 1).then(resolve)));

/** A limit that moves between 1 and `max` as calls settle, as the adaptive one does under throttling. */
function wanderingLimit(max: number, steps: number[]): WorkerLimit {
  let at = 0;
  let current = max;
  return {
    max,
    current: () => current,
    settled: () => {
      current = 1 + ((steps[at++ % steps.length] ?? 0) % max);
    },
  };
}

interface Run {
  ring: BlockRing;
  window: number;
  limit: WorkerLimit;
  blocks: number;
  /** Event-loop turns before each answer, each body, each write; and which attempts fail. */
  delays: number[];
  failures: number[];
  /** A block whose read fails for good (its retries spent), and whether before its answer. */
  broken?: { index: number; early: boolean };
  /** The consumer stops after this many blocks. */
  stopAfter?: number;
}

/**
 * Reads every block through readsInOrder as the backup does (answer, slot, body, verified or
 * given back and retried), writes them in order with the writer giving each slot back later, and
 * says whether it finished: a read that can never get a slot would leave it waiting forever.
 */
async function readAll(run: Run): Promise<{ order: number[]; peak: number; givenBack: number }> {
  const { ring, delays, failures } = run;
  let step = 0;
  const delay = (): Promise<void> => turns(delays[step++ % delays.length] ?? 0);
  let attempt = 0;
  let inUse = 0;
  let peak = 0;
  let givenBack = 0;
  const refs: BlockRef[] = Array.from({ length: run.blocks }, (_, index) => ({ index, token: `t${index}` }));
  const read = async (
    ref: BlockRef,
    memory: BlockMemory<RingSlot>,
  ): Promise<{ index: number; slot: RingSlot }> => {
    for (;;) {
      await delay();
      if (run.broken?.index === ref.index && run.broken.early) throw new Error(`block ${ref.index} broke`);
      const slot = await memory.acquire();
      peak = Math.max(peak, ++inUse);
      await delay();
      if (run.broken?.index === ref.index) {
        inUse--;
        memory.give(slot);
        throw new Error(`block ${ref.index} broke`);
      }
      if (failures.includes(attempt++ % 50)) {
        inUse--;
        memory.give(slot);
        continue;
      }
      return { index: ref.index, slot };
    }
  };
  const order: number[] = [];
  const writes: Promise<void>[] = [];
  for await (const { index, slot } of readsInOrder(refs, run.limit, run.window, ring, read)) {
    if (order.length === run.stopAfter) {
      ring.give(slot);
      givenBack++;
      break;
    }
    order.push(index);
    // The destination writes it later, and only then is the slot free again.
    writes.push(
      delay().then(() => {
        inUse--;
        givenBack++;
        ring.give(slot);
      }),
    );
  }
  await Promise.all(writes);
  return { order, peak, givenBack };
}

function finishes<T>(work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error('the reads stopped: a block waits for a slot that never frees')),
      5000,
    );
  });
  return Promise.race([work, stuck]).finally(() => clearTimeout(timer));
}

/** Blocks 0 to n - 1: the order the stream must deliver. */
const inOrder = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

const schedule = {
  delays: fc.array(fc.nat({ max: 6 }), { minLength: 1, maxLength: 40 }),
  failures: fc.uniqueArray(fc.nat({ max: 49 }), { maxLength: 5 }),
};

describe('readsInOrder (the backup reads blocks into a ring smaller than its window)', () => {
  it('delivers every block in order and never waits forever, with the ring the backup sizes', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 160 }),
        fc.integer({ min: 1, max: 64 }),
        schedule.delays,
        schedule.failures,
        fc.option(fc.array(fc.nat({ max: 1000 }), { minLength: 1, maxLength: 20 }), { nil: undefined }),
        async (blocks, workers, delays, failures, steps) => {
          const window = readWindow(workers);
          const ring = blockRing(window, blocks);
          const limit = steps === undefined ? fixedLimit(workers) : wanderingLimit(workers, steps);
          const result = await finishes(readAll({ ring, window, limit, blocks, delays, failures }));
          expect(result.order).toEqual(inOrder(blocks));
          expect(result.givenBack).toBe(blocks);
          expect(result.peak).toBeLessThanOrEqual(ringSlots(window, blocks));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never waits forever however small the ring, down to a single free slot for the next block', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 1, max: 32 }),
        fc.integer({ min: 2, max: 12 }),
        schedule.delays,
        schedule.failures,
        fc.array(fc.nat({ max: 1000 }), { minLength: 1, maxLength: 20 }),
        async (blocks, workers, slots, delays, failures, steps) => {
          const window = readWindow(workers, 16);
          const ring = new BlockRing(slots, 16, 1);
          const limit = wanderingLimit(workers, steps);
          const result = await finishes(readAll({ ring, window, limit, blocks, delays, failures }));
          expect(result.order).toEqual(inOrder(blocks));
          expect(result.peak).toBeLessThanOrEqual(slots);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('ends with the first failure, or where the consumer stopped, and never waits forever', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 1, max: 64 }),
        schedule.delays,
        fc.nat(),
        fc.boolean(),
        fc.boolean(),
        async (blocks, workers, delays, at, early, stop) => {
          const window = readWindow(workers);
          const ring = blockRing(window, blocks);
          const index = at % blocks;
          const run = { ring, window, limit: fixedLimit(workers), blocks, delays, failures: [] };
          if (stop) {
            // The destination failed: the stream's consumer leaves after `index` blocks.
            const result = await finishes(readAll({ ...run, stopAfter: index }));
            expect(result.order).toEqual(inOrder(index));
          } else {
            await expect(finishes(readAll({ ...run, broken: { index, early } }))).rejects.toThrow(
              `block ${index} broke`,
            );
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('holds the ring to 16 MiB of blocks at 32 and 64 workers, and to the window below', () => {
    expect(ringSlots(readWindow(8), 2048)).toBe(readWindow(8) + 4);
    expect(ringSlots(readWindow(32), 2048)).toBe(32);
    expect(ringSlots(readWindow(64), 2048)).toBe(32);
    // A volume of three blocks needs no more than them and the writer's.
    expect(ringSlots(readWindow(64), 3)).toBe(7);
  });
});
