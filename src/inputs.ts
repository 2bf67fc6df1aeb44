import { access, type FileHandle, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { messageOf, RuntimeFailure, UsageError } from './errors.js';
import { parseFinalizer } from './stream/finalizer.js';
import type { StreamInput } from './stream/reader.js';
import type { Finalizer } from './stream/schema.js';

export interface Input {
  /** What messages call it: the file name, or "stdin". */
  name: string;
  /** Called once; the reader closes what it returns. */
  open(): StreamInput | Promise<StreamInput>;
}

/** The largest finalizer read: one holds a few lines per volume. */
const MAX_FINALIZER = 64 * 1024 * 1024;

/**
 * A stream file is read through a file handle, not a Readable: the reader then puts each block
 * straight into its own memory, with no 1 MiB buffer in between (docs/PERFORMANCE.md).
 */
async function openFile(file: string): Promise<FileHandle> {
  try {
    return await open(file, 'r');
  } catch (err) {
    throw new RuntimeFailure(`${file}: cannot open the stream file (${messageOf(err)})`);
  }
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
    open: () => openFile(file),
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
  const opened = await input.open();
  if (!(opened instanceof Readable)) return classifyFile(opened, input.name);
  const stream = opened;
  const first = await firstChunk(stream);
  if (first === null || first[0] !== 0x7b /* { */) {
    if (first !== null) stream.unshift(first);
    return { kind: 'stream', input: { name: input.name, open: () => stream } };
  }
  const chunks = [first];
  let size = first.length;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > MAX_FINALIZER) throw tooLarge(input.name);
    chunks.push(chunk as Buffer);
  }
  const finalizer = parseFinalizer(Buffer.concat(chunks), input.name);
  return { kind: 'finalizer', name: input.name, finalizer };
}

const tooLarge = (name: string): RuntimeFailure =>
  new RuntimeFailure(`${name}: a finalizer larger than ${MAX_FINALIZER / 1024 / 1024} MiB is not one`);

/** The same for a stream file: its first byte is read in place (pread), so the stream starts at 0. */
async function classifyFile(file: FileHandle, name: string): Promise<Classified> {
  let finalizer: Finalizer;
  try {
    const first = Buffer.alloc(1);
    const { bytesRead } = await file.read(first, 0, 1, 0);
    if (bytesRead === 0 || first[0] !== 0x7b /* { */) {
      const stream = file;
      return { kind: 'stream', input: { name, open: () => stream } };
    }
    if ((await file.stat()).size > MAX_FINALIZER) throw tooLarge(name);
    finalizer = parseFinalizer(await file.readFile(), name);
  } catch (err) {
    await file.close();
    if (err instanceof RuntimeFailure) throw err;
    throw new RuntimeFailure(`${name}: reading failed (${messageOf(err)})`);
  }
  await file.close();
  return { kind: 'finalizer', name, finalizer };
}
