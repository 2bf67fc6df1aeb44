import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { duration, VolumeProgress } from '../../src/progress.js';

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
