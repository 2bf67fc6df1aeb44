import type { createLogUpdate } from 'log-update';
import { duration } from './duration.js';

/** How often the live display is redrawn at most: often enough to look live, rarely enough to cost nothing. */
const REDRAW_MS = 200;

export interface VolumeStatus {
  volumeId: string;
  /** The line that describes it now (VolumeProgress.line), built when drawn. */
  line: () => string;
  blocks: number;
  bytes: number;
  /** The blocks the volume will move in all. */
  total: number;
}

/** A volume of the job, before it starts: its size lets the whole-job ETA guess its blocks. */
export interface PlannedVolume {
  volumeId: string;
  sizeGiB?: number | undefined;
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
  private started = Date.now();
  private lastDraw = 0;
  private finished = 0;
  private finishedBytes = 0;
  /** The job's volumes, when the command said them (planJob), and the totals of those that started. */
  private planned: PlannedVolume[] = [];
  private readonly totals = new Map<string, number>();

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

  /** The volumes the job will move, in order: the whole-job line counts them and guesses the rest's blocks. */
  planJob(volumes: PlannedVolume[]): void {
    // A restore of several streams plans each in turn: the line then counts the stream at hand.
    this.planned = volumes;
    this.totals.clear();
    this.finished = 0;
    this.finishedBytes = 0;
    this.started = Date.now();
  }

  show(status: VolumeStatus): void {
    this.volumes.set(status.volumeId, status);
    this.totals.set(status.volumeId, status.total);
    this.draw(false);
  }

  /**
   * The blocks the whole job moves: the totals of the volumes that started, and for the others a
   * guess from their size at the density (blocks per GiB) seen so far, or the mean total.
   */
  private jobTotal(): { blocks: number; guessed: boolean } {
    let blocks = [...this.totals.values()].reduce((n, b) => n + b, 0);
    const waiting = this.planned.filter((v) => !this.totals.has(v.volumeId));
    if (waiting.length === 0) return { blocks, guessed: false };
    const started = this.planned.filter((v) => this.totals.has(v.volumeId));
    const sizes = started.reduce((n, v) => n + (v.sizeGiB ?? 0), 0);
    const mean = this.totals.size > 0 ? blocks / this.totals.size : 0;
    for (const v of waiting)
      blocks += v.sizeGiB !== undefined && sizes > 0 ? (v.sizeGiB * blocks) / sizes : mean;
    return { blocks: Math.round(blocks), guessed: true };
  }

  /** The volume is done: it leaves the display and counts in the total. */
  end(volumeId: string): void {
    const status = this.volumes.get(volumeId);
    if (status === undefined) return;
    this.volumes.delete(volumeId);
    this.finished += status.blocks;
    this.finishedBytes += status.bytes;
    // A volume that ends moved all it will: its total is what it moved.
    this.totals.set(volumeId, status.blocks);
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
    lines.push(this.jobLine(blocks, bytes, seconds));
    this.update(lines.join('\n'));
  }

  /** `total: 1230/3000 blocks (41%), volume 2 of 3, 0.60 GiB, 120.0 MiB/s, ETA ~1m20s`. */
  private jobLine(blocks: number, bytes: number, seconds: number): string {
    const rate = `${(bytes / 2 ** 20 / seconds).toFixed(1)} MiB/s`;
    const size = `${(bytes / 2 ** 30).toFixed(2)} GiB`;
    const { blocks: total, guessed } = this.jobTotal();
    if (total === 0) return `total: ${blocks} blocks, ${size}, ${rate}`;
    const shown = Math.max(total, blocks);
    const percent = Math.floor((blocks / shown) * 100);
    const count = this.planned.length;
    const at = count > 0 ? `, volume ${Math.min(this.totals.size, count)} of ${count}` : '';
    const eta =
      blocks === 0 ? '' : `, ETA ${guessed ? '~' : ''}${duration(((shown - blocks) * seconds) / blocks)}`;
    return `total: ${blocks}/${shown} blocks (${percent}%)${at}, ${size}, ${rate}${eta}`;
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
