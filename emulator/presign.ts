/**
 * The PresignedUrl of CopySnapshot, checked as the CopySnapshot reference describes it: "The
 * PresignedUrl should use the snapshot source endpoint, the CopySnapshot action, and include the
 * SourceRegion, SourceSnapshotId, and DestinationRegion parameters. The PresignedUrl must be signed
 * using Amazon Web Services Signature Version 4 [...] using Query Parameters. An invalid or
 * improperly signed PresignedUrl will cause the copy operation to fail asynchronously, and the
 * snapshot will move to an error state."
 */
import { Hash } from '@smithy/hash-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import { type KeyRecord, parseAmzDate } from './sigv4.js';

/**
 * The query parameters CopySnapshot takes (EC2 API reference, CopySnapshot "Request Parameters",
 * in their Query form), besides the SigV4 ones: anything else in the URL is no CopySnapshot
 * request AWS could authenticate, such as an SDK's `TagSpecifications=[object Object]`.
 */
const COPY_PARAMETER =
  /^(Action|Version|SourceRegion|SourceSnapshotId|DestinationRegion|Description|Encrypted|KmsKeyId|DryRun|CompletionDurationMinutes|OutpostArn|TagSpecification\.\d+\.(ResourceType|Tag\.\d+\.(Key|Value)))$/;

const CREDENTIAL = /^([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request$/;

export interface CopyRequest {
  sourceRegion: string;
  sourceSnapshotId: string;
  /** The Region the CopySnapshot request was sent to. */
  destinationRegion: string;
  presignedUrl: string;
}

/** Why the PresignedUrl does not authorise this copy, or undefined when it does. */
export async function presignedUrlProblem(
  request: CopyRequest,
  keys: Map<string, KeyRecord>,
  now = Date.now(),
): Promise<string | undefined> {
  let url: URL;
  try {
    url = new URL(request.presignedUrl);
  } catch {
    return 'The PresignedUrl is not a URL';
  }
  const params = url.searchParams;
  for (const name of params.keys()) {
    if (!name.startsWith('X-Amz-') && !COPY_PARAMETER.test(name)) {
      return `The PresignedUrl carries ${name}, which is no parameter of CopySnapshot`;
    }
  }
  const expected: Record<string, string> = {
    Action: 'CopySnapshot',
    SourceRegion: request.sourceRegion,
    SourceSnapshotId: request.sourceSnapshotId,
    DestinationRegion: request.destinationRegion,
  };
  for (const [name, value] of Object.entries(expected)) {
    if (params.get(name) !== value) {
      return `The PresignedUrl's ${name} (${params.get(name) ?? 'missing'}) does not match the request (${value})`;
    }
  }
  if (params.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256')
    return 'The PresignedUrl is not signed with SigV4';
  const credential = CREDENTIAL.exec(params.get('X-Amz-Credential') ?? '');
  const date = parseAmzDate(params.get('X-Amz-Date') ?? '');
  const expires = Number(params.get('X-Amz-Expires'));
  const signature = params.get('X-Amz-Signature');
  if (!credential || !date || !Number.isInteger(expires) || signature === null) {
    return 'The PresignedUrl lacks its SigV4 parameters';
  }
  const [, accessKeyId, , region, service] = credential as unknown as string[];
  if (region !== request.sourceRegion || service !== 'ec2') {
    return `The PresignedUrl is signed for ${service} in ${region}, not for ec2 in the source Region ${request.sourceRegion}`;
  }
  if (now > date.getTime() + expires * 1000) return 'The PresignedUrl has expired';
  const key = keys.get(accessKeyId!);
  if (key === undefined) return 'The PresignedUrl is signed with an unknown access key';
  const query: Record<string, string> = {};
  for (const [name, value] of params) if (name !== 'X-Amz-Signature') query[name] = value;
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: accessKeyId!,
      secretAccessKey: key.secretAccessKey,
      sessionToken: key.sessionToken,
    },
    region: region,
    service: 'ec2',
    sha256: Hash.bind(null, 'sha256'),
  });
  // The Host a GET of the URL would send (with its port), or the bare host name, which the SDK's
  // own middleware signs: the same for AWS's endpoints, which have no port.
  for (const host of new Set([url.host, url.hostname])) {
    const presigned = await signer.presign(
      new HttpRequest({
        method: 'GET',
        protocol: url.protocol,
        hostname: url.hostname,
        path: url.pathname,
        query,
        headers: { host },
      }),
      { signingDate: date, expiresIn: expires },
    );
    if (presigned.query?.['X-Amz-Signature'] === signature) return undefined;
  }
  return 'The PresignedUrl signature does not match';
}
