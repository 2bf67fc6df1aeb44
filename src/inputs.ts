import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { RuntimeFailure, UsageError } from './errors.js';
import { parseFinalizer } from './stream/finalizer.js';
import type { Finalizer } from './stream/schema.js';

export interface Input {
  /** What messages call it: the file name, or "stdin". */
  name: string;
  open(): Readable;
}

/** The stream files named on the command line, in the order given, or stdin when none. */
export async function streamInputs(files: string[], stdin: NodeJS.ReadableStream): Promise<Input[]> {
  if (files.length === 0) {
    // Waiting on a keyboard for a tar stream would look like a hang.
    if ('isTTY' in stdin && stdin.isTTY === true) {
      throw new UsageError('no stream to read: name a stream file, or pipe one to stdin (… < job.tar).');
    }
    return [{ name: 'stdin', open: () => stdin as Readable }];
  }
  for (const file of files) {
    try {
      await access(file);
    } catch {
      throw new UsageError(`${file}: no such stream file.`);
    }
  }
  return files.map((file) => ({
    name: file,
    open: () => createReadStream(file, { highWaterMark: 1024 * 1024 }),
  }));
}

export type Classified =
  { kind: 'stream'; input: Input } | { kind: 'finalizer'; name: string; finalizer: Finalizer };

async function firstChunk(stream: Readable): Promise<Buffer | null> {
  for (;;) {
    const chunk = stream.read() as Buffer | null;
    if (chunk !== null) return chunk;
    if (stream.readableEnded) return null;
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        stream.off('readable', done);
        stream.off('end', done);
        stream.off('error', fail);
        resolve();
      };
      const fail = (err: Error): void => reject(err);
      stream.once('readable', done);
      stream.once('end', done);
      stream.once('error', fail);
    });
  }
}

/**
 * Tells a data stream (a tar) from a finalizer (`restore.json`, a JSON object) by its first byte.
 * The input is opened once; the stream handed on starts where the peek began.
 */
export async function classify(input: Input): Promise<Classified> {
  const stream = input.open();
  const first = await firstChunk(stream);
  if (first === null || first[0] !== 0x7b /* { */) {
    if (first !== null) stream.unshift(first);
    return { kind: 'stream', input: { name: input.name, open: () => stream } };
  }
  const chunks = [first];
  let size = first.length;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024 * 1024)
      throw new RuntimeFailure(`${input.name}: a finalizer larger than 64 MiB is not one`);
    chunks.push(chunk as Buffer);
  }
  const finalizer = parseFinalizer(Buffer.concat(chunks), input.name);
  return { kind: 'finalizer', name: input.name, finalizer };
}
