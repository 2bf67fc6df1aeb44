import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { RuntimeFailure } from '../../src/errors.js';
import { classify, streamInputs } from '../../src/inputs.js';
import { readStream } from '../../src/stream/reader.js';
import { block, buildStream } from '../stream-builder.js';

const dir = mkdtempSync(join(tmpdir(), 'ec2-bpipe-inputs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The same bytes as a stream file named on the command line, and as a Node stream (a socket). */
async function bothInputs(name: string, bytes: Buffer) {
  const file = join(dir, name);
  writeFileSync(file, bytes);
  const [fromFile] = await streamInputs([file], Readable.from([]));
  if (fromFile === undefined) throw new Error('no input');
  return [
    fromFile,
    { name: 'socket', open: () => Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]) },
  ];
}

describe('classify', () => {
  it('hands a stream on whole, the peeked bytes first, from a file and from a Node stream', async () => {
    const stream = await buildStream({
      job: 'j1',
      volumes: [{ volumeId: 'vol-0123456789abcdef0', blocks: new Map([[2, block(3)]]) }],
    });
    for (const input of await bothInputs('s.tar', stream)) {
      const item = await classify(input);
      if (item.kind !== 'stream') throw new Error(`${input.name}: taken for a finalizer`);
      const report = await readStream(await item.input.open(), input.name);
      expect(report.volumes[0]?.blocks, input.name).toBe(1);
    }
  });

  it('refuses a JSON input larger than any finalizer, from a file and from a Node stream', async () => {
    const huge = Buffer.alloc(64 * 1024 * 1024 + 1, 0x20);
    huge[0] = 0x7b;
    for (const input of await bothInputs('huge.json', huge)) {
      const error = await classify(input).catch((err: unknown) => err);
      expect(error, input.name).toBeInstanceOf(RuntimeFailure);
      expect((error as Error).message).toBe(`${input.name}: a finalizer larger than 64 MiB is not one`);
    }
  });

  it('refuses JSON that is not a finalizer with the input named', async () => {
    for (const input of await bothInputs('other.json', Buffer.from('{"hello": 1}'))) {
      const error = await classify(input).catch((err: unknown) => err);
      expect(error, input.name).toBeInstanceOf(RuntimeFailure);
      expect((error as Error).message).toMatch(new RegExp(`^${input.name.replaceAll('.', '\\.')}: `));
    }
  });
});
