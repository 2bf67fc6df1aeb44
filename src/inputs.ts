import { access, open, readlink, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { messageOf, RuntimeFailure, UsageError } from './errors.js';
import { parseFinalizer } from './format/finalizer.js';
import { FILE_CHUNK, type StreamFile, type StreamInput } from './stream/reader.js';
import type { Finalizer } from './format/finalizer.js';

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
 * straight into its own memory, with no buffer in between (docs/PERFORMANCE.md).
 */
async function openFile(file: string): Promise<StreamFile> {
  try {
    return { handle: await open(file, 'r') };
  } catch (err) {
    throw new RuntimeFailure(`${file}: cannot open the stream file (${messageOf(err)})`);
  }
}

/** Where Linux shows what fd 0 is: a path, or `pipe:[inode]` for an anonymous pipe. */
const STDIN_LINK = '/proc/self/fd/0';

/**
 * The process's stdin, when it is an anonymous pipe (Bacula's bpipe, `cat job.tar |`) or a file
 * (`< job.tar`), opened again through /proc: a file handle of its own, read like a stream file,
 * and in blocking mode whatever Node did to fd 0 (it makes a pipe non-blocking for
 * process.stdin). A named FIFO is left alone (opening it again could wait for a writer that is
 * gone), and so is any other stdin, or a system without /proc: read as the Readable it is.
 */
async function openStdin(stdin: Readable): Promise<StreamInput> {
  if (stdin !== process.stdin) return stdin;
  try {
    const [target, kind] = await Promise.all([readlink(STDIN_LINK), stat(STDIN_LINK)]);
    if (!kind.isFile() && !(kind.isFIFO() && target.startsWith('pipe:['))) return stdin;
    return { handle: await open(STDIN_LINK, 'r') };
  } catch {
    return stdin;
  }
}

/** The stream files named on the command line, in the order given, or stdin when none. */
export async function streamInputs(files: string[], stdin: NodeJS.ReadableStream): Promise<Input[]> {
  if (files.length === 0) {
    // Waiting on a keyboard for a tar stream would look like a hang.
    if ('isTTY' in stdin && stdin.isTTY === true) {
      throw new UsageError('no stream to read: name a stream file, or pipe one to stdin (… < job.tar).');
    }
    return [{ name: 'stdin', open: () => openStdin(stdin as Readable) }];
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
  return { kind: 'finalizer', name: input.name, finalizer: await readFinalizer(input.name, first, stream) };
}

/** A finalizer: its first bytes and the rest of its input, read whole up to MAX_FINALIZER. */
async function readFinalizer(name: string, first: Buffer, rest: AsyncIterable<Buffer>): Promise<Finalizer> {
  const chunks = [first];
  let size = first.length;
  for await (const chunk of rest) {
    size += chunk.length;
    if (size > MAX_FINALIZER)
      throw new RuntimeFailure(
        `${name}: a finalizer larger than ${MAX_FINALIZER / 1024 / 1024} MiB is not one`,
      );
    chunks.push(chunk);
  }
  return parseFinalizer(Buffer.concat(chunks), name);
}

/**
 * The same for a stream file or piped stdin: its first bytes are read, and handed on as the
 * stream's head when it is one.
 */
async function classifyFile(file: StreamFile, name: string): Promise<Classified> {
  const { handle } = file;
  const read = async (): Promise<Buffer | null> => {
    const chunk = Buffer.allocUnsafe(FILE_CHUNK);
    const { bytesRead } = await handle.read(chunk, 0, FILE_CHUNK, null);
    return bytesRead === 0 ? null : chunk.subarray(0, bytesRead);
  };
  async function* rest(): AsyncGenerator<Buffer> {
    for (let chunk = await read(); chunk !== null; chunk = await read()) yield chunk;
  }
  let finalizer: Finalizer;
  try {
    const first = await read();
    if (first === null || first[0] !== 0x7b /* { */) {
      const stream: StreamFile = first === null ? { handle } : { handle, head: first };
      return { kind: 'stream', input: { name, open: () => stream } };
    }
    finalizer = await readFinalizer(name, first, rest());
  } catch (err) {
    await handle.close();
    if (err instanceof RuntimeFailure) throw err;
    throw new RuntimeFailure(`${name}: reading failed (${messageOf(err)})`);
  }
  await handle.close();
  return { kind: 'finalizer', name, finalizer };
}
