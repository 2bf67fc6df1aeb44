/**
 * Splits a valid ec2-bpipe stream into its members' byte ranges (pax header, header, data and
 * padding), so tests can drop, duplicate or reorder whole members without repacking anything.
 * Only for streams the tool wrote: it trusts what it reads.
 */
export interface MemberRange {
  name: string;
  start: number;
  end: number;
  /** Offset of the ustar header that carries the member's data. */
  header: number;
  /** Offset and size of the member's data. */
  data: number;
  size: number;
}

const octal = (buf: Buffer, at: number, length: number): number =>
  parseInt(buf.toString('latin1', at, at + length).replace(/[\0 ]+$/, '') || '0', 8);

function sizeOf(buf: Buffer, header: number): number {
  if ((buf[header + 124] ?? 0) & 0x80) {
    let value = 0;
    for (let i = 1; i < 12; i++) value = value * 256 + (buf[header + 124 + i] ?? 0);
    return value;
  }
  return octal(buf, header + 124, 12);
}

const padded = (n: number): number => Math.ceil(n / 512) * 512;

export function splitMembers(buf: Buffer): { members: MemberRange[]; endRecords: number } {
  const members: MemberRange[] = [];
  let at = 0;
  for (;;) {
    const start = at;
    if (buf.subarray(at, at + 512).every((b) => b === 0)) return { members, endRecords: at };
    let name = buf.toString('latin1', at, at + 100).replace(/\0.*$/s, '');
    if (buf[at + 156] === 'x'.charCodeAt(0)) {
      const paxSize = sizeOf(buf, at);
      const pax = buf.toString('utf8', at + 512, at + 512 + paxSize);
      const sparse = /GNU\.sparse\.name=([^\n]+)\n/.exec(pax)?.[1];
      const path = /\d+ path=([^\n]+)\n/.exec(pax)?.[1];
      name = sparse ?? path ?? name;
      at += 512 + padded(paxSize);
    }
    const header = at;
    const size = sizeOf(buf, header);
    at += 512 + padded(size);
    members.push({ name, start, end: at, header, data: header + 512, size });
  }
}

/** The stream with the members `keep` chooses, in the order it returns them, then the original end records. */
export function rebuild(buf: Buffer, choose: (members: MemberRange[]) => MemberRange[]): Buffer {
  const { members, endRecords } = splitMembers(buf);
  return Buffer.concat([
    ...choose(members).map((m) => buf.subarray(m.start, m.end)),
    buf.subarray(endRecords),
  ]);
}

/** Rewrites a header's checksum after a test changed one of its fields, as a careful adversary would. */
export function fixChecksum(buf: Buffer, header: number): void {
  buf.fill(0x20, header + 148, header + 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += buf[header + i] ?? 0;
  buf.write(`${sum.toString(8).padStart(6, '0')}\0 `, header + 148, 'latin1');
}
