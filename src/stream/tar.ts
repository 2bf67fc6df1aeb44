/**
 * A strict reader for the one tar dialect ec2-bpipe writes (tar-stream's pax output): ustar
 * headers, regular files, an optional pax header before a member, two zero records at the end.
 *
 * Why not tar-stream's extractor: it reads every dialect leniently, and a hostile header it
 * cannot decode (a negative base-256 size) leaves it waiting forever instead of failing. A stream
 * sits for years in a Bacula volume and is then restored with root's rights, so this reader
 * refuses every header field it would not have written, reads on demand (no event juggling that
 * can stall), and checks the end records and what follows them. tar-stream still writes.
 */
import { DefectKind, StreamDefect } from './defect.js';

export const RECORD = 512;

/** The largest member the reader accepts: a 64 TiB volume plus its sparse map. */
const MAX_MEMBER_SIZE = 2 ** 46 + 2 ** 32;
/** A pax header holds a handful of short records. */
const MAX_PAX_SIZE = 8 * 1024;

const USTAR_MAGIC = Buffer.from('ustar\u000000', 'latin1');

/** Field offsets and lengths of a ustar header (POSIX.1-2001). */
const FIELD = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 8],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
  pad: [500, 12],
} as const satisfies Record<string, readonly [number, number]>;

type Field = keyof typeof FIELD;

export interface TarMember {
  /** The ustar name (pax `path`, when present, must equal it). */
  name: string;
  size: number;
  mode: number;
  /** The pax records that came before the member, without `path`. */
  pax: ReadonlyMap<string, string>;
  /** Byte offset of the member's header in the stream, for messages. */
  offset: number;
}

/**
 * Where a TarReader's bytes come from. `chunk` gives the next bytes, which the reader may keep;
 * `into`, when the input has it, reads straight into the caller's memory: a stream file read that
 * way puts each block into the restore's ring with no buffer in between (docs/PERFORMANCE.md).
 */
export interface TarInput {
  /** The next bytes of the stream, or null at its end. */
  chunk(): Promise<Buffer | null>;
  /** Up to `length` bytes read into `target` at `offset`; 0 at the end of the input. */
  into?(target: Buffer, offset: number, length: number): Promise<number>;
}

/** Pulls exact byte counts out of the input, without copying where it can avoid it. */
class ByteSource {
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  /** Bytes handed out so far: the offset of the next byte. */
  position = 0;

  constructor(private readonly input: TarInput) {}

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const chunk = await this.input.chunk();
    if (chunk === null) {
      this.ended = true;
      return false;
    }
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    return true;
  }

  /** Up to `max` bytes (at least one), or null at the end of the input. */
  async some(max: number): Promise<Buffer | null> {
    while (this.buffered === 0) if (!(await this.fill())) return null;
    const head = this.chunks[0];
    if (head === undefined) return null;
    const take = Math.min(max, head.length);
    const out = head.subarray(0, take);
    if (take === head.length) this.chunks.shift();
    else this.chunks[0] = head.subarray(take);
    this.buffered -= take;
    this.position += take;
    return out;
  }

  /** Exactly `n` bytes, or fewer when the input ends first. */
  async exact(n: number): Promise<Buffer> {
    while (this.buffered < n) if (!(await this.fill())) break;
    const parts: Buffer[] = [];
    let missing = Math.min(n, this.buffered);
    while (missing > 0) {
      const part = await this.some(missing);
      if (part === null) break;
      parts.push(part);
      missing -= part.length;
    }
    return parts.length === 1 && parts[0] !== undefined ? parts[0] : Buffer.concat(parts);
  }

  /** Up to `length` bytes into `target` (at least one), or 0 at the end of the input. */
  async into(target: Buffer, offset: number, length: number): Promise<number> {
    if (this.buffered === 0 && !this.ended && this.input.into !== undefined) {
      const read = await this.input.into(target, offset, length);
      if (read === 0) this.ended = true;
      this.position += read;
      return read;
    }
    const part = await this.some(length);
    if (part === null) return 0;
    part.copy(target, offset);
    return part.length;
  }
}

const isZero = (buffer: Buffer): boolean => {
  for (const byte of buffer) if (byte !== 0) return false;
  return true;
};

export class TarReader {
  private readonly source: ByteSource;
  /** Member data still to be read (and padding after it) before the next header. */
  private remaining = 0;
  private padding = 0;
  private current: TarMember | undefined;

  constructor(
    input: TarInput,
    private readonly streamName: string,
  ) {
    this.source = new ByteSource(input);
  }

  private defect(kind: DefectKind, message: string, offset = this.source.position): StreamDefect {
    return new StreamDefect(this.streamName, `${message} (at byte ${offset})`, kind);
  }

  private async record(what: string): Promise<Buffer> {
    const offset = this.source.position;
    const record = await this.source.exact(RECORD);
    if (offset === 0 && record.length === 0)
      throw new StreamDefect(this.streamName, 'the stream is incomplete: it is empty', 'truncated');
    if (record.length !== RECORD)
      throw this.defect('truncated', `the stream is truncated inside ${what}`, offset);
    return record;
  }

  /**
   * The next member's header, or null once the end records were read and nothing but zero
   * padding follows them. Throws StreamDefect on anything else.
   */
  async next(): Promise<TarMember | null> {
    if (this.remaining > 0 || this.padding > 0) {
      throw new Error(`member ${this.current?.name ?? '?'} was not read to its end`);
    }
    const offset = this.source.position;
    let header = await this.record('a header');
    if (isZero(header)) {
      await this.expectEnd(offset);
      return null;
    }
    let pax = new Map<string, string>();
    let fields = this.decode(header, offset);
    if (fields.typeflag === 'x') {
      if (fields.name !== 'PaxHeader')
        throw this.defect('invalid', `a pax header is named "${fields.name}", not PaxHeader`, offset);
      if (fields.size > MAX_PAX_SIZE)
        throw this.defect(
          'invalid',
          `a pax header of ${fields.size} bytes is larger than ${MAX_PAX_SIZE}`,
          offset,
        );
      const body = await this.source.exact(fields.size);
      if (body.length !== fields.size)
        throw this.defect('truncated', 'the stream is truncated inside a pax header', offset);
      await this.skipPadding(fields.size, 'a pax header');
      pax = this.decodePax(body, offset);
      const memberOffset = this.source.position;
      header = await this.record('a header');
      if (isZero(header))
        throw this.defect('invalid', 'a pax header is followed by the end of the archive', offset);
      fields = this.decode(header, memberOffset);
      if (fields.typeflag !== '0')
        throw this.defect(
          'invalid',
          `a pax header is followed by a member of type "${fields.typeflag}"`,
          memberOffset,
        );
      // tar-stream names both headers PaxHeader and gives the real name as the pax path.
      const path = pax.get('path');
      if (path !== undefined) {
        if (fields.name !== 'PaxHeader' && path !== fields.name) {
          throw this.defect(
            'invalid',
            `the pax path "${path}" differs from the header name "${fields.name}"`,
            offset,
          );
        }
        if (!/^[\x21-\x7e]{1,255}$/.test(path))
          throw this.defect('invalid', 'the pax path is not a printable name', offset);
        fields.name = path;
        pax.delete('path');
      }
    } else if (fields.typeflag !== '0') {
      throw this.defect(
        'invalid',
        `member "${fields.name}" has type "${fields.typeflag}"; only regular files belong in a stream`,
        offset,
      );
    }
    this.current = { name: fields.name, size: fields.size, mode: fields.mode, pax, offset };
    this.remaining = fields.size;
    this.padding = (RECORD - (fields.size % RECORD)) % RECORD;
    return this.current;
  }

  /** The current member's data: exactly its size in bytes, then its zero padding is checked. */
  async *body(): AsyncGenerator<Buffer> {
    for (;;) {
      const chunk = await this.chunk();
      if (chunk === null) return;
      yield chunk;
    }
  }

  /** The current member's next bytes, or null once all were read and its padding checked. */
  async chunk(max = 1024 * 1024): Promise<Buffer | null> {
    const member = this.member();
    if (this.remaining === 0) {
      await this.endOfBody(member);
      return null;
    }
    const chunk = await this.source.some(Math.min(this.remaining, max));
    if (chunk === null)
      throw this.defect('truncated', `the stream is truncated inside member ${member.name}`);
    this.remaining -= chunk.length;
    return chunk;
  }

  /**
   * Up to `length` of the current member's bytes read into `target` at `offset` (at least one),
   * or 0 once all were read and its padding checked.
   */
  async readInto(target: Buffer, offset: number, length: number): Promise<number> {
    const member = this.member();
    if (this.remaining === 0) {
      await this.endOfBody(member);
      return 0;
    }
    const read = await this.source.into(target, offset, Math.min(this.remaining, length));
    if (read === 0) throw this.defect('truncated', `the stream is truncated inside member ${member.name}`);
    this.remaining -= read;
    return read;
  }

  /** Bytes of the current member not read yet. */
  get unread(): number {
    return this.remaining;
  }

  private member(): TarMember {
    if (this.current === undefined) throw new Error('no member to read');
    return this.current;
  }

  private async endOfBody(member: TarMember): Promise<void> {
    const size = this.padding;
    this.padding = 0;
    if (size > 0) {
      const pad = await this.source.exact(size);
      if (pad.length !== size)
        throw this.defect('truncated', `the stream is truncated after member ${member.name}`);
      if (!isZero(pad)) throw this.defect('invalid', `the padding after member ${member.name} is not zero`);
    }
  }

  private async skipPadding(size: number, what: string): Promise<void> {
    const padding = (RECORD - (size % RECORD)) % RECORD;
    if (padding === 0) return;
    const pad = await this.source.exact(padding);
    if (pad.length !== padding) throw this.defect('truncated', `the stream is truncated after ${what}`);
    if (!isZero(pad)) throw this.defect('invalid', `the padding after ${what} is not zero`);
  }

  /** After the first zero record: a second one, then only zeros (record padding) to the end. */
  private async expectEnd(offset: number): Promise<void> {
    const second = await this.source.exact(RECORD);
    if (second.length !== RECORD)
      throw this.defect('truncated', 'the stream is truncated inside its end records', offset);
    if (!isZero(second)) throw this.defect('invalid', 'a member header follows a zero record', offset);
    for (;;) {
      const rest = await this.source.some(1024 * 1024);
      if (rest === null) return;
      if (!isZero(rest)) throw this.defect('invalid', 'data follows the end of the archive');
    }
  }

  private decode(
    header: Buffer,
    offset: number,
  ): { name: string; typeflag: string; size: number; mode: number } {
    const fail = (field: Field, why: string): StreamDefect =>
      this.defect('invalid', `header field ${field} ${why}`, offset);
    const slice = (field: Field): Buffer => {
      const [start, length] = FIELD[field];
      return header.subarray(start, start + length);
    };
    let sum = 0;
    for (let i = 0; i < RECORD; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
    const recorded = this.octal(slice('checksum'), () => fail('checksum', 'is not an octal number'));
    if (recorded !== sum)
      throw fail('checksum', `is ${recorded}, but the header sums to ${sum}; the header is damaged`);
    if (!slice('magic').equals(USTAR_MAGIC)) throw fail('magic', 'is not "ustar\\0" "00"');
    const name = this.text(slice('name'), () => fail('name', 'is not printable ASCII ending in NUL bytes'));
    if (name === '') throw fail('name', 'is empty');
    for (const field of ['linkname', 'prefix', 'pad'] as const) {
      if (!isZero(slice(field))) throw fail(field, 'is not empty');
    }
    for (const field of ['uname', 'gname'] as const)
      this.text(slice(field), () => fail(field, 'is not printable ASCII'));
    const mode = this.octal(slice('mode'), () => fail('mode', 'is not an octal number'));
    for (const field of ['uid', 'gid', 'mtime', 'devmajor', 'devminor'] as const) {
      this.octal(slice(field), () => fail(field, 'is not an octal number'));
    }
    const size = this.size(slice('size'), (why) => fail('size', why));
    const typeflag = String.fromCharCode(header[156] ?? 0);
    return { name, typeflag, size, mode };
  }

  /** Octal digits, optionally led by blanks or zeros and ended by a blank or NUL, then only NULs or blanks. */
  private octal(field: Buffer, fail: () => StreamDefect): number {
    const text = field.toString('latin1');
    const match = /^ *([0-7]+)[ \0][ \0]*$/.exec(text) ?? /^([0-7]+)$/.exec(text);
    if (match?.[1] === undefined) {
      if (/^\0+$/.test(text)) return 0;
      throw fail();
    }
    const value = parseInt(match[1], 8);
    if (!Number.isSafeInteger(value)) throw fail();
    return value;
  }

  /** Octal, or GNU base-256 for sizes of 8 GiB and more: first byte 0x80, then big-endian. Never negative. */
  private size(field: Buffer, fail: (why: string) => StreamDefect): number {
    let value: number;
    const lead = field[0] ?? 0;
    if (lead & 0x80) {
      if (lead !== 0x80)
        throw fail(`is a negative or malformed base-256 number (first byte 0x${lead.toString(16)})`);
      value = 0;
      for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
      if (!Number.isSafeInteger(value)) throw fail('is too large');
    } else {
      value = this.octal(field, () => fail('is not an octal number'));
    }
    if (value > MAX_MEMBER_SIZE) throw fail(`is ${value} bytes, more than any stream member can hold`);
    return value;
  }

  private text(field: Buffer, fail: () => StreamDefect): string {
    const end = field.indexOf(0);
    const used = end < 0 ? field : field.subarray(0, end);
    if (end >= 0 && !isZero(field.subarray(end))) throw fail();
    const text = used.toString('latin1');
    if (!/^[\x21-\x7e]*$/.test(text)) throw fail();
    return text;
  }

  /** Pax records: `<length> <key>=<value>\n`, the length counting the whole record in bytes. */
  private decodePax(body: Buffer, offset: number): Map<string, string> {
    const records = new Map<string, string>();
    let at = 0;
    while (at < body.length) {
      const space = body.indexOf(0x20, at);
      const lengthText = space < 0 ? '' : body.toString('latin1', at, space);
      const length = /^[1-9]\d{0,4}$/.test(lengthText) ? Number(lengthText) : NaN;
      if (!(length > 0) || at + length > body.length || body[at + length - 1] !== 0x0a) {
        throw this.defect('invalid', 'a pax record is malformed', offset);
      }
      const record = body.toString('utf8', space + 1, at + length - 1);
      const eq = record.indexOf('=');
      if (eq <= 0) throw this.defect('invalid', 'a pax record has no key', offset);
      const key = record.slice(0, eq);
      if (records.has(key)) throw this.defect('invalid', `pax key ${key} appears twice`, offset);
      records.set(key, record.slice(eq + 1));
      at += length;
    }
    return records;
  }
}
