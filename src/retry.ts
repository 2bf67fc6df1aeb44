const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface RetryPolicy {
  attempts: number;
  /** Delay before attempt n (1-based, n >= 2). */
  delayMs: (attempt: number) => number;
  retryable: (err: unknown) => boolean;
}

/**
 * Retries what the SDK does not: errors it considers final but that are transient for us
 * (ResourceNotFound on a just-started snapshot, ConcurrentLimitExceeded, a checksum mismatch,
 * a connection reset while a block body was being read).
 */
export async function withRetry<T>(policy: RetryPolicy, fn: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= policy.attempts || !policy.retryable(err)) throw err;
      await sleep(policy.delayMs(attempt + 1));
    }
  }
}

export function errorName(err: unknown): string {
  return err instanceof Error ? err.name : '';
}

export function errorCode(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}
