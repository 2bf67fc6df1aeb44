import type { createLogUpdate } from 'log-update';

/** How often the live display is redrawn at most: often enough to look live, rarely enough to cost nothing. */
const REDRAW_MS = 200;

export interface VolumeStatus {
  volumeId: string;
  /** The line that describes it now (VolumeProgress.line), built when drawn. */
  line: () => string;
  blocks: number;
  bytes: number;
}

/**
 * The live progress display of an operator's terminal: the volume under way and the total so far,
 * redrawn in place on stderr (log-update). Log lines are written above it: the display clears
 * itself, the line is written, and it is drawn again. Only used when stderr is a terminal and
 * the log is in the human format; Bacula and pipes get the periodic log lines instead.
 */
export class LiveDisplay {
  private readonly update: ReturnType<typeof createLogUpdate>;
  private readonly volumes = new Map<string, VolumeStatus>();
  private readonly started = Date.now();
  private lastDraw = 0;
  private finished = 0;
  private finishedBytes = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    create: typeof createLogUpdate,
  ) {
    this.update = create(stream, { showCursor: true });
  }

  /** Writes a log line above the display. */
  write(line: string): void {
    this.update.clear();
    this.stream.write(line);
    this.draw(true);
  }

  show(status: VolumeStatus): void {
    this.volumes.set(status.volumeId, status);
    this.draw(false);
  }

  /** The volume is done: it leaves the display and counts in the total. */
  end(volumeId: string): void {
    const status = this.volumes.get(volumeId);
    if (status === undefined) return;
    this.volumes.delete(volumeId);
    this.finished += status.blocks;
    this.finishedBytes += status.bytes;
    this.draw(true);
  }

  close(): void {
    this.update.clear();
    this.update.done();
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = now;
    const lines = [...this.volumes.values()].map((v) => v.line());
    if (lines.length === 0 && this.finished === 0) {
      this.update.clear();
      return;
    }
    const blocks = this.finished + [...this.volumes.values()].reduce((n, v) => n + v.blocks, 0);
    const bytes = this.finishedBytes + [...this.volumes.values()].reduce((n, v) => n + v.bytes, 0);
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    lines.push(
      `total: ${blocks} blocks, ${(bytes / 2 ** 30).toFixed(2)} GiB, ${(bytes / 2 ** 20 / seconds).toFixed(1)} MiB/s`,
    );
    this.update(lines.join('\n'));
  }
}

let current: LiveDisplay | undefined;

/**
 * Starts the live display when stderr is an operator's terminal; returns it, or undefined. The
 * terminal library is loaded only then, so `list` and every run under Bacula start without it.
 */
export async function startLiveDisplay(
  stream: NodeJS.WriteStream = process.stderr,
): Promise<LiveDisplay | undefined> {
  // A terminal of no width (a pty nobody sized) cannot show it: the log lines serve instead.
  if (stream.isTTY !== true || !(stream.columns > 0)) return undefined;
  const { createLogUpdate } = await import('log-update');
  current = new LiveDisplay(stream, createLogUpdate);
  return current;
}

/** The display of this process, if there is one. */
export function liveDisplay(): LiveDisplay | undefined {
  return current;
}

export function stopLiveDisplay(): void {
  current?.close();
  current = undefined;
}
