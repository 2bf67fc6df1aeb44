/** A mistake in how the tool was called or configured: exit code 2, nothing was changed. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Something failed while doing the work (AWS, the stream, the disk): exit code 1. */
export class RuntimeFailure extends Error {
  readonly exitCode = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RuntimeFailure';
  }
}

export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError ? 2 : 1;
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The error's name and message, as a log line shows an AWS error: `AccessDenied: not allowed`. */
export function describeError(err: unknown): string {
  // Our own errors already say what and where; an AWS or system error needs its name.
  if (err instanceof UsageError || err instanceof RuntimeFailure) return err.message;
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
