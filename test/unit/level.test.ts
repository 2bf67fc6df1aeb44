import { describe, expect, it } from 'vitest';
import { chooseBase, chooseLevel, parseLevel } from '../../src/backup/level.js';
import type { ChainLink } from '../../src/backup/links.js';

const VOL = 'vol-0123456789abcdef0';

/** Links newest first, as volumeLinks returns them. */
function links(
  ...specs: [job: string, level: ChainLink['level'], base: string | null, complete: boolean][]
): ChainLink[] {
  return specs.map(([job, level, baseJob, complete], i) => ({
    snapshotId: `snap-${String(i).padStart(17, '0')}`,
    volumeId: VOL,
    job,
    baseJob,
    level,
    complete,
    pending: false,
    sizeGiB: 8,
    startTime: new Date(Date.UTC(2026, 10, 30 - i)),
  }));
}

describe('chooseBase', () => {
  const chain = links(
    ['j4', 'Incremental', 'j3', false],
    ['j3', 'Incremental', 'j2', true],
    ['j2', 'Incremental', 'j1', true],
    ['j1', 'Full', null, true],
  );

  it('takes the %S job when its stream is complete', () => {
    expect(chooseBase(chain, 'Incremental', 'j3', 8)).toMatchObject({ base: { job: 'j3' } });
  });

  it('walks base-job tags back from an incomplete %S to the newest complete link', () => {
    expect(chooseBase(chain, 'Incremental', 'j4', 8)).toMatchObject({ base: { job: 'j3' } });
  });

  it('walks back to the newest complete Full for a Differential', () => {
    expect(chooseBase(chain, 'Differential', 'j4', 8)).toMatchObject({ base: { job: 'j1' } });
  });

  it('takes the newest complete stream, with a note, when %S left no snapshot', () => {
    const choice = chooseBase(chain, 'Incremental', 'j5', 8);
    expect(choice).toMatchObject({ base: { job: 'j3' } });
    expect(choice.base && choice.note).toMatch(
      /job j5 left no snapshot .* the newest complete stream is job j3/,
    );
  });

  it('refuses a base of another size, and a chain with no complete link', () => {
    expect(chooseBase(chain, 'Incremental', 'j3', 16)).toMatchObject({
      base: undefined,
      reason: expect.stringMatching(/8 GiB, the volume now 16 GiB/),
    });
    expect(chooseBase(links(['j1', 'Full', null, false]), 'Incremental', undefined, 8)).toMatchObject({
      base: undefined,
      reason: 'no complete stream of this volume exists',
    });
  });

  it('does not loop on a cycle of base-job tags', () => {
    const looped = links(['a', 'Incremental', 'b', false], ['b', 'Incremental', 'a', false]);
    expect(chooseBase(looped, 'Incremental', 'a', 8)).toMatchObject({ base: undefined });
  });
});

describe('chooseLevel', () => {
  const history = (volumeId: string, l: ChainLink[]) => ({
    volumeId,
    sizeGiB: 8,
    links: l.map((x) => ({ ...x, volumeId })),
  });

  it('keeps a Full a Full without looking at links', () => {
    expect(chooseLevel('Full', undefined, [history(VOL, [])])).toMatchObject({
      level: 'Full',
      baseJob: null,
      said: [],
    });
  });

  it('bases every volume on the same job and says so', () => {
    const l = links(['j1', 'Full', null, true]);
    const choice = chooseLevel('Incremental', 'j1', [
      history('vol-0123456789abcdef0', l),
      history('vol-0123456789abcdef1', l),
    ]);
    expect(choice).toMatchObject({ level: 'Incremental', baseJob: 'j1' });
    expect(choice.bases.size).toBe(2);
    expect(choice.said.at(-1)?.text).toMatch(/^Incremental based on job j1 \(Full, /);
  });

  it('takes a Full, with a warning, when one volume has no base or the bases differ', () => {
    const none = chooseLevel('Incremental', undefined, [
      history(VOL, links(['j1', 'Full', null, true])),
      history('vol-0123456789abcdef1', []),
    ]);
    expect(none).toMatchObject({ level: 'Full', baseJob: null });
    expect(none.said).toEqual([
      {
        level: 'warn',
        text: expect.stringMatching(/not possible: no complete stream of this volume exists; taking a Full/),
      },
    ]);
    const mixed = chooseLevel('Incremental', undefined, [
      history(VOL, links(['j2', 'Full', null, true])),
      history('vol-0123456789abcdef1', links(['j1', 'Full', null, true])),
    ]);
    expect(mixed.level).toBe('Full');
    expect(mixed.said.at(-1)?.text).toMatch(/bases come from different jobs \(j2, j1\)/);
  });
});

describe('parseLevel', () => {
  it('reads Bacula levels in any case and refuses others, naming the flag', () => {
    expect(parseLevel('incremental')).toBe('Incremental');
    expect(parseLevel(undefined)).toBe('Full');
    expect(() => parseLevel('FBll')).toThrow(/--level=FBll: expected Full, Incremental or Differential/);
  });
});
