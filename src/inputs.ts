import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { UsageError } from './errors.js';

export interface Input {
  /** What messages call it: the file name, or "stdin". */
  name: string;
  open(): Readable;
}

/** The stream files named on the command line, in the order given, or stdin when none. */
export async function streamInputs(files: string[], stdin: NodeJS.ReadableStream): Promise<Input[]> {
  if (files.length === 0) return [{ name: 'stdin', open: () => stdin as Readable }];
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
