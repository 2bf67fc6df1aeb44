import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/**
 * The hashing thread. It gets either a block as `[buffer, offset, length]` parts whose
 * ArrayBuffers were transferred to it, hashes the parts in order and transfers the same buffers
 * back with the SHA-256; or a region of a shared ring of block memory (registered once), which
 * it hashes in place and answers with the SHA-256 alone. It never writes the blocks. Kept as
 * source text and run with `eval`, so that the bundle needs no second entry point.
 */
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const rings = new Map();
parentPort.on('message', (message) => {
  if (message.memory !== undefined) return void rings.set(message.ring, message.memory);
  if (message.forget !== undefined) return void rings.delete(message.forget);
  const hash = createHash('sha256');
  if (message.ring !== undefined) {
    hash.update(new Uint8Array(rings.get(message.ring), message.offset, message.length));
  } else {
    for (const [buffer, offset, length] of message.parts) hash.update(new Uint8Array(buffer, offset, length));
  }
  // A 32-byte buffer of its own: the digest Buffer is a view of an 8 KiB pool, which would travel whole.
  message.digest = new Uint8Array(hash.digest());
  parentPort.postMessage(message, message.parts ? [...new Set(message.parts.map((part) => part[0]))] : []);
});
`;

type Part = [buffer: ArrayBuffer, offset: number, length: number];

interface HashAnswer {
  id: number;
  /** The moved parts, back; absent for a region of a shared ring. */
  parts?: Part[];
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
    { resolve: (answer: HashAnswer) => void; reject: (err: Error) => void }
  >();
  /** Shared rings the thread knows, by the number it knows them by. */
  private readonly rings = new WeakMap<SharedArrayBuffer, number>();
  private nextRing = 0;
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
    const thread = this.running();
    if (thread === undefined) return hashHere(chunks);
    const id = this.nextId++;
    const answer = this.answer(id);
    try {
      thread.postMessage({ id, parts }, [...moving]);
    } catch {
      // A buffer Node will not move (DataCloneError): nothing was moved, hash it here.
      this.pending.delete(id);
      return hashHere(chunks);
    }
    this.busy(thread);
    const { parts: back = [], digest } = await answer;
    return {
      chunks: back.map(([buffer, offset, length]) => Buffer.from(buffer, offset, length)),
      digest: bufferOf(digest),
    };
  }

  /**
   * The SHA-256 of `length` bytes at `offset` of a shared ring, hashed in place on the thread:
   * nothing is moved or copied, and no memory is created per block, so the process's garbage
   * collector has nothing to follow (moved buffers cost a restore about 1 CPU-s/GiB of it,
   * docs/PERFORMANCE.md). The caller leaves those bytes alone until the digest is back. A thread
   * that cannot start or stops costs speed only: the bytes are still here, and are hashed here.
   */
  async hashShared(memory: SharedArrayBuffer, offset: number, length: number): Promise<Buffer> {
    const here = (): Buffer =>
      createHash('sha256')
        .update(new Uint8Array(memory, offset, length))
        .digest();
    const thread = this.running();
    if (thread === undefined) return here();
    let ring = this.rings.get(memory);
    if (ring === undefined) {
      ring = this.nextRing++;
      this.rings.set(memory, ring);
      thread.postMessage({ ring, memory });
    }
    const id = this.nextId++;
    const answer = this.answer(id);
    thread.postMessage({ id, ring, offset, length });
    this.busy(thread);
    try {
      return bufferOf((await answer).digest);
    } catch {
      return here();
    }
  }

  /** The thread lets go of a shared ring: messages keep their order, so after its last block. */
  forget(memory: SharedArrayBuffer): void {
    const ring = this.rings.get(memory);
    if (ring === undefined) return;
    this.rings.delete(memory);
    this.thread?.postMessage({ forget: ring });
  }

  /** The thread, started if need be; undefined when it cannot run (then hash here). */
  private running(): Worker | undefined {
    if (this.failure) return undefined;
    try {
      return this.start();
    } catch (err) {
      this.failure = new Error(`the block hashing thread could not start (${String(err)})`, { cause: err });
      return undefined;
    }
  }

  private answer(id: number): Promise<HashAnswer> {
    return new Promise<HashAnswer>((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  /** The thread keeps the process alive only while it has work. */
  private busy(thread: Worker): void {
    if (this.pending.size === 1) thread.ref();
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
      waiting.resolve(answer);
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

const bufferOf = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);

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
