/**
 * One failure path for the whole process. Whatever ends a command early (a signal, a closed
 * stdout, a promise nobody awaited, an input that stops answering) ends in one log line that
 * says what was interrupted and what state it left, and a non-zero exit: a Bacula job log shows
 * that line, never a stack trace (those come only with --log-level=debug).
 */
import type { Logger } from 'pino';
import { stopLiveDisplay } from './display.js';
import { messageOf } from './errors.js';

/** Says what an interruption now would leave behind, or undefined when nothing. May clean up synchronously. */
export type StateNote = () => string | undefined;

const notes = new Set<StateNote>();

/** Registers what an interruption would leave; the returned function withdraws it once that no longer holds. */
export function onInterrupt(note: StateNote): () => void {
  notes.add(note);
  return () => void notes.delete(note);
}

/** The state every registered note describes, joined; runs their clean-ups. Empty when nothing is pending. */
export function interruptedState(): string {
  const said: string[] = [];
  for (const note of [...notes]) {
    try {
      const text = note();
      if (text !== undefined) said.push(text);
    } catch (err) {
      said.push(`cleaning up failed (${messageOf(err)})`);
    }
  }
  notes.clear();
  return said.join('; ');
}

/** Forgets every note: each command starts with none. */
export function resetNotes(): void {
  notes.clear();
  cleanups.clear();
}

/**
 * Work that must run before the process ends on a signal, and cannot run synchronously: a restore
 * test removing the instance and images it launched. It resolves to a note on what it did.
 */
export type Cleanup = () => Promise<string | undefined>;

const cleanups = new Set<Cleanup>();

/** Registers a clean-up that a signal awaits before the exit; the returned function withdraws it. */
export function onInterruptCleanup(cleanup: Cleanup): () => void {
  cleanups.add(cleanup);
  return () => void cleanups.delete(cleanup);
}

/**
 * How long a signal waits for the clean-ups: a restore test terminating its instance waits for
 * EC2 to end it (minutes). A second signal ends the process at once.
 */
const CLEANUP_LIMIT_MS = 15 * 60 * 1000;

/** Runs the registered clean-ups once; their notes, joined. */
async function runCleanups(): Promise<string> {
  const pending = [...cleanups];
  cleanups.clear();
  const said = await Promise.all(
    pending.map((cleanup) => cleanup().catch((err: unknown) => `cleaning up failed (${messageOf(err)})`)),
  );
  return said.filter((s) => s !== undefined).join('; ');
}

const SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

export interface ProcessGuard {
  /** The command's verdict is in: a later emptied event loop is the normal end. */
  settle(): void;
}

/**
 * Installs the process-level handlers for one run of the CLI. `context` gives the logger (when
 * one exists yet) and the command's name.
 */
export function guardProcess(context: () => { log: Logger | undefined; command: string }): ProcessGuard {
  let settled = false;
  let ending = false;
  const end = (what: string, code: number, err?: unknown, cleaned = ''): void => {
    if (ending) return;
    ending = true;
    const { log, command } = context();
    // On a terminal, the live display goes first: the error is the last thing on the screen.
    stopLiveDisplay();
    const state = [interruptedState(), cleaned].filter(Boolean).join('; ');
    const line = `${command ? `${command}: ` : ''}${what}${state ? `; ${state}` : ''}`;
    if (log) {
      log.error(line);
      if (err instanceof Error && err.stack) log.debug({ stack: err.stack }, 'where it happened');
    } else {
      process.stderr.write(`error: ${line}\n`);
    }
    process.exit(code);
  };
  for (const [signal, code] of Object.entries(SIGNAL_CODES)) {
    process.once(signal, () => {
      if (cleanups.size === 0 || ending) {
        end(`interrupted by ${signal}`, code);
        return;
      }
      // Once: a second signal finds no handler and ends the process at once.
      context().log?.warn(
        `${signal}: removing what this run created before exiting (a second ${signal} exits now)`,
      );
      const limit = setTimeout(
        () => end(`interrupted by ${signal}`, code, undefined, 'its clean-up did not finish in time'),
        CLEANUP_LIMIT_MS,
      );
      void runCleanups().then((said) => {
        clearTimeout(limit);
        end(`interrupted by ${signal}`, code, undefined, said);
      });
    });
  }
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    end(
      err.code === 'EPIPE'
        ? 'standard output was closed by its reader (this is how Bacula cancels a job)'
        : `writing to standard output failed (${err.code ?? messageOf(err)})`,
      1,
      err,
    );
  });
  process.on('unhandledRejection', (err) => end(`unexpected failure: ${messageOf(err)}`, 1, err));
  process.on('uncaughtException', (err) => end(`unexpected failure: ${messageOf(err)}`, 1, err));
  // Node exits when nothing is left to wait for. Before a verdict that means something stopped
  // answering without failing (an input that never ends, a stalled parser): an error, not success.
  process.on('beforeExit', () => {
    if (!settled) end('stopped without a verdict: an input or a service stopped answering', 1);
  });
  return {
    settle: () => {
      settled = true;
    },
  };
}
