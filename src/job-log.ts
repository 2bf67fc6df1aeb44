/**
 * How our stderr lines reach a Bacula job log. The bpipe plugin reads the reader's stderr (and the
 * writer's merged output) whenever select() says it is readable, up to 1023 bytes at a time, and
 * turns each read into one job message, prefixed with the catalog path on its first line only.
 * Two lines written before the plugin reads again become one message whose second line has no
 * prefix: the cause of a failure then hides on an unprefixed line (checked on Bacula 9.6.7). So
 * under a File Daemon, lines are written one at a time, LINE_GAP_MS apart, and none before
 * FIRST_LINE_AFTER_MS: the plugin sleeps a second after starting us before it reads anything,
 * then reads stderr before every data chunk and waits in select() on it at the end of a job.
 * Best effort: a File Daemon stalled for longer than the gap (a Storage Daemon waiting for a
 * volume) still reads two lines at once.
 */
import { readFileSync } from 'node:fs';

/** Time between two lines under Bacula: the plugin's read loop turns in well under 1 ms when idle. */
export const LINE_GAP_MS = 30;

/** The plugin's `sleep(1)` after it starts the command (which began before we did), with a margin. */
export const FIRST_LINE_AFTER_MS = 1100;

/**
 * Lines waiting at most. Beyond, the backlog is written at once: a burst (debug logging) may then
 * merge in the job log, but memory stays bounded and the data path never waits on the log.
 */
export const MAX_QUEUED_LINES = 200;

/** How far up the process tree a File Daemon is looked for: bacula-fd, then `sh -c`, then us. */
const ANCESTORS_LOOKED_AT = 4;

/** The parent pid and command name of a process, from /proc (Linux); undefined elsewhere. */
function processEntry(pid: number): { ppid: number; name: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // `pid (name) state ppid …`: the name may hold spaces and parentheses, so split at the last ')'.
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    return Number.isInteger(ppid) ? { ppid, name } : undefined;
  } catch {
    return undefined;
  }
}

/** True when a Bacula File Daemon started this process (through bpipe's shell). */
export function startedByBacula(pid = process.ppid): boolean {
  let current = pid;
  for (let i = 0; i < ANCESTORS_LOOKED_AT && current > 1; i++) {
    const entry = processEntry(current);
    if (entry === undefined) return false;
    if (entry.name === 'bacula-fd') return true;
    current = entry.ppid;
  }
  return false;
}

/** Blocks the thread for `ms`: only for the last lines of a process that is about to exit. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export interface LineSink {
  write(text: string): void;
}

/**
 * Writes lines at least `gapMs` apart, in order, without blocking the data path: a line that
 * comes too soon waits in a queue drained by a timer. `flushSync()` writes what is left, keeping
 * the gaps, for a process that exits now.
 */
export class PacedLines implements LineSink {
  private readonly queue: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** When the last line was written, as if one had been written `gapMs` before `firstAt`. */
  private last: number;

  /** `now` counts from the process start (performance.now()), like `firstAt`. */
  constructor(
    private readonly out: LineSink,
    private readonly gapMs = LINE_GAP_MS,
    firstAt = FIRST_LINE_AFTER_MS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.last = firstAt - gapMs;
  }

  write(text: string): void {
    // One record may hold several lines (a stack under debug): each is its own message.
    for (const line of text.split(/(?<=\n)/)) {
      if (line.length > 0) this.queue.push(line);
    }
    this.drain();
  }

  private drain(): void {
    if (this.queue.length > MAX_QUEUED_LINES) this.emitAll();
    while (this.queue.length > 0) {
      const wait = this.last + this.gapMs - this.now();
      if (wait > 0) {
        this.timer ??= setTimeout(() => {
          this.timer = undefined;
          this.drain();
        }, wait);
        return;
      }
      this.emit();
    }
  }

  private emit(): void {
    const line = this.queue.shift();
    if (line === undefined) return;
    this.out.write(line);
    this.last = this.now();
  }

  /** The whole backlog in one write. */
  private emitAll(): void {
    const lines = this.queue.splice(0);
    if (lines.length === 0) return;
    this.out.write(lines.join(''));
    this.last = this.now();
  }

  flushSync(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length > MAX_QUEUED_LINES) this.emitAll();
    while (this.queue.length > 0) {
      const wait = this.last + this.gapMs - this.now();
      if (wait > 0) sleepSync(Math.ceil(wait));
      this.emit();
    }
  }
}
