/**
 * The golden fixtures (test/fixtures/golden/, made once by make.ts beside them): streams, a
 * finalizer, state files and a journal written by a released ec2-bpipe. Today's code must read them
 * to the same images and verdicts, write the same state and journal, and its writer must make the
 * version 2 streams again byte for byte from their recorded inputs. A difference is a change of
 * the format: it needs a new format version, not new fixtures.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseFinalizer } from '../../src/format/finalizer.js';
import { GOLDEN, readInputs, replay, specOf } from '../fixtures/golden/golden.js';
import { cli, tempDir } from '../helpers.js';
import { buildStream } from '../stream-builder.js';

const golden = (name: string): Buffer => readFileSync(join(GOLDEN, name));
const expected = JSON.parse(golden('expected.json').toString()) as {
  images: Record<string, string>;
  verify: unknown;
};

describe('golden fixtures', () => {
  const work = tempDir('ec2-bpipe-golden-');
  afterAll(() => work.cleanup());

  it.each(['full-v2', 'incremental-v2', 'volumes-v2'] as const)(
    "today's writer makes %s.tar again, byte for byte, from its recorded inputs",
    async (name) => {
      const made = await buildStream(specOf(readInputs().streams[name]));
      const committed = golden(`${name}.tar`);
      expect(made.length).toBe(committed.length);
      expect(made.equals(committed), `${name}.tar differs from what the writer makes now`).toBe(true);
    },
  );

  it('the finalizer parses, and is written back byte for byte', () => {
    const bytes = golden('restore.json');
    const finalizer = parseFinalizer(bytes, 'restore.json');
    expect(finalizer.head).toBe('WebBackup.2026-11-02_01.00.00_02');
    expect(finalizer.volumes.map((v) => v.volumeId)).toEqual([
      'vol-0901a2b3c4d5e6f71',
      'vol-0901a2b3c4d5e6f72',
    ]);
    expect(Buffer.from(`${JSON.stringify(finalizer, null, 2)}\n`).equals(bytes)).toBe(true);
  });

  it("today's restores give the recorded images, state files, journal and verdicts", async () => {
    const made = await replay(work.path);
    expect(made.images).toEqual(expected.images);
    expect(made.stateAfterFull).toBe(golden('state-after-full.json').toString());
    expect(made.stateAfterIncremental).toBe(golden('state-after-incremental.json').toString());
    expect(made.journal).toBe(golden('journal.json').toString());
    expect(made.verify).toEqual(expected.verify);
  });

  it('a fixture with one byte of one block changed fails verify, naming the member', async () => {
    const stream = golden('full-v2.tar');
    const at = stream.indexOf('vol1 block 5 Full\n');
    expect(at).toBeGreaterThan(0);
    stream[at] = 'V'.charCodeAt(0);
    const file = join(work.path, 'edited.tar');
    writeFileSync(file, stream);
    const result = await cli(['verify', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /vol-0901a2b3c4d5e6f71\.ebs: the blocks do not match their aggregate checksum/,
    );
  });
});
