import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mapEntry, mapHead, mapTail, SparseMapParser, SparseMapSize } from '../../src/format/sparse.js';

const BS = 512 * 1024;

/** Encodes a map the way the writer does: counted first, then written. */
function encode(indices: number[], realSize: number): Buffer {
  const size = new SparseMapSize();
  for (const i of indices) size.add(i * BS, BS);
  let text = mapHead(size.regions);
  for (const i of indices) text += mapEntry(i * BS, BS);
  const head = Buffer.from(text, 'latin1');
  const map = Buffer.concat([head, mapTail(realSize, head.length)]);
  expect(map.length).toBe(size.paddedLength(realSize));
  expect(map.length % 512).toBe(0);
  return map;
}

function parseInChunks(
  bytes: Buffer,
  cuts: number[],
  realSize: number,
): { parser: SparseMapParser; rest: Buffer } {
  const parser = new SparseMapParser(BS, realSize);
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let last = 0;
  const rest: Buffer[] = [];
  for (const p of [...points, bytes.length]) {
    const out = parser.push(bytes.subarray(last, p));
    if (out) rest.push(out);
    last = p;
  }
  return { parser, rest: Buffer.concat(rest) };
}

describe('GNU sparse 1.0 map', () => {
  it('round-trips any ascending block list, however the bytes are chunked', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 32767 }), { maxLength: 300 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.uint8Array({ minLength: 0, maxLength: 40 }),
        (raw, cuts, trailing) => {
          const indices = [...raw].sort((a, b) => a - b);
          const realSize = 32768 * BS;
          const map = encode(indices, realSize);
          const bytes = Buffer.concat([map, Buffer.from(trailing)]);
          const { parser, rest } = parseInChunks(bytes, cuts, realSize);
          expect(parser.done).toBe(true);
          expect(Array.from({ length: parser.blocks.length }, (_, i) => parser.blocks.at(i))).toEqual(
            indices,
          );
          expect(rest).toEqual(Buffer.from(trailing));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('writes the text GNU tar expects', () => {
    const map = encode([0, 3], 8 * BS)
      .toString('latin1')
      .replace(/\0+$/, '');
    expect(map).toBe(`3\n0\n${BS}\n${3 * BS}\n${BS}\n${8 * BS}\n0\n`);
  });

  it.each([
    [`2\n0\n1000\n${8 * BS}\n0\n`, /not one whole block/],
    [`3\n${BS}\n${BS}\n0\n${BS}\n${8 * BS}\n0\n`, /out of ascending order/],
    [`2\n0\n${BS}\n${4 * BS}\n0\n`, /last entry must be/],
    [`2\n0\nabc\n`, /is not a number/],
    [`2\n${8 * BS}\n${BS}\n${8 * BS}\n0\n`, /not one whole block inside the volume/],
  ])('refuses a map that is not ours: %j', (text, pattern) => {
    const parser = new SparseMapParser(BS, 8 * BS);
    const bytes = Buffer.alloc(512);
    bytes.write(text, 'latin1');
    expect(() => parser.push(bytes)).toThrow(pattern);
  });
});
