/**
 * The one retry policy of the tool, for what the SDK does not retry itself: a block whose body
 * broke or failed its checksum, a write to a snapshot EBS has not made visible yet, and the
 * polling of snapshots, images and instances. The SDK keeps its own retries (throttling, 5xx,
 * resets before a response) with its standard strategy.
 *
 * Every delay goes through one clock, so tests never sleep through real back-off: a unit test
 * installs its own clock, and an end-to-end test sets EC2_BPIPE_BACKOFF_SCALE (CONTRIBUTING.md).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RuntimeFailure } from './errors.js';

export interface Clock {
  sleep(ms: number): Promise<unknown>;
  now(): number;
}

/** Multiplies every delay below; 1 in production. */
function scaleFromEnvironment(raw: string | undefined): number {
  const value = raw === undefined ? 1 : Number(raw);
  return Number.isFinite(value) && value >= 0 && value <= 1 ? value : 1;
}

const realClock: Clock = { sleep: (ms) => sleep(ms), now: () => Date.now() };
let clock: Clock = realClock;
let scale = scaleFromEnvironment(process.env.EC2_BPIPE_BACKOFF_SCALE);

/**
 * The scale of every delay: 1 in production. The AWS clients use it to scale the SDK's own
 * retry back-off too (src/aws/clients.ts), so a test's throttled requests do not sleep in real time.
 */
export function backoffScale(): number {
  return scale;
}

/** Replaces the clock (and the scale) for a unit test; returns a function that restores them. */
export function useClock(replacement: Clock, delayScale = 1): () => void {
  const previous = { clock, scale };
  clock = replacement;
  scale = delayScale;
  return () => {
    ({ clock, scale } = previous);
  };
}

export interface RetryPolicy {
  attempts: number;
  /** Delay before attempt n (1-based, n >= 2), before scaling. */
  delayMs: (attempt: number) => number;
}

/** The policies, named for what they retry. */
export const POLICY = {
  /**
   * A block read: exponential from 200 ms to 5 s, 10 attempts (about 21 s in all), so a block
   * that keeps failing its checksum fails the job instead of hanging it.
   */
  blockRead: { attempts: 10, delayMs: (n: number) => Math.min(200 * 2 ** (n - 2), 5000) },
  /**
   * A block write: linear 1.5 s steps, 12 attempts (about 100 s), since right after StartSnapshot
   * EBS may answer ResourceNotFound for a while; coldsnap waits about as long.
   */
  blockWrite: { attempts: 12, delayMs: (n: number) => 1500 * (n - 1) },
} satisfies Record<string, RetryPolicy>;

/** Runs `fn` until it succeeds, `retryable` says no, or the policy's attempts are spent. */
export async function withRetry<T>(
  policy: RetryPolicy,
  retryable: (err: unknown) => boolean,
  fn: (attempt: number) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.attempts || !retryable(err)) throw err;
      await clock.sleep(policy.delayMs(attempt + 1) * scale);
    }
  }
}

/**
 * Polls `probe` with exponential back-off (0.25 s up to 5 s) until it returns a value. After
 * `timeoutS` it fails with `timeoutMessage()`, or a plain message naming `what`.
 */
export async function pollUntil<T>(
  what: string,
  timeoutS: number,
  probe: () => Promise<T | undefined>,
  timeoutMessage?: () => string,
): Promise<T> {
  const deadline = clock.now() + timeoutS * 1000;
  let delay = 250;
  for (;;) {
    const result = await probe();
    if (result !== undefined) return result;
    if (clock.now() >= deadline) {
      throw new RuntimeFailure(timeoutMessage?.() ?? `${what} did not happen within ${timeoutS}s`);
    }
    await clock.sleep(delay * scale);
    delay = Math.min(delay * 2, 5000);
  }
}

/** Network failures worth another attempt, by their Node error code. */
const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ECONNREFUSED',
]);

export function errorName(err: unknown): string {
  return err instanceof Error ? err.name : '';
}

export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}

export function transientNetworkError(err: unknown): boolean {
  return TRANSIENT_CODES.has(errorCode(err) ?? '');
}
