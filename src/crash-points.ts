/**
 * The crash-point hook of the test suite: every durable step of a writer (a rename, an fsync, a
 * journal or state write, a redo applied or deleted) calls `durableStep` first, and a test that
 * sets EC2_BPIPE_CRASH_AT=N stops the process right before the Nth one, the way a power cut, a
 * SIGTERM or a full disk would. Walking N over every step proves that each leaves the old state or
 * the new one (docs/DESIGN.md, "Crash safety").
 *
 * The variable is read once, at start, and honoured only under the test runner (vitest sets
 * VITEST in every process it starts): anywhere else a set variable is refused, so that a stray
 * environment can never make a production restore stop half way.
 */
import { UsageError } from './errors.js';

export const CRASH_VARIABLE = 'EC2_BPIPE_CRASH_AT';

/** How the process stops at the chosen step. */
const WAYS = ['SIGKILL', 'SIGTERM', 'ENOSPC'] as const;
type Crash = { at: number; how: (typeof WAYS)[number] };

function parse(raw: string | undefined, underTests: boolean): Crash | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (!underTests) {
    throw new UsageError(
      `${CRASH_VARIABLE} is a hook of ec2-bpipe's test suite and is refused outside it: unset it.`,
    );
  }
  const match = /^([1-9][0-9]{0,5})(?::(SIGKILL|SIGTERM|ENOSPC))?$/.exec(raw);
  if (match === null) {
    throw new UsageError(`${CRASH_VARIABLE}=${raw}: expected N, N:SIGKILL, N:SIGTERM or N:ENOSPC`);
  }
  const how = WAYS.find((way) => way === (match[2] ?? 'SIGKILL')) ?? 'SIGKILL';
  return { at: Number(match[1]), how };
}

let crash: Crash | undefined;
let steps = 0;

/** Reads the variable; called once as the command line starts. Throws a UsageError outside the tests. */
export function armCrashPoints(env: NodeJS.ProcessEnv = process.env): void {
  crash = parse(env[CRASH_VARIABLE], env.VITEST !== undefined);
  steps = 0;
}

/**
 * Called right before a durable step; `what` names it (the file and the operation). At the chosen
 * step the process is killed, signalled, or the step fails as a full disk fails it.
 */
export async function durableStep(what: string): Promise<void> {
  steps += 1;
  if (crash === undefined || steps !== crash.at) return;
  process.stderr.write(`crash point ${steps} (${crash.how}): before ${what}\n`);
  switch (crash.how) {
    case 'SIGKILL':
      process.kill(process.pid, 'SIGKILL');
      break;
    case 'SIGTERM':
      process.kill(process.pid, 'SIGTERM');
      break;
    case 'ENOSPC':
      throw Object.assign(new Error(`ENOSPC: no space left on device, ${what}`), {
        code: 'ENOSPC',
        syscall: 'write',
      });
  }
  // A signal is delivered on the event loop's next turn: the step must not run before it. The
  // timer only keeps the loop alive until then.
  await new Promise((resolve) => setTimeout(resolve, 60_000));
}
