import type { Logger } from 'pino';
import type { RequestCounts } from './aws/clients.js';
import { throttledShare, throttledSince } from './aws/throttling.js';
import { liveDisplay } from './display.js';
import { duration } from './duration.js';
import { BLOCK_SIZE } from './format/container.js';

/**
 * How often a long volume reports in the log. Bacula copies every stderr line into the job log,
 * so a line every 30 s keeps a long job readable there.
 */
export const PROGRESS_INTERVAL_MS = 30_000;

const MIB = 2 ** 20;

/** A volume's figures in a JSON log record. */
export interface ProgressFields {
  volume: string;
  blocks: number;
  bytes: number;
  seconds: number;
  mibps: number;
  /** Share of the EBS requests AWS throttled, when any were counted. */
  throttledPercent?: number;
}

/**
 * The progress of one volume through a backup or a restore: a short line every
 * PROGRESS_INTERVAL_MS, `vol-…: 1230/3000 blocks (41%), 20.5 MiB/s, ETA 1m26s, 3% throttled`.
 */
export class VolumeProgress {
  private done = 0;
  private readonly started: number;
  private lastReport: number;
  private readonly countsAtStart: RequestCounts | undefined;

  constructor(
    private readonly log: Logger,
    private readonly volumeId: string,
    private readonly total: number,
    private readonly blockBytes: number,
    private readonly counts?: RequestCounts,
    private readonly now: () => number = Date.now,
    private readonly intervalMs = PROGRESS_INTERVAL_MS,
  ) {
    this.started = now();
    this.lastReport = this.started;
    this.countsAtStart = counts === undefined ? undefined : { ...counts };
  }

  /**
   * One more block done. On an operator's terminal the live display shows it; elsewhere (Bacula,
   * a pipe, cron) a line is logged when the interval has passed.
   */
  block(): void {
    this.done++;
    const now = this.now();
    const display = liveDisplay();
    if (display !== undefined) {
      // The line is built only when the display draws (a few times a second), not per block.
      display.show({
        volumeId: this.volumeId,
        line: () => this.line(now),
        blocks: this.done,
        bytes: this.bytes(),
        total: this.total,
      });
      return;
    }
    if (now - this.lastReport < this.intervalMs) return;
    this.lastReport = now;
    this.log.info({ event: 'progress', ...this.fields(now), total: this.total }, this.line(now));
  }

  /** The figures of the lines, as named fields for --log-format=json (docs/JSON.md). */
  fields(now = this.now()): ProgressFields {
    const { seconds, mibps } = this.pace(now);
    const since = throttledSince(this.countsAtStart, this.counts);
    return {
      volume: this.volumeId,
      blocks: this.done,
      bytes: this.bytes(),
      seconds: Number(seconds.toFixed(3)),
      mibps: Number(mibps.toFixed(1)),
      ...(since !== undefined && { throttledPercent: since.percent }),
    };
  }

  /** The volume is done: it leaves the live display; returns its closing line (summary). */
  finish(): string {
    liveDisplay()?.end(this.volumeId);
    return this.summary();
  }

  private bytes(): number {
    return this.done * this.blockBytes;
  }

  /** Seconds since the volume began (never 0, for the rates) and MiB/s so far. */
  pace(now = this.now()): { seconds: number; mibps: number } {
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    return { seconds, mibps: this.bytes() / MIB / seconds };
  }

  line(now = this.now()): string {
    const { seconds, mibps } = this.pace(now);
    const percent = this.total === 0 ? 100 : Math.floor((this.done / this.total) * 100);
    const left = this.total - this.done;
    const eta = this.done === 0 ? '' : `, ETA ${duration((left * seconds) / this.done)}`;
    return `${this.volumeId}: ${this.done}/${this.total} blocks (${percent}%), ${mibps.toFixed(1)} MiB/s${eta}${this.throttled()}`;
  }

  /** The volume's closing line: `vol-…: 2048 blocks in 4.2s, 243.8 MiB/s`. */
  summary(now = this.now()): string {
    const { seconds, mibps } = this.pace(now);
    return `${this.volumeId}: ${this.done} blocks in ${seconds.toFixed(1)}s, ${mibps.toFixed(1)} MiB/s${this.throttled()}`;
  }

  /** `, 12% of 2300 EBS requests throttled` since the volume began, or nothing. */
  throttledShare(): string {
    return throttledShare(this.countsAtStart, this.counts);
  }

  private throttled(): string {
    const since = throttledSince(this.countsAtStart, this.counts);
    return since === undefined || since.throttled === 0 ? '' : `, ${since.percent}% throttled`;
  }
}

/**
 * The last line of a backup or a restore that went well: what it moved, in how long, at what
 * rate. Under --log-format=json, the record a script reads (`"event":"summary"`, docs/JSON.md).
 */
export function logSummary(
  log: Logger,
  command: 'backup' | 'restore',
  what: string,
  startedAt: number,
  blocks: number,
  fields: Record<string, unknown>,
  now = performance.now(),
): void {
  const seconds = Math.max((now - startedAt) / 1000, 0.001);
  const bytes = blocks * BLOCK_SIZE;
  const mibps = bytes / MIB / seconds;
  log.info(
    {
      event: 'summary',
      command,
      ...fields,
      blocks,
      bytes,
      seconds: Number(seconds.toFixed(3)),
      mibps: Number(mibps.toFixed(1)),
    },
    `${command} done: ${what}, ${blocks} blocks (${(bytes / MIB).toFixed(1)} MiB) in ${seconds < 60 ? `${seconds.toFixed(1)}s` : duration(seconds)}, ${mibps.toFixed(1)} MiB/s`,
  );
}
