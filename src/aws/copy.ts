/**
 * CopySnapshot across Regions, and what a DR copy needs to know of the copies already made.
 *
 * The PresignedUrl is built here instead of by the SDK. The SDK's EC2 middleware turns every
 * input member into a query parameter with String(), so a request with TagSpecifications signs
 * `TagSpecifications=[object Object]` into the URL; AWS cannot authenticate that URL, and "an
 * invalid or improperly signed PresignedUrl will cause the copy operation to fail asynchronously,
 * and the snapshot will move to an error state" (CopySnapshot, EC2 API reference). Tagging at
 * creation is kept (a copy is never untagged, even after a kill between two calls); the URL
 * carries what the reference asks of it: the CopySnapshot action with SourceRegion,
 * SourceSnapshotId and DestinationRegion, signed with SigV4 query parameters for EC2 in the source
 * Region (the SDK's own signer), against the source Region's public EC2 endpoint.
 */
import {
  CopySnapshotCommand,
  CreateTagsCommand,
  type EC2Client,
  paginateDescribeSnapshots,
  type Tag,
} from '@aws-sdk/client-ec2';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import { errorName } from '../retry.js';
import { answered } from './answer.js';
import { TAG, tagValue } from '../format/tags.js';

/** The EC2 Query API version the presigned request names, as the SDK's own requests do. */
const EC2_API_VERSION = '2016-11-15';

/** How long the presigned URL stays valid: AWS reads it when the copy starts, within the hour. */
const PRESIGNED_URL_SECONDS = 3600;

/**
 * Concurrent snapshot copies per destination Region: 20, not adjustable ("Quotas for Amazon
 * EBS", Amazon EBS User Guide). Above it CopySnapshot answers ResourceLimitExceeded.
 */
export const CONCURRENT_COPIES = 20;

/**
 * AWS's own EC2 endpoint of a client's Region, as the SDK resolves it without a custom URL. The
 * presigned URL is read by AWS, not by this host: it names the source Region's public endpoint
 * even when this host reaches EC2 through a VPC endpoint or an emulator.
 */
async function publicEndpointOf(client: EC2Client): Promise<URL> {
  const config = client.config;
  const resolved = config.endpointProvider({
    Region: await config.region(),
    UseFIPS: await config.useFipsEndpoint(),
    UseDualStack: await config.useDualstackEndpoint(),
  });
  return new URL(resolved.url.href);
}

export interface PresignRequest {
  /** An EC2 client of the source Region: its endpoint is the URL's. */
  source: EC2Client;
  sourceRegion: string;
  snapshotId: string;
  destinationRegion: string;
  credentials: AwsCredentialIdentityProvider;
}

/** A CopySnapshot PresignedUrl as the CopySnapshot reference describes it. */
export async function presignedCopyUrl(request: PresignRequest): Promise<string> {
  const endpoint = await publicEndpointOf(request.source);
  const signer = new SignatureV4({
    credentials: request.credentials,
    region: request.sourceRegion,
    service: 'ec2',
    sha256: request.source.config.sha256,
  });
  const presigned = await signer.presign(
    new HttpRequest({
      method: 'GET',
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      ...(endpoint.port !== '' && { port: Number(endpoint.port) }),
      path: endpoint.pathname,
      query: {
        Action: 'CopySnapshot',
        Version: EC2_API_VERSION,
        SourceRegion: request.sourceRegion,
        SourceSnapshotId: request.snapshotId,
        DestinationRegion: request.destinationRegion,
      },
      headers: { host: endpoint.host },
    }),
    { expiresIn: PRESIGNED_URL_SECONDS },
  );
  const url = new URL(endpoint.href);
  for (const [name, value] of Object.entries(presigned.query ?? {})) {
    for (const one of Array.isArray(value) ? value : [value ?? '']) url.searchParams.append(name, one);
  }
  return url.href;
}

export interface CopyInput extends PresignRequest {
  /** The destination Region's EC2 client: CopySnapshot makes the copy where it is sent. */
  destination: EC2Client;
  description: string;
  /** Encrypts the copy with this key of the destination Region. */
  kmsKeyId?: string;
  tags: Tag[];
}

/** Starts one copy, tagged at creation, then tags it with its own id; returns that id. */
export async function startCopy(input: CopyInput): Promise<string> {
  const copy = await input.destination.send(
    new CopySnapshotCommand({
      SourceRegion: input.sourceRegion,
      SourceSnapshotId: input.snapshotId,
      Description: input.description,
      // "If KmsKeyId is specified, the encrypted state must be true" (CopySnapshot reference).
      ...(input.kmsKeyId !== undefined && { Encrypted: true, KmsKeyId: input.kmsKeyId }),
      TagSpecifications: [{ ResourceType: 'snapshot', Tags: input.tags }],
      DestinationRegion: input.destinationRegion,
      PresignedUrl: await presignedCopyUrl(input),
    }),
  );
  const copyId = answered(
    copy.SnapshotId,
    `the snapshot id of the copy of ${input.snapshotId} in CopySnapshot`,
  );
  await input.destination.send(
    new CreateTagsCommand({ Resources: [copyId], Tags: [{ Key: TAG.taken, Value: copyId }] }),
  );
  return copyId;
}

/** The answer of CopySnapshot when the destination already has its 20 copies under way. */
export function copyQuotaReached(err: unknown): boolean {
  return errorName(err) === 'ResourceLimitExceeded';
}

/** A DR copy this config made, as DescribeSnapshots shows it in the copy Region. */
export interface KnownCopy {
  snapshotId: string;
  /** `<region>/<snapshot id>` of its source, as tagged. */
  copyOf: string;
  state: 'pending' | 'completed' | 'error';
  /** AWS's StateMessage of a copy in `error`. */
  stateMessage?: string;
  tags: Tag[];
}

/** Every snapshot in `ec2`'s Region that carries this config's name and a copy-of tag. */
export async function copiesOfConfig(ec2: EC2Client, config: string): Promise<KnownCopy[]> {
  const copies: KnownCopy[] = [];
  const pages = paginateDescribeSnapshots(
    { client: ec2 },
    {
      OwnerIds: ['self'],
      Filters: [
        { Name: `tag:${TAG.config}`, Values: [config] },
        { Name: 'tag-key', Values: [TAG.copyOf] },
      ],
      MaxResults: 1000,
    },
  );
  for await (const page of pages) {
    for (const snapshot of page.Snapshots ?? []) {
      const copyOf = tagValue(snapshot.Tags, TAG.copyOf);
      const state = snapshot.State;
      if (snapshot.SnapshotId === undefined || copyOf === undefined) continue;
      if (tagValue(snapshot.Tags, TAG.config) !== config) continue;
      if (state !== 'pending' && state !== 'completed' && state !== 'error') continue;
      copies.push({
        snapshotId: snapshot.SnapshotId,
        copyOf,
        state,
        ...(snapshot.StateMessage !== undefined && { stateMessage: snapshot.StateMessage }),
        tags: snapshot.Tags ?? [],
      });
    }
  }
  return copies;
}
