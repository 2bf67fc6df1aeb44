import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { RuntimeFailure } from '../../src/errors.js';
import { readStream, StreamDefect } from '../../src/stream/reader.js';
import { block, buildStream, ZERO } from '../stream-builder.js';
import { splitMembers } from '../tar-members.js';

const VOL = 'vol-0123456789abcdef0';
const read = (buf: Buffer, visitor = {}) => readStream(Readable.from([buf]), 'test.tar', visitor);

describe('readStream', () => {
  it('reports each volume with both sums, and calls the visitor in stream order, end last', async () => {
    const stream = await buildStream({
      job: 'j1',
      volumes: [
        {
          volumeId: VOL,
          blocks: new Map([
            [3, block(1)],
            [1, block(2)],
          ]),
        },
      ],
    });
    const calls: string[] = [];
    const report = await read(stream, {
      manifest: () => void calls.push('manifest'),
      instance: () => void calls.push('instance'),
      volumeStart: () => void calls.push('volumeStart'),
      block: (_m: unknown, index: number) => void calls.push(`block ${index}`),
      volumeEnd: () => void calls.push('volumeEnd'),
      end: () => void calls.push('end'),
    });
    expect(calls).toEqual(['manifest', 'instance', 'volumeStart', 'block 1', 'block 3', 'volumeEnd', 'end']);
    expect(report.formatVersion).toBe(2);
    expect(report.volumes).toEqual([
      expect.objectContaining({
        volumeId: VOL,
        blocks: 2,
        sizeBytes: 2 ** 30,
        indexedSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      }),
    ]);
  });

  it('reads a version 1 stream, which has no index-bound digest', async () => {
    const stream = await buildStream({
      job: 'j1',
      version: 1,
      volumes: [{ volumeId: VOL, blocks: new Map([[0, block(1)]]) }],
    });
    const report = await readStream(Readable.from([stream]), 'test.tar', {}, { acceptFormat1: true });
    expect(report.formatVersion).toBe(1);
    expect(report.volumes[0]?.indexedSha256).toBeNull();
    // Without the operator's acceptance, a format 1 stream is refused, saying what it cannot prove.
    const refused = await read(stream).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(StreamDefect);
    expect((refused as StreamDefect).message).toMatch(
      /format version 1 \(ec2-bpipe 0\.1\.0\): nothing in a format 1 stream proves where each block belongs.*--accept-format-1/,
    );
  });

  it('refuses a format 1 manifest that a version writing format 2 wrote (a downgrade), even when format 1 is accepted', async () => {
    const stream = await buildStream({
      job: 'j1',
      volumes: [{ volumeId: VOL, blocks: new Map([[0, block(1)]]) }],
    });
    const manifest = splitMembers(stream).members[0];
    if (manifest === undefined) throw new Error('no manifest member');
    const text = stream.subarray(manifest.data, manifest.data + manifest.size).toString();
    // Same length, so the tar header's size stays right: only the version and the writer change.
    const downgraded = text
      .replace(/"formatVersion":( ?)2/, '"formatVersion":$11')
      .replace(/"toolVersion":( ?)"test"/, '"toolVersion":$1"0.25"');
    expect(downgraded).not.toBe(text);
    expect(downgraded.length).toBe(text.length);
    const forged = Buffer.from(stream);
    forged.write(downgraded, manifest.data);
    const refused = await readStream(Readable.from([forged]), 'test.tar', {}, { acceptFormat1: true }).catch(
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(StreamDefect);
    expect((refused as StreamDefect).message).toMatch(
      /says format version 1, but ec2-bpipe 0\.25 wrote it.*refused/,
    );
    expect(text).toContain('"toolVersion"');
  });

  it('gives explicit zero regions of a chain link to the visitor as zero blocks', async () => {
    const stream = await buildStream({
      job: 'j2',
      level: 'Incremental',
      baseJob: 'j1',
      kind: 'volumes',
      volumes: [{ volumeId: VOL, blocks: new Map([[4, ZERO]]) }],
    });
    const zeros: number[] = [];
    await read(stream, {
      block: (_m: unknown, index: number, data: Buffer) => void (data.equals(ZERO) && zeros.push(index)),
    });
    expect(zeros).toEqual([4]);
  });

  it('calls end only after the tar end records: damage after end.json is refused before it', async () => {
    const stream = await buildStream({
      job: 'j1',
      volumes: [{ volumeId: VOL, blocks: new Map([[0, block(1)]]) }],
    });
    const { endRecords } = splitMembers(stream);
    let ended = false;
    const damaged = Buffer.concat([stream.subarray(0, endRecords + 1024), Buffer.from('x')]);
    const error = await read(damaged, { end: () => void (ended = true) }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StreamDefect);
    expect((error as StreamDefect).message).toMatch(/data follows the end of the archive/);
    expect(ended).toBe(false);
    const cut = await read(stream.subarray(0, endRecords + 512)).catch((err: unknown) => err);
    expect((cut as StreamDefect).incomplete).toBe(true);
  });

  it('says an empty input is an empty stream, a truncation', async () => {
    const error = await read(Buffer.alloc(0)).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(StreamDefect);
    expect((error as StreamDefect).message).toBe('test.tar: the stream is incomplete: it is empty');
    expect((error as StreamDefect).incomplete).toBe(true);
  });
});

describe('readStream lends each block to the visitor', () => {
  const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
  /** Lets `turns` rounds of the event loop pass: a write or a put in flight, without a clock. */
  const turns = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  };

  it('in index order, at most blocksLent at once, each intact until its call settles', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ec2-bpipe-reader-'));
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 12 }),
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 12, maxLength: 12 }),
        // From a stream file the next block is read into the ring while the visitor holds others.
        fc.boolean(),
        async (indices, blocksLent, delays, fromFile) => {
          const blocks = new Map(indices.map((i) => [i, block(i + 1)]));
          const stream = await buildStream({ job: 'j1', volumes: [{ volumeId: VOL, blocks }] });
          const file = join(dir, 'stream.tar');
          writeFileSync(file, stream);
          const seen: number[] = [];
          let lent = 0;
          let most = 0;
          let lentAtEnd = -1;
          await readStream(
            fromFile ? { handle: await open(file, 'r') } : Readable.from([stream]),
            'test.tar',
            {
              block: async (_m, index, data, digest) => {
                lent++;
                most = Math.max(most, lent);
                seen.push(index);
                expect(sha(data)).toBe(digest.toString('hex'));
                await turns(delays[seen.length - 1] ?? 0);
                // Still the same bytes: nothing reused the memory while it was lent.
                expect(sha(data)).toBe(sha(block(index + 1)));
                lent--;
              },
              volumeEnd: () => {
                lentAtEnd = lent;
              },
            },
            { blocksLent },
          );
          expect(seen).toEqual([...indices].sort((a, b) => a - b));
          expect(most).toBeLessThanOrEqual(blocksLent);
          expect(lentAtEnd).toBe(0);
        },
      ),
      { numRuns: 40 },
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails the stream with the visitor error, once every lent block has settled', async () => {
    const blocks = new Map(Array.from({ length: 10 }, (_, i) => [i, block(i + 1)]));
    const stream = await buildStream({ job: 'j1', volumes: [{ volumeId: VOL, blocks }] });
    let lent = 0;
    const calls: number[] = [];
    const outcome = readStream(
      Readable.from([stream]),
      'test.tar',
      {
        block: async (_m, index) => {
          calls.push(index);
          lent++;
          try {
            await turns(index === 3 ? 1 : 5);
            if (index === 3) throw new Error('disk full at block 3');
          } finally {
            lent--;
          }
        },
      },
      { blocksLent: 4 },
    );
    await expect(outcome).rejects.toThrow('disk full at block 3');
    expect(lent).toBe(0);
    // No block is lent once the failure is known: the calls stop within the window.
    expect(Math.max(...calls)).toBeLessThan(3 + 4 + 1);
  });
});

describe('readStream from a stream file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ec2-bpipe-file-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const blocks = new Map(Array.from({ length: 16 }, (_, i) => [i * 3, block(i + 1)]));

  it('reads the blocks straight into the memory it lends, not through buffers of its own', async () => {
    const stream = await buildStream({ job: 'j1', volumes: [{ volumeId: VOL, blocks }] });
    const file = join(dir, 'whole.tar');
    writeFileSync(file, stream);
    const handle = await open(file, 'r');
    const targets: { memory: ArrayBufferLike; bytes: number }[] = [];
    const read = handle.read.bind(handle);
    handle.read = (async (buffer: Buffer, offset: number, length: number, position: number | null) => {
      const result = await read(buffer, offset, length, position);
      targets.push({ memory: buffer.buffer, bytes: result.bytesRead });
      return result;
    }) as typeof handle.read;
    const lentMemory = new Set<ArrayBufferLike>();
    const report = await readStream({ handle }, file, {
      block: (_m, _i, data) => void lentMemory.add(data.buffer),
    });
    expect(report.volumes[0]?.blocks).toBe(16);
    expect(lentMemory.size).toBe(1);
    const [ring] = [...lentMemory];
    const intoRing = targets.filter((t) => t.memory === ring).reduce((sum, t) => sum + t.bytes, 0);
    const elsewhere = targets.filter((t) => t.memory !== ring).reduce((sum, t) => sum + t.bytes, 0);
    // All but the block data that shares a first read with the sparse map goes straight in.
    expect(intoRing).toBeGreaterThan(15 * 512 * 1024);
    expect(elsewhere).toBeLessThan(stream.length - 15 * 512 * 1024);
  });

  it('says a file cut inside a block is truncated, and a file it cannot read is a read failure', async () => {
    const stream = await buildStream({ job: 'j1', volumes: [{ volumeId: VOL, blocks }] });
    const { members } = splitMembers(stream);
    const data = members.find((m) => m.name.endsWith('.ebs'));
    if (data === undefined) throw new Error('no .ebs member in the stream');
    const file = join(dir, 'cut.tar');
    writeFileSync(file, stream.subarray(0, data.data + 5 * 512 * 1024 + 1000));
    const cut = await readStream({ handle: await open(file, 'r') }, file).catch((err: unknown) => err);
    expect(cut).toBeInstanceOf(StreamDefect);
    expect((cut as StreamDefect).incomplete).toBe(true);
    expect((cut as StreamDefect).message).toMatch(/truncated inside member .*\.ebs/);
    const unreadable = await readStream({ handle: await open(dir, 'r') }, dir).catch((err: unknown) => err);
    expect(unreadable).toBeInstanceOf(RuntimeFailure);
    expect((unreadable as Error).message).toMatch(/: reading failed \(.*EISDIR/);
  });
});
