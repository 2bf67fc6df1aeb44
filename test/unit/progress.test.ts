import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { duration } from '../../src/duration.js';
import { VolumeProgress } from '../../src/progress.js';

function capture() {
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => lines.push(JSON.parse(s).msg as string) });
  return { log, lines };
}

describe('VolumeProgress (the job-log lines of a long volume)', () => {
  it('says blocks, percentage, rate, ETA and throttled share every 30 s, and nothing in between', () => {
    const { log, lines } = capture();
    let now = 0;
    const counts = { requests: 0, throttled: 0, lastThrottledSentAt: -Infinity };
    const progress = new VolumeProgress(log, 'vol-1', 3000, 512 * 1024, counts, () => now);
    for (let i = 0; i < 1230; i++) {
      now += 20; // 1230 blocks in 24.6 s: no line yet
      counts.requests++;
      if (i % 10 === 0) counts.throttled++;
      progress.block();
    }
    expect(lines).toEqual([]);
    now = 30_000;
    progress.block();
    expect(lines).toEqual(['vol-1: 1231/3000 blocks (41%), 20.5 MiB/s, ETA 43s, 10% throttled']);
    now = 45_000;
    progress.block();
    expect(lines).toHaveLength(1);
    expect(progress.summary(60_000)).toBe('vol-1: 1232 blocks in 60.0s, 10.3 MiB/s, 10% throttled');
  });

  it('writes durations the way a job log reads them', () => {
    expect([duration(0), duration(59.6), duration(86), duration(3600), duration(7500)]).toEqual([
      '0s',
      '1m00s',
      '1m26s',
      '1h00m',
      '2h05m',
    ]);
  });
});

describe('LiveDisplay (the whole-job line on a terminal)', () => {
  it('counts every volume of the job, guesses the blocks of those not started from their size, and says the guess', async () => {
    const { LiveDisplay } = await import('../../src/display.js');
    const frames: string[] = [];
    const update = Object.assign((text: string) => void frames.push(text), {
      clear: () => undefined,
      done: () => undefined,
    });
    const display = new LiveDisplay(
      { write: () => true } as unknown as NodeJS.WriteStream,
      (() => update) as never,
    );
    /** A volume's status: `blocks` of `total` done, 512 KiB each. */
    const show = (volumeId: string, blocks: number, total: number): void =>
      display.show({ volumeId, line: () => `${volumeId} line`, blocks, bytes: blocks * 2 ** 19, total });
    display.planJob([
      { volumeId: 'vol-a', sizeGiB: 1 },
      { volumeId: 'vol-b', sizeGiB: 3 },
    ]);
    show('vol-a', 50, 100);
    // vol-a: 100 blocks in 1 GiB, so vol-b's 3 GiB are guessed at 300.
    expect(frames.at(-1)).toMatch(
      /^vol-a line\ntotal: 50\/400 blocks \(12%\), volume 1 of 2, 0\.02 GiB, [\d.]+ MiB\/s, ETA ~/,
    );
    show('vol-a', 100, 100);
    display.end('vol-a');
    show('vol-b', 60, 120);
    // A log line redraws the display at once (show() redraws at most every 200 ms).
    display.write('a log line\n');
    // Every total known now: no guess, no tilde.
    expect(frames.at(-1)).toMatch(
      /^vol-b line\ntotal: 160\/220 blocks \(72%\), volume 2 of 2, 0\.08 GiB, [\d.]+ MiB\/s, ETA \d/,
    );
    expect(frames.at(-1)).not.toContain('~');
  });
});
