import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { RuntimeFailure } from '../errors.js';
import type { InstanceMeta } from '../aws/metadata.js';
import {
  BLOCK_SIZE,
  type EndMarker,
  FORMAT_NAME,
  FORMAT_VERSION,
  type Manifest,
  member,
  sparseHeaderName,
  type VolumeMeta,
  type VolumeSum,
} from './format.js';
import { SparseMapParser } from './sparse.js';

/** A stream that is not a complete, intact ec2-bpipe stream. The message names the member and what is wrong. */
export class StreamDefect extends RuntimeFailure {
  /**
   * @param incomplete the stream stops early (empty, truncated, no end marker), as a failed
   *   backup leaves it, rather than holding wrong data.
   */
  constructor(
    source: string,
    message: string,
    readonly incomplete = false,
  ) {
    super(`${source}: ${message}`);
    this.name = 'StreamDefect';
  }
}

/** Carries an error a visitor threw through the reader untouched, so it is not taken for a tar defect. */
class VisitorError extends Error {
  constructor(readonly inner: unknown) {
    super('visitor failed');
  }
}

/** Calls a visitor method so that whatever it throws passes through the reader as it is. */
async function visit(call: () => Promise<void> | void | undefined): Promise<void> {
  try {
    await call();
  } catch (err) {
    throw new VisitorError(err);
  }
}

/** Called as the stream is read; every call happens only after the data it carries was checked as far as it can be. */
export interface StreamVisitor {
  manifest?(manifest: Manifest): Promise<void> | void;
  instance?(meta: InstanceMeta): Promise<void> | void;
  volumeStart?(meta: VolumeMeta): Promise<void> | void;
  /**
   * One block, in ascending index order, with its 32-byte SHA-256. The digest is part of the
   * volume's aggregate, which is checked at volumeEnd.
   */
  block?(meta: VolumeMeta, index: number, data: Buffer, digest: Buffer): Promise<void> | void;
  /** The volume's aggregate checksum matched every block read. */
  volumeEnd?(meta: VolumeMeta, sum: VolumeSum): Promise<void> | void;
  /** The end marker was read and nothing follows it: the stream is complete. */
  end?(marker: EndMarker): Promise<void> | void;
}

export interface VolumeReport {
  volumeId: string;
  level: string;
  blocks: number;
  sizeBytes: number;
  checksum: string;
}

export interface StreamReport {
  manifest: Manifest;
  volumes: VolumeReport[];
}

type Json = Record<string, unknown>;

function require(source: string, name: string, value: Json, fields: Record<string, string>): void {
  for (const [field, type] of Object.entries(fields)) {
    const actual =
      value[field] === null ? 'null' : Array.isArray(value[field]) ? 'array' : typeof value[field];
    if (!type.split('|').includes(actual)) {
      throw new StreamDefect(source, `member ${name}: field "${field}" is ${actual}, expected ${type}`);
    }
  }
}

async function readAll(
  entry: AsyncIterable<unknown>,
  limit: number,
  source: string,
  name: string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const item of entry) {
    const chunk = item as Buffer;
    size += chunk.length;
    if (size > limit) throw new StreamDefect(source, `member ${name} is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function readJson(entry: AsyncIterable<unknown>, source: string, name: string): Promise<Json> {
  const body = await readAll(entry, 16 * 1024 * 1024, source, name);
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Json;
  } catch (err) {
    throw new StreamDefect(source, `member ${name} is not valid JSON (${(err as Error).message})`);
  }
}

/**
 * Reads one stream, checks its structure, every block against the volume's aggregate, and the end
 * marker, and reports what it held. Throws StreamDefect at the first problem.
 */
export async function readStream(
  input: Readable,
  source: string,
  visitor: StreamVisitor = {},
): Promise<StreamReport> {
  const extract = tar.extract();
  let feedError: unknown;
  const feeding = pipeline(input, extract).catch((err: unknown) => {
    feedError = err;
  });
  const expected: string[] = [member.manifest];
  let manifest: Manifest | undefined;
  let current: VolumeMeta | undefined;
  let digests: ReturnType<typeof createHash> | undefined;
  let blocksRead = 0;
  const reports: VolumeReport[] = [];
  let ended = false;
  try {
    for await (const entry of extract) {
      const header = entry.header;
      const pax = (header.pax ?? {}) as Record<string, string>;
      const name = pax['GNU.sparse.name'] ?? header.name;
      if (ended) throw new StreamDefect(source, `member ${name} follows ${member.end}`);
      const want = expected.shift();
      if (name !== want) {
        throw new StreamDefect(
          source,
          want === undefined ? `unexpected member ${name}` : `expected member ${want}, found ${name}`,
        );
      }
      if (name === member.manifest) {
        const value = await readJson(entry, source, name);
        require(source, name, value, {
          format: 'string',
          formatVersion: 'number',
          job: 'string',
          level: 'string',
          region: 'string',
          kind: 'string',
          resourceId: 'string',
          volumes: 'array',
          config: 'string',
        });
        if (value.format !== FORMAT_NAME)
          throw new StreamDefect(source, `member ${name}: not an ${FORMAT_NAME} stream`);
        if (value.formatVersion !== FORMAT_VERSION) {
          throw new StreamDefect(
            source,
            `format version ${String(value.formatVersion)} is not supported (this tool reads ${FORMAT_VERSION})`,
          );
        }
        manifest = value as unknown as Manifest;
        if (manifest.kind === 'instance') expected.push(member.instance);
        for (const id of manifest.volumes)
          expected.push(member.volumeMeta(id), member.volumeData(id), member.volumeSum(id));
        expected.push(member.end);
        const read = manifest;
        await visit(() => visitor.manifest?.(read));
      } else if (name === member.instance) {
        const value = await readJson(entry, source, name);
        require(source, name, value, { instanceId: 'string', blockDeviceMappings: 'array', tags: 'array' });
        await visit(() => visitor.instance?.(value as unknown as InstanceMeta));
      } else if (name === member.end) {
        const value = await readJson(entry, source, name);
        if (value.complete !== true)
          throw new StreamDefect(source, `member ${name} does not mark the stream complete`);
        ended = true;
        await visit(() => visitor.end?.(value as unknown as EndMarker));
      } else if (name.endsWith('.sum.json')) {
        const value = await readJson(entry, source, name);
        require(source, name, value, { volumeId: 'string', blockCount: 'number', checksum: 'string' });
        const sum = value as unknown as VolumeSum;
        const meta = current!;
        if (sum.volumeId !== meta.volumeId || sum.blockCount !== blocksRead) {
          throw new StreamDefect(
            source,
            `member ${name}: ${sum.blockCount} blocks announced, ${blocksRead} read`,
          );
        }
        const actual = digests!.digest('base64');
        if (actual !== sum.checksum) {
          throw new StreamDefect(
            source,
            `member ${member.volumeData(meta.volumeId)}: the blocks do not match their aggregate checksum (read ${actual}, recorded ${sum.checksum}); the data is damaged`,
          );
        }
        reports.push({
          volumeId: meta.volumeId,
          level: meta.level,
          blocks: blocksRead,
          sizeBytes: meta.sizeBytes,
          checksum: sum.checksum,
        });
        await visit(() => visitor.volumeEnd?.(meta, sum));
        current = undefined;
      } else if (name.endsWith('.ebs')) {
        const meta = current!;
        if (
          header.name !== sparseHeaderName(name) ||
          pax['GNU.sparse.major'] !== '1' ||
          pax['GNU.sparse.minor'] !== '0'
        ) {
          throw new StreamDefect(source, `member ${name} is not a GNU sparse 1.0 member`);
        }
        if (Number(pax['GNU.sparse.realsize']) !== meta.sizeBytes) {
          throw new StreamDefect(
            source,
            `member ${name}: real size ${pax['GNU.sparse.realsize']} differs from the volume's ${meta.sizeBytes}`,
          );
        }
        digests = createHash('sha256');
        blocksRead = await readBlocks(entry, header.size, meta, source, name, (index, data) => {
          const digest = createHash('sha256').update(data).digest();
          digests!.update(digest);
          return visit(() => visitor.block?.(meta, index, data, digest));
        });
        if (blocksRead !== meta.blockCount) {
          throw new StreamDefect(
            source,
            `member ${name}: ${blocksRead} blocks, but ${member.volumeMeta(meta.volumeId)} announced ${meta.blockCount}`,
          );
        }
      } else {
        const value = await readJson(entry, source, name);
        require(source, name, value, {
          volumeId: 'string',
          snapshotId: 'string',
          sizeBytes: 'number',
          blockSize: 'number',
          blockCount: 'number',
          level: 'string',
        });
        current = value as unknown as VolumeMeta;
        if (member.volumeMeta(current.volumeId) !== name)
          throw new StreamDefect(source, `member ${name} describes ${current.volumeId}`);
        if (current.blockSize !== BLOCK_SIZE)
          throw new StreamDefect(source, `member ${name}: block size ${current.blockSize} is not supported`);
        const started = current;
        await visit(() => visitor.volumeStart?.(started));
      }
    }
  } catch (err) {
    input.destroy();
    if (err instanceof VisitorError) throw err.inner;
    if (err instanceof StreamDefect) throw err;
    const message = err instanceof Error ? err.message : String(err);
    const truncated = /unexpected end|premature/i.test(message);
    throw new StreamDefect(
      source,
      `${truncated ? 'the stream is truncated' : 'the stream is not a valid tar'} (${message})`,
      truncated,
    );
  }
  await feeding;
  if (feedError !== undefined)
    throw new StreamDefect(
      source,
      `reading failed (${feedError instanceof Error ? feedError.message : 'unknown error'})`,
    );
  if (!ended) {
    const missing = expected.length ? `member ${expected[0]} is missing` : 'the end marker is missing';
    throw new StreamDefect(source, `the stream is incomplete: ${manifest ? missing : 'it is empty'}`, true);
  }
  return { manifest: manifest!, volumes: reports };
}

/** Splits a sparse member's data into blocks, after its map; returns how many were read. */
async function readBlocks(
  entry: AsyncIterable<unknown>,
  memberSize: number,
  meta: VolumeMeta,
  source: string,
  name: string,
  onBlock: (index: number, data: Buffer) => Promise<void> | void,
): Promise<number> {
  const parser = new SparseMapParser(BLOCK_SIZE, meta.sizeBytes);
  let block = Buffer.allocUnsafe(BLOCK_SIZE);
  let filled = 0;
  let count = 0;
  let seen = 0;
  try {
    for await (const item of entry) {
      const chunk = item as Buffer;
      seen += chunk.length;
      let data = parser.push(chunk);
      if (data === undefined) continue;
      while (data.length > 0) {
        if (count >= parser.blocks.length) throw new Error('more data than the sparse map lists');
        const take = Math.min(BLOCK_SIZE - filled, data.length);
        data.copy(block, filled, 0, take);
        filled += take;
        data = data.subarray(take);
        if (filled === BLOCK_SIZE) {
          await onBlock(parser.blocks.at(count), block);
          count++;
          block = Buffer.allocUnsafe(BLOCK_SIZE);
          filled = 0;
        }
      }
    }
  } catch (err) {
    if (err instanceof StreamDefect || err instanceof VisitorError) throw err;
    const message = (err as Error).message;
    if (/sparse map|more data/.test(message)) throw new StreamDefect(source, `member ${name}: ${message}`);
    throw err;
  }
  if (seen !== memberSize) throw new StreamDefect(source, `member ${name} is truncated`, true);
  if (!parser.done) throw new StreamDefect(source, `member ${name}: the sparse map is incomplete`);
  if (filled !== 0 || count !== parser.blocks.length) {
    throw new StreamDefect(
      source,
      `member ${name}: ${count} blocks of data for ${parser.blocks.length} map entries`,
    );
  }
  return count;
}
