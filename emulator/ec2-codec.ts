import * as EC2Model from '@aws-sdk/client-ec2';
import { NormalizedSchema } from '@smithy/core/schema';

/**
 * Reads EC2 query requests and writes EC2 XML responses by walking the service model that ships
 * with the SDK, so member names (ec2QueryName on the way in, xmlName on the way out) are exactly
 * those the real client uses.
 */
export interface Operation {
  input: NormalizedSchema;
  output: NormalizedSchema;
}

export class UnknownParameterError extends Error {}

export function operation(action: string): Operation | undefined {
  const op = (EC2Model as unknown as Record<string, unknown>)[`${action}$`];
  if (!Array.isArray(op) || op[0] !== 9) return undefined;
  return { input: NormalizedSchema.of(op[4] as never), output: NormalizedSchema.of(op[5] as never) };
}

const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

function queryName(member: string, schema: NormalizedSchema): string {
  const traits = schema.getMergedTraits();
  return (traits.ec2QueryName as string | undefined) ?? capitalize(traits.xmlName ?? member);
}

/** Decodes the form parameters into an object shaped like the SDK's input type. Unknown keys throw. */
export function decodeQuery(op: Operation, params: URLSearchParams): Record<string, unknown> {
  const used = new Set<string>(['Action', 'Version']);
  const all = new Map<string, string>();
  for (const [k, v] of params) all.set(k, v);
  const read = (schema: NormalizedSchema, key: string): unknown => {
    if (schema.isStructSchema()) return readStruct(schema, `${key}.`);
    if (schema.isListSchema()) {
      const items: unknown[] = [];
      for (let i = 1; ; i++) {
        const item = read(schema.getValueSchema(), `${key}.${i}`);
        if (item === undefined) break;
        items.push(item);
      }
      return items.length ? items : undefined;
    }
    const raw = all.get(key);
    if (raw === undefined) return undefined;
    used.add(key);
    if (schema.isBooleanSchema()) return raw === 'true';
    if (schema.isNumericSchema()) return Number(raw);
    if (schema.isTimestampSchema()) return new Date(raw);
    return raw;
  };
  const readStruct = (schema: NormalizedSchema, prefix: string): Record<string, unknown> | undefined => {
    const out: Record<string, unknown> = {};
    let any = false;
    for (const [member, memberSchema] of schema.structIterator()) {
      const value = read(memberSchema, prefix + queryName(member, memberSchema));
      if (value !== undefined) {
        out[member] = value;
        any = true;
      }
    }
    return any ? out : undefined;
  };
  const input = readStruct(op.input, '') ?? {};
  for (const key of all.keys()) {
    if (!used.has(key)) throw new UnknownParameterError(key);
  }
  return input;
}

function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function encodeValue(schema: NormalizedSchema, value: unknown, name: string): string {
  if (value === undefined || value === null) return '';
  if (schema.isStructSchema()) {
    const object = value as Record<string, unknown>;
    let inner = '';
    for (const [member, memberSchema] of schema.structIterator()) {
      const xmlName = memberSchema.getMergedTraits().xmlName ?? member;
      inner += encodeValue(memberSchema, object[member], xmlName);
    }
    return `<${name}>${inner}</${name}>`;
  }
  if (schema.isListSchema()) {
    const item = schema.getValueSchema();
    const itemName = item.getMergedTraits().xmlName ?? 'member';
    return `<${name}>${(value as unknown[]).map((v) => encodeValue(item, v, itemName)).join('')}</${name}>`;
  }
  if (value instanceof Date) return `<${name}>${value.toISOString()}</${name}>`;
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function encodeResponse(
  action: string,
  op: Operation,
  output: Record<string, unknown>,
  requestId: string,
): string {
  const body = encodeValue(op.output, output, 'x').replace(/^<x>|<\/x>$/g, '');
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">` +
    `<requestId>${requestId}</requestId>${body}</${action}Response>`
  );
}

export function encodeError(code: string, message: string, requestId: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code>` +
    `<Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`
  );
}
