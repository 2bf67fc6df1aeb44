/**
 * Mutates valid streams the way damage and an adversary would, and runs each mutant through the
 * verify and restore-to-files code paths in-process. What must hold for every mutant:
 * - nothing but a RuntimeFailure (a clear, named error) comes out: no TypeError, no hang;
 * - verify and restore accept exactly the same streams;
 * - a stream is accepted only when what it restores is identical to the original's result;
 * - nothing is written outside the target directory, and a refused stream leaves no final-named
 *   file (a chain link leaves the images exactly as its base left them).
 * FUZZ_SEED replays a run; fast-check prints the seed and the shrunk mutant on failure.
 */
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RuntimeFailure } from '../../src/errors.js';
import { FilesRestore } from '../../src/restore/files/restore.js';
import { BLOCK_SIZE } from '../../src/format/container.js';
import { readStream, type StreamFile } from '../../src/stream/reader.js';
import { block, buildStream, ZERO } from '../stream-builder.js';
import { fixChecksum, type MemberRange, splitMembers } from '../tar-members.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261124);
const RUNS_PER_CASE = 1100;
const silent = pino({ level: 'silent' });

const VOL_A = 'vol-0123456789abcdef0';
const VOL_B = 'vol-0fedcba9876543210';

/** Where every block of the originals lives: the images are compared there, and by allocation. */
const INDICES = [0, 1, 2, 5, 7, 9];

/** A header field's offset and length, as the mutations address them. */
const FIELDS = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  mtime: [136, 12],
  size: [124, 12],
  checksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 8],
  uname: [265, 32],
  prefix: [345, 155],
} as const;
type FieldName = keyof typeof FIELDS;

type Mutation =
  | {
      kind: 'header';
      member: number;
      pax: boolean;
      field: FieldName;
      bytes: number[];
      special: number;
      fix: boolean;
    }
  | { kind: 'truncate'; at: number }
  | { kind: 'members'; op: 'remove' | 'duplicate' | 'swap' | 'after-end'; i: number; j: number }
  | { kind: 'json'; member: number; leaf: number; value: unknown; fix: boolean }
  | {
      kind: 'sparse';
      member: number;
      op: 'shift' | 'count' | 'size' | 'realsize' | 'swap';
      entry: number;
      to: number;
    }
  | { kind: 'trailing'; op: 'bytes' | 'zeros' | 'member'; bytes: number[]; count: number; member: number }
  | { kind: 'flip'; at: number; bit: number };

const hostileValues = fc.constantFrom<unknown>(
  '../../../x',
  'FBll',
  'Incremental',
  'Full',
  'j1',
  'i-0123456789abcdef1',
  'vol-0123456789abcdef1',
  't2.micro',
  '',
  null,
  true,
  0,
  -1,
  2 ** 53,
  1.5,
  [],
  {},
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('header' as const),
    member: fc.nat(),
    pax: fc.boolean(),
    field: fc.constantFrom(...(Object.keys(FIELDS) as FieldName[])),
    bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }),
    special: fc.integer({ min: 0, max: 9 }),
    fix: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('members' as const),
    op: fc.constantFrom('remove' as const, 'duplicate' as const, 'swap' as const, 'after-end' as const),
    i: fc.nat(),
    j: fc.nat(),
  }),
  fc.record({
    kind: fc.constant('json' as const),
    member: fc.nat(),
    leaf: fc.nat(),
    value: hostileValues,
    fix: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('sparse' as const),
    member: fc.nat(),
    op: fc.constantFrom(
      'shift' as const,
      'count' as const,
      'size' as const,
      'realsize' as const,
      'swap' as const,
    ),
    entry: fc.nat(),
    to: fc.integer({ min: 0, max: 2047 }),
  }),
  fc.record({
    kind: fc.constant('trailing' as const),
    op: fc.constantFrom('bytes' as const, 'zeros' as const, 'member' as const),
    bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 700 }),
    count: fc.integer({ min: 1, max: 20 }),
    member: fc.nat(),
  }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
);

/** How the input arrives: mostly in large reads, sometimes in small odd pieces that split every field. */
const chunkSize = fc.oneof(
  { arbitrary: fc.integer({ min: 4096, max: 700_000 }), weight: 9 },
  { arbitrary: fc.integer({ min: 7, max: 511 }), weight: 1 },
);

const pick = <T>(items: T[], n: number): T => {
  const item = items[n % items.length];
  if (item === undefined) throw new Error('nothing to pick from');
  return item;
};

const octalField = (value: number, length: number): Buffer => {
  const text = value.toString(8).padStart(length - 1, '0');
  return Buffer.from(`${text.slice(-(length - 1))} `, 'latin1');
};

function leaves(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (value !== null && typeof value === 'object') {
    const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
    const below = entries.flatMap(([k, v]) => leaves(v, [...path, k]));
    return below.length ? [...below, path] : [path];
  }
  return [path];
}

function setAt(root: unknown, path: (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  const node = root as Record<string | number, unknown>;
  node[head as string] = setAt(node[head as string], rest, value);
  return root;
}

/** A member with new data: the header's size follows, its checksum too, as a careful editor would. */
function replaceData(buf: Buffer, m: MemberRange, data: Buffer, fix: boolean): Buffer {
  const header = Buffer.from(buf.subarray(m.header, m.header + 512));
  octalField(data.length, 12).copy(header, 124);
  if (fix) fixChecksum(header, 0);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([buf.subarray(0, m.header), header, data, pad, buf.subarray(m.end)]);
}

function mutate(original: Buffer, mutation: Mutation): Buffer {
  const { members, endRecords } = splitMembers(original);
  const buf = Buffer.from(original);
  switch (mutation.kind) {
    case 'header': {
      const m = pick(members, mutation.member);
      const at = mutation.pax && m.start !== m.header ? m.start : m.header;
      const [offset, length] = FIELDS[mutation.field];
      const field = Buffer.alloc(length);
      if (mutation.field === 'size' && mutation.special < 6) {
        const size = m.size;
        const specials = [
          () => Buffer.from([0xc4, ...Buffer.alloc(11, 0x10)]), // a negative GNU base-256 number
          () => Buffer.from([0xff, ...Buffer.alloc(11, 0xff)]), // -1 in base-256
          () => Buffer.concat([Buffer.from([0x80]), Buffer.from(size.toString(16).padStart(22, '0'), 'hex')]), // the same size, base-256
          () => octalField(size + 512, 12),
          () => octalField(Math.max(0, size - 1), 12),
          () => octalField(0, 12),
        ];
        pick(specials, mutation.special)().copy(field);
      } else {
        Buffer.from(mutation.bytes).copy(field);
      }
      field.copy(buf, at + offset);
      if (mutation.fix && mutation.field !== 'checksum') fixChecksum(buf, at);
      return buf;
    }
    case 'truncate':
      return buf.subarray(0, mutation.at % buf.length);
    case 'members': {
      const list = [...members];
      const i = mutation.i % list.length;
      const j = mutation.j % list.length;
      const a = pick(list, i);
      if (mutation.op === 'remove') list.splice(i, 1);
      else if (mutation.op === 'duplicate') list.splice(i, 0, a);
      else if (mutation.op === 'swap') [list[i], list[j]] = [pick(list, j), a];
      else list.push(a);
      return Buffer.concat([...list.map((m) => buf.subarray(m.start, m.end)), buf.subarray(endRecords)]);
    }
    case 'json': {
      const json = members.filter((m) => m.name.endsWith('.json'));
      const m = pick(json, mutation.member);
      const value: unknown = JSON.parse(buf.toString('utf8', m.data, m.data + m.size));
      const path = pick(leaves(value), mutation.leaf);
      const edited = setAt(value, path, structuredClone(mutation.value));
      return replaceData(buf, m, Buffer.from(`${JSON.stringify(edited, null, 2)}\n`), mutation.fix);
    }
    case 'sparse': {
      const m = pick(
        members.filter((x) => x.name.endsWith('.ebs')),
        mutation.member,
      );
      const text = buf.toString('latin1', m.data, m.data + 512);
      const lines = text.replace(/\0+$/, '').split('\n');
      lines.pop();
      const numbers = lines.map(Number);
      const entries = (numbers.length - 1) / 2;
      const k = mutation.entry % Math.max(1, entries - 1);
      const offsetAt = 1 + 2 * k;
      if (mutation.op === 'shift') numbers[offsetAt] = mutation.to * BLOCK_SIZE;
      else if (mutation.op === 'count') numbers[0] = (numbers[0] ?? 0) + (mutation.to % 2 ? 1 : -1);
      else if (mutation.op === 'size') numbers[offsetAt + 1] = mutation.to * 512;
      else if (mutation.op === 'realsize') numbers[numbers.length - 2] = mutation.to * BLOCK_SIZE;
      else if (entries > 2) [numbers[1], numbers[3]] = [numbers[3] ?? 0, numbers[1] ?? 0];
      const map = Buffer.from(`${numbers.join('\n')}\n`, 'latin1');
      if (map.length > 512) return buf;
      buf.fill(0, m.data, m.data + 512);
      map.copy(buf, m.data);
      return buf;
    }
    case 'trailing': {
      if (mutation.op === 'zeros') return Buffer.concat([buf, Buffer.alloc(512 * mutation.count)]);
      if (mutation.op === 'bytes') return Buffer.concat([buf, Buffer.from(mutation.bytes)]);
      const m = pick(members, mutation.member);
      return Buffer.concat([
        buf.subarray(0, endRecords),
        buf.subarray(m.start, m.end),
        buf.subarray(endRecords),
      ]);
    }
    case 'flip': {
      const at = mutation.at % buf.length;
      buf[at] = (buf[at] ?? 0) ^ (1 << mutation.bit);
      return buf;
    }
  }
}

/** Everything under a directory: file names with a digest of what matters in each. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  if (!existsSync(root)) return out;
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const name = relative(root, path);
    if (!name.endsWith('.ebs')) {
      out[name] = createHash('sha256').update(readFileSync(path)).digest('hex');
      continue;
    }
    // Images are 1 GiB and sparse: their size, what is allocated, and every block the originals name.
    const stat = statSync(path);
    const hash = createHash('sha256').update(`${stat.size}/${stat.blocks}`);
    const file = await open(path, 'r');
    try {
      const data = Buffer.alloc(BLOCK_SIZE);
      for (const index of INDICES) {
        data.fill(0);
        await file.read(data, 0, BLOCK_SIZE, index * BLOCK_SIZE);
        hash.update(data);
      }
    } finally {
      await file.close();
    }
    out[name] = hash.digest('hex');
  }
  return out;
}

function chunked(buf: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let at = 0; at < buf.length; at += size) parts.push(buf.subarray(at, at + size));
  return Readable.from(parts);
}

type Outcome = { ok: true } | { ok: false; error: unknown };

async function outcome(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    await run();
    return { ok: true };
  } catch (error) {
    return { ok: false, error };
  }
}

const fuzzRoot = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();

describe('hostile streams (fuzz)', () => {
  let root: string;
  let full: Buffer;
  let chainFull: Buffer;
  let chainInc: Buffer;
  let expectedFull: Record<string, string>;
  let expectedAfterBase: Record<string, string>;
  let expectedChain: Record<string, string>;
  /** Mutants made so far in this file: each gets a directory and a file of its own. */
  let made = 0;

  /** What one property saw: how many mutants of each kind, and how many were accepted. */
  interface Tally {
    counts: Record<string, number>;
    runs: number;
    accepted: number;
  }
  const tally = (): Tally => ({ counts: {}, runs: 0, accepted: 0 });

  /** Each property proves its own coverage, whatever ran before it. */
  function expectCoverage(seen: Tally): void {
    expect(seen.runs).toBeGreaterThanOrEqual(RUNS_PER_CASE);
    for (const kind of ['header', 'truncate', 'members', 'json', 'sparse', 'trailing', 'flip']) {
      expect(seen.counts[kind] ?? 0, kind).toBeGreaterThan(50);
    }
    // Some mutants are harmless (an mtime, trailing zero records) and must be accepted.
    expect(seen.accepted).toBeGreaterThan(0);
  }

  beforeAll(async () => {
    root = mkdtempSync(join(fuzzRoot, 'ec2-bpipe-fuzz-'));
    full = await buildStream({
      job: 'full-1',
      volumes: [
        {
          volumeId: VOL_A,
          blocks: new Map([
            [0, block(1)],
            [5, block(2)],
          ]),
        },
        { volumeId: VOL_B, blocks: new Map([[1, block(3)]]) },
      ],
    });
    chainFull = await buildStream({
      job: 'j1',
      kind: 'volumes',
      volumes: [
        {
          volumeId: VOL_B,
          blocks: new Map([
            [1, block(4)],
            [2, block(5)],
            [7, block(6)],
          ]),
        },
      ],
    });
    chainInc = await buildStream({
      job: 'j2',
      level: 'Incremental',
      baseJob: 'j1',
      kind: 'volumes',
      volumes: [
        {
          volumeId: VOL_B,
          blocks: new Map([
            [2, block(7)],
            [7, ZERO],
            [9, block(8)],
          ]),
        },
      ],
    });
    expectedFull = await restoreAll('expected-full', [full]);
    expectedAfterBase = await restoreAll('expected-base', [chainFull]);
    expectedChain = await restoreAll('expected-chain', [chainFull, chainInc]);
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  async function restoreAll(name: string, streams: Buffer[]): Promise<Record<string, string>> {
    const target = join(root, name, 'target');
    const restore = new FilesRestore(target, silent);
    for (const [i, stream] of streams.entries()) {
      await restore.apply({ name: `stream-${i}`, open: () => Readable.from([stream]) });
    }
    return snapshot(target);
  }

  /** Verify and restore one mutant (after `base`, restored first), and check every promise above. */
  async function check(
    base: Buffer | undefined,
    original: Buffer,
    m: Mutation,
    chunk: number,
    expected: Record<string, string>,
    onRefusal: Record<string, string>,
    seen: Tally,
  ): Promise<void> {
    seen.counts[m.kind] = (seen.counts[m.kind] ?? 0) + 1;
    seen.runs++;
    const runs = ++made;
    const mutant = mutate(original, m);
    const run = join(root, `run-${runs}`);
    const target = join(run, 'target');
    mkdirSync(run);
    try {
      const restore = new FilesRestore(target, silent);
      if (base) await restore.apply({ name: 'base', open: () => Readable.from([base]) });
      const verified = await outcome(() => readStream(chunked(mutant, chunk), 'mutant'));
      // Every other restore reads the mutant from a file, through the reader's file input (blocks
      // read straight into its ring): verify's chunks and the file must get the same verdict.
      // Every fourth starts with a head already read from the file, as a peek at piped stdin leaves.
      const fromFile = runs % 2 === 1;
      const file = join(root, `mutant-${runs}.tar`);
      if (fromFile) writeFileSync(file, mutant);
      const openFile = async (): Promise<StreamFile> => {
        const handle = await open(file, 'r');
        if (runs % 4 !== 1) return { handle };
        const head = Buffer.alloc(Math.min(chunk, mutant.length));
        const { bytesRead } = await handle.read(head, 0, head.length, null);
        return { handle, head: head.subarray(0, bytesRead) };
      };
      const restored = await outcome(() =>
        restore.apply({ name: 'mutant', open: () => (fromFile ? openFile() : chunked(mutant, chunk)) }),
      );
      rmSync(file, { force: true });
      for (const result of [verified, restored]) {
        if (!result.ok && !(result.error instanceof RuntimeFailure)) throw result.error;
      }
      expect(
        restored.ok,
        `verify ${verified.ok ? 'accepted' : 'refused'} what restore ${restored.ok ? 'accepted' : 'refused'}`,
      ).toBe(verified.ok);
      expect(
        readdirSync(run).filter((name) => name !== 'target'),
        'nothing outside the target',
      ).toEqual([]);
      const result = await snapshot(target);
      if (restored.ok) {
        seen.accepted++;
        expect(result, 'an accepted mutant restores exactly the original').toEqual(expected);
      } else {
        expect(result, 'a refused mutant leaves no final-named file').toEqual(onRefusal);
      }
    } finally {
      rmSync(run, { recursive: true, force: true });
    }
  }

  it('a Full of an instance with two volumes: every kind of mutation, 1,100 mutants', async () => {
    const seen = tally();
    await fc.assert(
      fc.asyncProperty(mutation, chunkSize, (m, chunk) =>
        check(undefined, full, m, chunk, expectedFull, {}, seen),
      ),
      { seed: SEED, numRuns: RUNS_PER_CASE },
    );
    expectCoverage(seen);
  });

  it('an Incremental applied over its Full: every kind of mutation, 1,100 mutants', async () => {
    const seen = tally();
    await fc.assert(
      fc.asyncProperty(mutation, chunkSize, (m, chunk) =>
        check(chainFull, chainInc, m, chunk, expectedChain, expectedAfterBase, seen),
      ),
      { seed: SEED + 1, numRuns: RUNS_PER_CASE },
    );
    expectCoverage(seen);
  });
});
