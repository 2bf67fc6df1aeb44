import { createHash } from 'node:crypto';
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { IncomingMessage } from 'node:http';

/** Keys the emulator accepts: long-term ones and the temporary ones STS handed out. */
export interface KeyRecord {
  secretAccessKey: string;
  sessionToken?: string;
  expiresAt?: number;
  /** The principal a temporary key stands for (the assumed-role session), for GetCallerIdentity. */
  arn?: string;
}

export type AuthFailure =
  | { kind: 'missing'; message: string }
  | { kind: 'unknown-key'; message: string }
  | { kind: 'bad-signature'; message: string }
  | { kind: 'expired-token'; message: string }
  | { kind: 'skewed'; message: string };

export interface AuthOk {
  accessKeyId: string;
  region: string;
  service: string;
}

const AUTH_PATTERN =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;

/** The credential scope, read before verification so the server knows which service is addressed. */
export function scopeOf(req: IncomingMessage): { region: string; service: string } | undefined {
  const match = AUTH_PATTERN.exec(String(req.headers.authorization ?? ''));
  return match ? { region: match[3]!, service: match[4]! } : undefined;
}

/**
 * The SHA-256 of a request body, computed once per request: the signature check (SigV4's
 * HashedPayload) and PutSnapshotBlock's checksum check both need it. A 512 KiB body hashed three
 * times (those two and CompleteSnapshot's aggregate) made the emulator, which shares the
 * machine with the client it serves, spend more CPU on a restore than the client did.
 */
const bodyDigests = new WeakMap<Buffer, Buffer>();
export function bodySha256(body: Buffer): Buffer {
  let digest = bodyDigests.get(body);
  if (digest === undefined) {
    digest = createHash('sha256').update(body).digest();
    bodyDigests.set(body, digest);
  }
  return digest;
}

const PAYLOAD_HASH_HEADER = 'x-amz-content-sha256';

/** An X-Amz-Date value (`20261205T235959Z`), of a header or of a presigned URL's query. */
export function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

/**
 * Recomputes the request's SigV4 signature with the SDK's own signer and the secret we hold for
 * the access key, exactly as AWS does, and compares.
 */
export async function verifySignature(
  req: IncomingMessage,
  body: Buffer,
  keys: Map<string, KeyRecord>,
  now = Date.now(),
  /**
   * The emulator's clock, for a temporary key's expiry; `now` stays the wall clock, because the
   * 15-minute rule compares the client's clock with AWS's real one.
   */
  credentialsNow = now,
): Promise<AuthOk | AuthFailure> {
  const match = AUTH_PATTERN.exec(String(req.headers.authorization ?? ''));
  if (!match) return { kind: 'missing', message: 'Request is missing Authentication Token' };
  const [, accessKeyId, , region, service, signedHeaders, signature] = match as unknown as string[];
  const key = keys.get(accessKeyId!);
  if (!key) return { kind: 'unknown-key', message: 'The security token included in the request is invalid.' };
  const token = req.headers['x-amz-security-token'];
  if (key.sessionToken !== undefined && token !== key.sessionToken) {
    return { kind: 'unknown-key', message: 'The security token included in the request is invalid.' };
  }
  if (key.expiresAt !== undefined && credentialsNow >= key.expiresAt) {
    return { kind: 'expired-token', message: 'The security token included in the request is expired' };
  }
  const date = parseAmzDate(String(req.headers['x-amz-date'] ?? ''));
  if (!date) return { kind: 'missing', message: 'Missing or malformed X-Amz-Date header' };
  if (Math.abs(now - date.getTime()) > 15 * 60 * 1000) {
    return {
      kind: 'skewed',
      message: 'Signature expired: the request time is more than 15 minutes from the server time.',
    };
  }
  const url = new URL(req.url ?? '/', 'http://emulator');
  const headers: Record<string, string> = {};
  for (const name of signedHeaders!.split(';')) {
    const value = req.headers[name];
    if (value === undefined) return { kind: 'bad-signature', message: `Signed header ${name} is missing` };
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  // The signer takes a present x-amz-content-sha256 header as the payload's hash. When the client
  // did not sign one, the body's digest goes in all the same, as a header the signer leaves out of
  // the canonical request, so that the body is hashed once (bodySha256) and not by the signer too.
  const payloadHashSigned = PAYLOAD_HASH_HEADER in headers;
  if (!payloadHashSigned) headers[PAYLOAD_HASH_HEADER] = bodySha256(body).toString('hex');
  const request = new HttpRequest({
    method: req.method ?? 'GET',
    protocol: 'http:',
    hostname: url.hostname,
    path: decodeURIComponent(url.pathname),
    query,
    headers,
    body,
  });
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: accessKeyId!,
      secretAccessKey: key.secretAccessKey,
      sessionToken: key.sessionToken,
    },
    region: region!,
    service: service!,
    sha256: Hash.bind(null, 'sha256'),
  });
  const signed = await signer.sign(request, {
    signingDate: date,
    signingRegion: region,
    signingService: service,
    ...(!payloadHashSigned && { unsignableHeaders: new Set([PAYLOAD_HASH_HEADER]) }),
  });
  // A signed x-amz-content-sha256 header stands for the payload's hash in the canonical request;
  // AWS hashes the payload it received, so a header that does not match it fails the signature
  // (SigV4, "Create a canonical request": HashedPayload is the hash of the request body).
  const claimed = headers[PAYLOAD_HASH_HEADER];
  if (payloadHashSigned && claimed !== 'UNSIGNED-PAYLOAD') {
    if (claimed !== bodySha256(body).toString('hex')) {
      return {
        kind: 'bad-signature',
        message:
          'The request signature we calculated does not match the signature you provided: the x-amz-content-sha256 header does not match the payload.',
      };
    }
  }
  const expected = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization ?? ''))?.[1];
  if (expected !== signature) {
    return {
      kind: 'bad-signature',
      message:
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    };
  }
  return { accessKeyId: accessKeyId!, region: region!, service: service! };
}
