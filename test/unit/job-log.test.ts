import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_QUEUED_LINES, PacedLines, startedByBacula } from '../../src/job-log.js';

describe('lines paced for the bpipe plugin', () => {
  afterEach(() => vi.useRealTimers());

  it('writes each line on its own, at least the gap apart and none before the first hold, in order', () => {
    vi.useFakeTimers();
    const written: { line: string; at: number }[] = [];
    const paced = new PacedLines({ write: (line) => written.push({ line, at: Date.now() }) }, 30, 1100, () =>
      Date.now(),
    );
    vi.setSystemTime(0);
    paced.write('first\n');
    paced.write('second\nthird\n');
    expect(written).toEqual([]);
    vi.advanceTimersByTime(1100);
    expect(written.map((w) => w.line)).toEqual(['first\n']);
    vi.advanceTimersByTime(1000);
    expect(written.map((w) => w.line)).toEqual(['first\n', 'second\n', 'third\n']);
    const times = written.map((w) => w.at);
    expect(times[0]).toBe(1100);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(30);
    // A line long after the last one goes out at once.
    vi.advanceTimersByTime(5000);
    paced.write('later\n');
    expect(written.at(-1)).toEqual({ line: 'later\n', at: 7100 });
  });

  it('flushSync writes what is queued, in order and still apart, for a process that exits now', () => {
    const written: { line: string; at: number }[] = [];
    const paced = new PacedLines({ write: (line) => written.push({ line, at: performance.now() }) }, 5, 0);
    for (const n of [1, 2, 3, 4]) paced.write(`line ${n}\n`);
    paced.flushSync();
    expect(written.map((w) => w.line)).toEqual(['line 1\n', 'line 2\n', 'line 3\n', 'line 4\n']);
    for (let i = 1; i < written.length; i++)
      expect(written[i]!.at - written[i - 1]!.at).toBeGreaterThanOrEqual(4.5);
  });

  it('writes a backlog beyond its bound at once: memory stays bounded, nothing is lost or reordered', () => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
    const written: string[] = [];
    const paced = new PacedLines({ write: (line) => written.push(line) }, 30, 0, () => Date.now());
    const lines = Array.from({ length: MAX_QUEUED_LINES + 5 }, (_, i) => `line ${i}\n`);
    for (const line of lines) paced.write(line);
    // The first went out alone; the backlog, once past the bound, in one write.
    expect(written[0]).toBe('line 0\n');
    expect(written.length).toBe(2);
    expect(written.join('')).toBe(lines.slice(0, MAX_QUEUED_LINES + 2).join(''));
    vi.advanceTimersByTime(1000);
    expect(written.join('')).toBe(lines.join(''));
  });

  it('knows a File Daemon only among its ancestors (vitest is not one)', () => {
    expect(startedByBacula()).toBe(false);
    expect(startedByBacula(999_999_999)).toBe(false);
  });
});
