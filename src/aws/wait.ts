import { RuntimeFailure } from '../errors.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

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
  const deadline = Date.now() + timeoutS * 1000;
  let delay = 250;
  for (;;) {
    const result = await probe();
    if (result !== undefined) return result;
    if (Date.now() >= deadline) {
      throw new RuntimeFailure(timeoutMessage?.() ?? `${what} did not happen within ${timeoutS}s`);
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 5000);
  }
}
