import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * The hashing thread: it gets a block as `[buffer, offset, length]` parts whose ArrayBuffers were
 * transferred to it, hashes the parts in order, and transfers the same buffers back with the
 * SHA-256. It never writes them. Kept as source text and run with `eval`, so that the bundle
 * needs no second entry point.
 */
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', (message) => {
  const hash = createHash('sha256');
  for (const [buffer, offset, length] of message.parts) hash.update(new Uint8Array(buffer, offset, length));
  // A 32-byte buffer of its own: the digest Buffer is a view of an 8 KiB pool, which would travel whole.
  message.digest = new Uint8Array(hash.digest());
  parentPort.postMessage(message, [...new Set(message.parts.map((part) => part[0]))]);
});
`;

type Part = [buffer: ArrayBuffer, offset: number, length: number];

interface HashRequest {
  id: number;
  parts: Part[];
}

interface HashAnswer extends HashRequest {
  digest: Uint8Array;
}

export interface HashedBlock {
  /** The block's chunks, as they came back from the hashing thread: the same bytes. */
  chunks: Buffer[];
  digest: Buffer;
}

/**
 * SHA-256 of blocks on a second thread. A backup's main thread runs the SDK, the HTTP parsing and
 * the tar stream for every block, and hashing each 512 KiB there cost it about a fifth of its time
 * (docs/PERFORMANCE.md). The chunks' memory is moved to the thread and back, not copied (a copy
 * costs about as much as the hash saves); a chunk Node does not let go of is copied instead.
 *
 * The caller must use the chunks it gets back and never the ones it passed: those are detached
 * (empty) once moved.
 */
export class BlockHasher {
  private thread: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (block: HashedBlock) => void; reject: (err: Error) => void }
  >();
  private failure: Error | undefined;

  /** `threadSource` replaces the thread's code, for the tests of a failing thread. */
  constructor(private readonly threadSource = THREAD_SOURCE) {}

  /**
   * The block's digest, and its chunks back. When the thread cannot start, or has stopped, the
   * block is hashed on this thread instead: slower, never wrong. Only the blocks that were on the
   * thread when it stopped fail (their memory went with it), and their reads are reported.
   */
  async hash(chunks: readonly Buffer[]): Promise<HashedBlock> {
    if (this.failure) return hashHere(chunks);
    const parts: Part[] = [];
    const moving = new Set<ArrayBuffer>();
    for (const chunk of chunks) {
      const { buffer } = chunk;
      if (buffer instanceof ArrayBuffer && buffer.byteLength <= 2 * chunk.length && !moving.has(buffer)) {
        parts.push([buffer, chunk.byteOffset, chunk.length]);
        moving.add(buffer);
      } else {
        // Shared with other data (a pooled buffer, a large read), or already moving with an
        // earlier chunk of this block: a copy of its own goes instead.
        const copy = new Uint8Array(chunk.length);
        copy.set(chunk);
        parts.push([copy.buffer, 0, copy.length]);
        moving.add(copy.buffer);
      }
    }
    let thread: Worker;
    try {
      thread = this.start();
    } catch (err) {
      this.failure = new Error(`the block hashing thread could not start (${String(err)})`, { cause: err });
      return hashHere(chunks);
    }
    const id = this.nextId++;
    const answer = new Promise<HashedBlock>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    const request: HashRequest = { id, parts };
    try {
      thread.postMessage(request, [...moving]);
    } catch {
      // A buffer Node will not move (DataCloneError): nothing was moved, hash it here.
      this.pending.delete(id);
      return hashHere(chunks);
    }
    // The thread keeps the process alive only while it has work.
    if (this.pending.size === 1) thread.ref();
    return answer;
  }

  private start(): Worker {
    if (this.thread) return this.thread;
    const thread = new Worker(this.threadSource, {
      eval: true,
      // The thread needs none of the process's flags or preloads.
      execArgv: [],
      env: {},
      stdout: false,
      stderr: false,
    });
    thread.unref();
    thread.on('message', (answer: HashAnswer) => {
      const waiting = this.pending.get(answer.id);
      if (waiting === undefined) return;
      this.pending.delete(answer.id);
      if (this.pending.size === 0) thread.unref();
      waiting.resolve({
        chunks: answer.parts.map(([buffer, offset, length]) => Buffer.from(buffer, offset, length)),
        digest: Buffer.from(answer.digest.buffer, answer.digest.byteOffset, answer.digest.length),
      });
    });
    const fail = (err: Error): void => {
      this.failure ??= new Error(`the block hashing thread stopped (${err.message})`, { cause: err });
      this.thread = undefined;
      for (const waiting of this.pending.values()) waiting.reject(this.failure);
      this.pending.clear();
    };
    thread.on('error', fail);
    thread.on('exit', (code) => fail(new Error(`exit code ${code}`)));
    this.thread = thread;
    return thread;
  }

  /** Stops the thread; later blocks are hashed on the calling thread. */
  async close(): Promise<void> {
    const thread = this.thread;
    this.failure ??= new Error('the block hasher was closed');
    if (thread) await thread.terminate();
  }
}

let shared: BlockHasher | undefined;

/** The process's block hasher: one thread, started on first use. */
export function blockHasher(): BlockHasher {
  shared ??= new BlockHasher();
  return shared;
}

/** The same digest on the calling thread. */
export function hashHere(chunks: readonly Buffer[]): HashedBlock {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return { chunks: [...chunks], digest: hash.digest() };
}

/** How a block read gets its digest: here, or on the hashing thread. */
export type BlockDigester = (chunks: readonly Buffer[]) => Promise<HashedBlock>;

export const hashOnThisThread: BlockDigester = (chunks) => Promise.resolve(hashHere(chunks));

/**
 * From how many reads in flight a backup hashes on the second thread. With few workers the
 * process mostly waits on AWS and its main thread has time to hash; the thread then only adds the
 * cost of moving the chunks (measured on 2 cores, 8 workers: 0.97 → 0.90 of the bare SDK's
 * throughput, +0.5 CPU-s/GiB). With many, the SDK keeps the main thread busy and the hash is
 * better elsewhere (32 and 64 workers: 0.80–0.85 → 0.88–0.91). docs/PERFORMANCE.md.
 */
export const HASH_THREAD_MIN_WORKERS = 16;

/** The digester for a backup reading with `workers` requests in flight. */
export function digesterFor(workers: number): BlockDigester {
  if (workers < HASH_THREAD_MIN_WORKERS) return hashOnThisThread;
  const hasher = blockHasher();
  return (chunks) => hasher.hash(chunks);
}
