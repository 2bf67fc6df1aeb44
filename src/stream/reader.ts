import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type * as z from 'zod/mini';
import { messageOf, RuntimeFailure } from '../errors.js';
import { Slots } from '../pool.js';
import { BlockRing, type RingSlot } from './block-ring.js';
import { StreamDefect } from './defect.js';
import { sha256Hex, VolumeDigests } from '../format/digests.js';
import {
  BLOCK_SIZE,
  FORMAT_NAME,
  MEMBER_MODE,
  member,
  READABLE_VERSIONS,
  sparseHeaderName,
} from '../format/container.js';
import { describeIssues } from '../format/fields.js';
import {
  type EndMarker,
  endMarkerSchema,
  type InstanceMeta,
  instanceMetaSchema,
  type Manifest,
  manifestSchema,
  manifestV1Schema,
  type MemberDigest,
  resourceIdMatches,
  type VolumeMeta,
  volumeMetaSchema,
  type VolumeSum,
  volumeSumSchema,
} from '../format/members.js';
import { SparseMapError, SparseMapParser } from '../format/sparse.js';
import { type TarInput, type TarMember, TarReader } from './tar.js';

export { StreamDefect } from './defect.js';

/** JSON members are small: the largest, instance.json, holds at most 16 KiB of user data. */
const MAX_JSON_MEMBER = 1024 * 1024;
const SPARSE_KEYS = ['GNU.sparse.major', 'GNU.sparse.minor', 'GNU.sparse.name', 'GNU.sparse.realsize'];

export interface ReadOptions {
  /**
   * How many blocks the visitor may hold at once: `block` is called for the next block while up
   * to this many earlier calls have not settled (their writes in flight). 1, the default, calls
   * it only once the previous call settled. Each is one block of memory.
   */
  blocksLent?: number;
  /**
   * Reads a format 1 stream (ec2-bpipe 0.1): nothing in one proves where each block belongs nor
   * that its metadata is unaltered, so only a command that says so (verify) or an operator who
   * accepts it (--accept-format-1) reads one. A format 1 manifest that a later version wrote is a
   * downgrade, refused always.
   */
  acceptFormat1?: boolean;
}

/** What a format 1 stream cannot prove; every command that reads one says it. */
export const FORMAT_1_LIMITS =
  'nothing in a format 1 stream proves where each block belongs nor that its metadata is unaltered';

/** Says, for a format 1 stream that was read, what it could not prove. */
export function warnFormat1(log: { warn(message: string): void }, name: string, version: number): void {
  if (version === 1)
    log.warn(
      `${name}: format version 1, read as accepted: ${FORMAT_1_LIMITS}; take a new Full to get those proofs`,
    );
}

/** The versions that wrote format 1: 0.1.x only. Any later one writes format 2 or above. */
const FORMAT_1_WRITER = /^0\.1\.\d+(?:[-+][\w.-]*)?$/;

/**
 * Called as the stream is read. Every call but `end` happens before the stream is known to be
 * whole: a visitor may write to temporary places (a `.partial` file, a pending snapshot) but must
 * make nothing final before `end`.
 */
export interface StreamVisitor {
  manifest?(manifest: Manifest): Promise<void> | void;
  instance?(meta: InstanceMeta): Promise<void> | void;
  volumeStart?(meta: VolumeMeta): Promise<void> | void;
  /**
   * The volume's sparse map was read, before its first block: `mapDigest` is the SHA-256 of the
   * block indices it lists. Not proven yet (the sums come at volumeEnd), so only good for
   * telling one stream's map from another's.
   */
  volumeMap?(meta: VolumeMeta, mapDigest: Buffer): Promise<void> | void;
  /**
   * One block, in ascending index order, with its 32-byte SHA-256; checked against the volume's
   * sums at volumeEnd. `data` is lent: it holds the block until the promise this call returns
   * settles, and other blocks after that (the reader reuses its memory). The next call may come
   * before this one settled (ReadOptions.blocksLent); volumeEnd comes once all have.
   */
  block?(meta: VolumeMeta, index: number, data: Buffer, digest: Buffer): Promise<void> | void;
  /** Every block of the volume matched its recorded checksums. */
  volumeEnd?(meta: VolumeMeta, sum: VolumeSum): Promise<void> | void;
  /**
   * The end marker, every member digest (version 2) and the tar end records were read, and
   * nothing follows: the stream is complete and intact. Only now may anything become final.
   */
  end?(marker: EndMarker): Promise<void> | void;
}

export interface VolumeReport {
  volumeId: string;
  level: string;
  blocks: number;
  sizeBytes: number;
  /** The LINEAR aggregate, base64. */
  checksum: string;
  /** The index-bound digest, hex; null for a version 1 stream, which has none. */
  indexedSha256: string | null;
}

export interface StreamReport {
  manifest: Manifest;
  formatVersion: number;
  volumes: VolumeReport[];
}

/**
 * A stream file, or stdin when it is a pipe or a file, opened by the caller: the reader reads its
 * blocks straight into the ring. `head` holds bytes already read from it (a peek at its first
 * byte), which come first.
 */
export interface StreamFile {
  handle: FileHandle;
  head?: Buffer;
}

/** What a stream is read from: a Readable (a test's bytes, a socket), or a StreamFile. */
export type StreamInput = Readable | StreamFile;

/** Reads of a stream file that are not a block's: headers, JSON members, the sparse map. */
export const FILE_CHUNK = 64 * 1024;

/** Read errors of the input itself (a missing file, EIO) name the input, not a member. */
function tarInput(input: StreamInput, source: string): TarInput {
  const failed = (err: unknown): RuntimeFailure =>
    new RuntimeFailure(`${source}: reading failed (${messageOf(err)})`);
  if (input instanceof Readable) {
    const chunks: AsyncIterator<unknown> = input[Symbol.asyncIterator]();
    return {
      async chunk() {
        let next: IteratorResult<unknown>;
        try {
          next = await chunks.next();
        } catch (err) {
          throw failed(err);
        }
        if (next.done === true) return null;
        const chunk: unknown = next.value;
        if (Buffer.isBuffer(chunk)) return chunk;
        if (typeof chunk === 'string') return Buffer.from(chunk);
        throw new TypeError('the input yielded something other than bytes');
      },
    };
  }
  let head = input.head ?? Buffer.alloc(0);
  const read = async (target: Buffer, offset: number, length: number): Promise<number> => {
    if (head.length > 0) {
      const taken = head.copy(target, offset, 0, length);
      head = head.subarray(taken);
      return taken;
    }
    try {
      return (await input.handle.read(target, offset, length, null)).bytesRead;
    } catch (err) {
      throw failed(err);
    }
  };
  return {
    async chunk() {
      if (head.length > 0) {
        const first = head;
        head = Buffer.alloc(0);
        return first;
      }
      const chunk = Buffer.allocUnsafe(FILE_CHUNK);
      const length = await read(chunk, 0, FILE_CHUNK);
      return length === 0 ? null : chunk.subarray(0, length);
    },
    into: read,
  };
}

/** The state of one stream being read: what was seen, what must come next. */
class StreamCheck {
  private readonly tar: TarReader;
  private readonly blocksLent: number;
  private readonly acceptFormat1: boolean;
  /** Where blocks are put while they are lent; taken at the first volume. */
  private ring: BlockRing | undefined;
  private readonly expected: string[] = [member.manifest];
  private readonly digests: MemberDigest[] = [];
  private readonly reports: VolumeReport[] = [];
  private manifest: Manifest | undefined;
  private version = 0;
  private volume: VolumeMeta | undefined;
  private volumeDigests: VolumeDigests | undefined;
  private marker: EndMarker | undefined;
  private totalBlocks = 0;

  constructor(
    input: StreamInput,
    private readonly source: string,
    private readonly visitor: StreamVisitor,
    options: ReadOptions,
  ) {
    this.tar = new TarReader(tarInput(input, source), source);
    const lent = options.blocksLent ?? 1;
    if (!Number.isInteger(lent) || lent < 1)
      throw new Error('readStream: blocksLent must be an integer >= 1');
    this.blocksLent = lent;
    this.acceptFormat1 = options.acceptFormat1 ?? false;
  }

  private invalid(message: string): StreamDefect {
    return new StreamDefect(this.source, message, 'invalid');
  }

  private damaged(message: string): StreamDefect {
    return new StreamDefect(this.source, message, 'damaged');
  }

  async run(): Promise<StreamReport> {
    for (;;) {
      const entry = await this.tar.next();
      if (entry === null) break;
      await this.member(entry);
    }
    const manifest = this.manifest;
    const marker = this.marker;
    if (manifest === undefined) throw new StreamDefect(this.source, 'the stream is empty', 'truncated');
    if (marker === undefined) {
      const missing = this.expected[0] ?? member.end;
      throw new StreamDefect(
        this.source,
        `the stream is incomplete: member ${missing} is missing`,
        'truncated',
      );
    }
    await this.visitor.end?.(marker);
    return { manifest, formatVersion: this.version, volumes: this.reports };
  }

  private async member(entry: TarMember): Promise<void> {
    const name = entry.pax.get('GNU.sparse.name') ?? entry.name;
    if (this.marker !== undefined) throw this.invalid(`member ${name} follows ${member.end}`);
    const want = this.expected.shift();
    if (name !== want) {
      throw this.invalid(
        want === undefined ? `unexpected member ${name}` : `expected member ${want}, found ${name}`,
      );
    }
    if (entry.mode !== MEMBER_MODE) {
      throw this.invalid(`member ${name} has mode ${entry.mode.toString(8)}, not ${MEMBER_MODE.toString(8)}`);
    }
    if (name.endsWith('.ebs')) return this.volumeData(entry, name);
    if (entry.pax.size > 0)
      throw this.invalid(`member ${name} carries pax records (${[...entry.pax.keys()].join(', ')})`);
    const body = await this.jsonBody(entry, name);
    if (name === member.manifest) return this.onManifest(body);
    if (name === member.instance) return this.onInstance(body);
    if (name === member.end) return this.onEnd(body);
    if (name.endsWith('.sum.json')) return this.onSum(body, name);
    return this.onVolumeMeta(body, name);
  }

  /** Reads a JSON member whole (it is small), records its digest, and parses it as UTF-8 JSON. */
  private async jsonBody(entry: TarMember, name: string): Promise<unknown> {
    if (entry.size > MAX_JSON_MEMBER)
      throw this.invalid(
        `member ${name} is ${entry.size} bytes; no JSON member is larger than ${MAX_JSON_MEMBER}`,
      );
    const chunks: Buffer[] = [];
    for await (const chunk of this.tar.body()) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    if (name !== member.end) this.digests.push({ name, sha256: sha256Hex(body) });
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)) as unknown;
    } catch (err) {
      throw this.invalid(`member ${name} is not valid JSON (${messageOf(err)})`);
    }
  }

  private parse<T extends z.ZodMiniType>(schema: T, value: unknown, name: string): z.infer<T> {
    const result = schema.safeParse(value);
    if (!result.success) throw this.invalid(`member ${name}: ${describeIssues(result.error)}`);
    return result.data;
  }

  private requireManifest(): Manifest {
    if (this.manifest === undefined) throw this.invalid(`no ${member.manifest} before this member`);
    return this.manifest;
  }

  /** The volume whose `.json` came last; `name` is the member that needs it. */
  private requireVolumeMeta(name: string): VolumeMeta {
    if (this.volume === undefined)
      throw this.invalid(`member ${name} is not preceded by its volume's members`);
    return this.volume;
  }

  /** That volume and the sums of its `.ebs` member, which a `.sum.json` needs. */
  private requireVolume(name: string): { meta: VolumeMeta; digests: VolumeDigests } {
    const meta = this.requireVolumeMeta(name);
    if (this.volumeDigests === undefined)
      throw this.invalid(`member ${name} is not preceded by its volume's members`);
    return { meta, digests: this.volumeDigests };
  }

  private async onManifest(value: unknown): Promise<void> {
    const name = member.manifest;
    const raw =
      typeof value === 'object' && value !== null
        ? (value as { format?: unknown; formatVersion?: unknown })
        : {};
    if (raw.format !== FORMAT_NAME) throw this.invalid(`member ${name}: not an ${FORMAT_NAME} stream`);
    const version = raw.formatVersion;
    if (typeof version !== 'number' || !READABLE_VERSIONS.includes(version)) {
      throw this.invalid(
        `format version ${String(version)} is not supported (this tool reads ${READABLE_VERSIONS.join(' and ')}); use a newer ec2-bpipe`,
      );
    }
    this.version = version;
    let manifest: Manifest;
    if (version === 1) {
      const v1 = this.parse(manifestV1Schema, value, name);
      if (!FORMAT_1_WRITER.test(v1.toolVersion)) {
        throw this.invalid(
          `member ${name} says format version 1, but ec2-bpipe ${v1.toolVersion} wrote it, and that version writes format 2: ` +
            'the stream was altered to drop its proofs; refused',
        );
      }
      if (!this.acceptFormat1) {
        throw this.invalid(
          `format version 1 (ec2-bpipe ${v1.toolVersion}): ${FORMAT_1_LIMITS}. Restore it only if you trust where it was kept, with --accept-format-1; take a new Full for a stream that proves both`,
        );
      }
      manifest = {
        ...v1,
        requestedLevel: v1.requestedLevel ?? v1.level,
        baseCreatedAt: v1.baseCreatedAt ?? null,
        encryptedVolumes: v1.encryptedVolumes ?? [],
      };
    } else {
      manifest = this.parse(manifestSchema, value, name);
    }
    const { volumes, encryptedVolumes } = manifest;
    if (new Set(volumes).size !== volumes.length)
      throw this.invalid(`member ${name}: a volume is listed twice`);
    const unknownEncrypted = encryptedVolumes.find((v) => !volumes.includes(v));
    if (unknownEncrypted !== undefined || new Set(encryptedVolumes).size !== encryptedVolumes.length) {
      throw this.invalid(`member ${name}: encryptedVolumes does not name a subset of volumes`);
    }
    if (!resourceIdMatches(manifest.kind, manifest.resourceId, volumes)) {
      throw this.invalid(
        `member ${name}: resourceId "${manifest.resourceId}" does not name the ${manifest.kind}`,
      );
    }
    if ((manifest.level === 'Full') !== (manifest.baseJob === null)) {
      throw this.invalid(
        `member ${name}: a ${manifest.level} must ${manifest.level === 'Full' ? 'not ' : ''}have a baseJob`,
      );
    }
    this.manifest = manifest;
    if (manifest.kind === 'instance') this.expected.push(member.instance);
    for (const id of volumes)
      this.expected.push(member.volumeMeta(id), member.volumeData(id), member.volumeSum(id));
    this.expected.push(member.end);
    await this.visitor.manifest?.(manifest);
  }

  private async onInstance(value: unknown): Promise<void> {
    const name = member.instance;
    const manifest = this.requireManifest();
    const meta = this.parse(instanceMetaSchema, value, name);
    if (meta.instanceId !== manifest.resourceId)
      throw this.invalid(`member ${name} describes ${meta.instanceId}, the manifest ${manifest.resourceId}`);
    const mapped = new Set(meta.blockDeviceMappings.map((m) => m.volumeId));
    const unmapped = manifest.volumes.find((v) => !mapped.has(v));
    if (unmapped !== undefined)
      throw this.invalid(`member ${name} has no block device mapping for ${unmapped}`);
    await this.visitor.instance?.(meta);
  }

  private async onVolumeMeta(value: unknown, name: string): Promise<void> {
    const manifest = this.requireManifest();
    const meta = this.parse(volumeMetaSchema, value, name);
    if (member.volumeMeta(meta.volumeId) !== name)
      throw this.invalid(`member ${name} describes ${meta.volumeId}`);
    const mismatch =
      meta.level !== manifest.level
        ? `level ${meta.level}, the manifest ${manifest.level}`
        : meta.baseJob !== manifest.baseJob
          ? `baseJob ${String(meta.baseJob)}, the manifest ${String(manifest.baseJob)}`
          : (meta.baseSnapshotId === null) !== (meta.level === 'Full')
            ? `baseSnapshotId ${String(meta.baseSnapshotId)} for a ${meta.level}`
            : meta.sizeBytes !== meta.sizeGiB * 1024 ** 3
              ? `sizeBytes ${meta.sizeBytes} for ${meta.sizeGiB} GiB`
              : meta.blockCount > meta.sizeBytes / BLOCK_SIZE
                ? `${meta.blockCount} blocks in a volume of ${meta.sizeBytes / BLOCK_SIZE}`
                : this.version >= 2 && meta.encrypted !== manifest.encryptedVolumes.includes(meta.volumeId)
                  ? `encrypted ${meta.encrypted}, unlike the manifest's encryptedVolumes`
                  : undefined;
    if (mismatch !== undefined) throw this.invalid(`member ${name}: ${mismatch}`);
    this.volume = meta;
    this.volumeDigests = undefined;
    await this.visitor.volumeStart?.(meta);
  }

  private async volumeData(entry: TarMember, name: string): Promise<void> {
    const meta = this.requireVolumeMeta(name);
    const keys = [...entry.pax.keys()].sort();
    if (entry.name !== sparseHeaderName(name) || keys.join() !== SPARSE_KEYS.join()) {
      throw this.invalid(`member ${name} is not a GNU sparse 1.0 member as ec2-bpipe writes it`);
    }
    if (entry.pax.get('GNU.sparse.major') !== '1' || entry.pax.get('GNU.sparse.minor') !== '0') {
      throw this.invalid(`member ${name} is not a GNU sparse 1.0 member`);
    }
    const realsize = entry.pax.get('GNU.sparse.realsize');
    if (realsize !== String(meta.sizeBytes)) {
      throw this.invalid(
        `member ${name}: real size ${String(realsize)} differs from the volume's ${meta.sizeBytes}`,
      );
    }
    const digests = new VolumeDigests();
    this.volumeDigests = digests;
    const parser = new SparseMapParser(BLOCK_SIZE, meta.sizeBytes);
    // Every slot is being read into, being hashed, or lent: two, and at most blocksLent.
    this.ring ??= new BlockRing(2 + this.blocksLent, BLOCK_SIZE);
    const ring = this.ring;
    /** The slot being filled, how much of it is, and the blocks completed so far. */
    let filling = ring.take();
    let filled = 0;
    let count = 0;
    // The visitor's calls not settled yet; each gives its block's slot back when it settles.
    const lent = new Slots(this.blocksLent);
    const lend = (index: number, slot: RingSlot, digest: Buffer): Promise<void> =>
      // A call refused after an earlier one failed leaves the slot with the caller, which gives
      // it back.
      lent.run(async () => {
        try {
          await this.visitor.block?.(meta, index, slot.data, digest);
        } finally {
          ring.give(slot);
        }
      });
    /** A whole block: hashed, recorded, and lent to the visitor. */
    const complete = async (slot: RingSlot): Promise<void> => {
      // Hashed here: a second thread, tried, cost a restore more than it saved
      // (docs/PERFORMANCE.md).
      const index = parser.blocks.at(count);
      const digest = createHash('sha256').update(slot.data).digest();
      digests.add(index, digest);
      count++;
      await lend(index, slot, digest);
    };
    /** The read of the next block into `filling`, under way while the block before is hashed. */
    let reading: Promise<number> | undefined;
    const beyondMap = (): StreamDefect => this.invalid(`member ${name}: more data than the sparse map lists`);
    /** Adds the bytes of `data` to the blocks, lending each block as it fills. */
    const add = async (data: Buffer): Promise<void> => {
      while (data.length > 0) {
        if (count >= parser.blocks.length) throw beyondMap();
        const take = Math.min(BLOCK_SIZE - filled, data.length);
        data.copy(filling.data, filled, 0, take);
        filled += take;
        data = data.subarray(take);
        if (filled === BLOCK_SIZE) {
          const full = filling;
          filling = ring.take();
          filled = 0;
          await complete(full);
        }
      }
    };
    /** Reads the rest of `slot`'s block from `from` on; how much of it the member held. */
    const fill = async (slot: RingSlot, from: number): Promise<number> => {
      let at = from;
      while (at < BLOCK_SIZE) {
        const read = await this.tar.readInto(slot.data, at, BLOCK_SIZE - at);
        if (read === 0) break;
        at += read;
      }
      return at;
    };
    try {
      // The sparse map comes first, in chunks; the bytes after it are the first blocks' data.
      while (!parser.done) {
        const chunk = await this.tar.chunk();
        if (chunk === null) throw this.invalid(`member ${name}: the sparse map is incomplete`);
        let data: Buffer | undefined;
        try {
          data = parser.push(chunk);
        } catch (err) {
          if (err instanceof SparseMapError) throw this.invalid(`member ${name}: ${err.message}`);
          throw err;
        }
        if (parser.done && parser.blocks.length !== meta.blockCount) {
          throw this.invalid(
            `member ${name}: the sparse map lists ${parser.blocks.length} blocks, ${member.volumeMeta(meta.volumeId)} ${meta.blockCount}`,
          );
        }
        if (parser.done) await this.visitor.volumeMap?.(meta, parser.blocks.digest());
        if (data !== undefined) await add(data);
      }
      // The member's size says how much data follows: refused before a byte of it is read.
      if (this.tar.unread > (parser.blocks.length - count) * BLOCK_SIZE - filled) throw beyondMap();
      // Then the blocks, read into the ring's slots (straight from a stream file): the next
      // block's read runs while this one is hashed and handed on.
      const readAhead = (from: number): Promise<number> => {
        const read = fill(filling, from);
        // Its failure is taken at the await below, or in `finally`: never an unhandled rejection.
        read.catch(() => undefined);
        return read;
      };
      reading = readAhead(filled);
      for (;;) {
        filled = await reading;
        reading = undefined;
        if (filled < BLOCK_SIZE) break;
        const full = filling;
        filling = ring.take();
        reading = readAhead(0);
        await complete(full);
      }
      await lent.drain();
    } finally {
      // On a defect too, the read under way ends and every lent block is given back before the
      // error goes up: the caller then closes what the visitor was writing to, nothing writes to
      // it any more, and no read lands in a slot the next volume uses.
      await reading?.catch(() => undefined);
      await lent.drain().catch(() => undefined);
      ring.give(filling);
    }
    if (filled !== 0 || count !== parser.blocks.length) {
      throw this.invalid(
        `member ${name}: ${count} whole blocks of data for ${parser.blocks.length} map entries`,
      );
    }
  }

  private async onSum(value: unknown, name: string): Promise<void> {
    const { meta, digests } = this.requireVolume(name);
    const sum = this.parse(volumeSumSchema, value, name);
    const data = member.volumeData(meta.volumeId);
    if (sum.volumeId !== meta.volumeId) throw this.invalid(`member ${name} describes ${sum.volumeId}`);
    const computed = digests.finish();
    if (sum.blockCount !== computed.blockCount)
      throw this.invalid(`member ${name}: ${sum.blockCount} blocks announced, ${computed.blockCount} read`);
    if (computed.checksum !== sum.checksum) {
      throw this.damaged(
        `member ${data}: the blocks do not match their aggregate checksum (read ${computed.checksum}, recorded ${sum.checksum}); the data is damaged`,
      );
    }
    if (this.version >= 2 && sum.indexedSha256 === undefined)
      throw this.invalid(`member ${name}: field indexedSha256 is missing`);
    if (sum.indexedSha256 !== undefined && computed.indexedSha256 !== sum.indexedSha256) {
      throw this.damaged(
        `member ${data}: the blocks are not where they were (index-bound digest ${computed.indexedSha256}, recorded ${sum.indexedSha256}); the sparse map or the data is damaged`,
      );
    }
    this.reports.push({
      volumeId: meta.volumeId,
      level: meta.level,
      blocks: computed.blockCount,
      sizeBytes: meta.sizeBytes,
      checksum: sum.checksum,
      indexedSha256: sum.indexedSha256 ?? null,
    });
    this.totalBlocks += computed.blockCount;
    await this.visitor.volumeEnd?.(meta, sum);
    this.volume = undefined;
    this.volumeDigests = undefined;
  }

  private onEnd(value: unknown): void {
    const name = member.end;
    const manifest = this.requireManifest();
    const marker = this.parse(endMarkerSchema, value, name);
    if (marker.volumes !== manifest.volumes.length || marker.blocks !== this.totalBlocks) {
      throw this.invalid(
        `member ${name}: ${marker.volumes} volumes and ${marker.blocks} blocks announced, ${manifest.volumes.length} and ${this.totalBlocks} read`,
      );
    }
    if (this.version >= 2 && marker.members === undefined)
      throw this.invalid(`member ${name}: field members is missing`);
    if (marker.members !== undefined) {
      const recorded = marker.members;
      if (recorded.length !== this.digests.length)
        throw this.invalid(
          `member ${name}: ${recorded.length} member digests for ${this.digests.length} members`,
        );
      this.digests.forEach((read, i) => {
        const entry = recorded[i];
        if (entry?.name !== read.name)
          throw this.invalid(
            `member ${name}: digest ${i} names ${String(entry?.name)}, the stream has ${read.name}`,
          );
        if (entry.sha256 !== read.sha256)
          throw this.damaged(
            `member ${read.name} does not match its digest in ${name}; it was altered or damaged`,
          );
      });
    }
    this.marker = marker;
  }
}

/**
 * Reads one stream and checks everything in it: every tar header, the member order, each JSON
 * member's fields, every block against its volume's checksums (and, in version 2, their indices
 * and every JSON member against end.json), then the end records. Throws StreamDefect at the first
 * problem; the visitor's `end` is called only once all of it held.
 */
export async function readStream(
  input: StreamInput,
  source: string,
  visitor: StreamVisitor = {},
  options: ReadOptions = {},
): Promise<StreamReport> {
  try {
    return await new StreamCheck(input, source, visitor, options).run();
  } finally {
    if (input instanceof Readable) input.destroy();
    else await input.handle.close().catch(() => undefined);
  }
}
