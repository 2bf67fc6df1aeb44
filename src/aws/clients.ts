import { gateCreations } from './creation-gate.js';
import { EBSClient } from '@aws-sdk/client-ebs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { KMSClient } from '@aws-sdk/client-kms';
import { fromIni, fromNodeProviderChain, fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { StandardRetryStrategy } from '@smithy/core/retry';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, RetryStrategyV2 } from '@smithy/types';
import type { AwsSettings } from '../config.js';
import { UsageError } from '../errors.js';
import { backoffScale } from '../retry.js';
import { ebsRetryStrategy, ebsVerdict } from './ebs-retries.js';
import { clientEndpoint, type EndpointService, endpointFor, homeRegion } from './endpoints.js';
import { credentialSource, noteFailedCalls } from './failure.js';
import { refuseUnknownProfile } from './profile.js';
import { type Transport, transport } from './transport.js';

/** Requests the EBS client sent (each attempt counts) and how many AWS throttled. */
export interface RequestCounts {
  requests: number;
  throttled: number;
  /** When (performance.now()) the latest throttled request had been sent; -Infinity before any. */
  lastThrottledSentAt: number;
}

export interface AwsClients {
  region: string;
  ec2: EC2Client;
  ebs: EBSClient;
  /** For checking a restore's KMS key before anything is created. */
  kms: KMSClient;
  /** Every attempt of every EBS request, retries included, so a log can say how much was throttled. */
  ebsCounts: RequestCounts;
  credentials: AwsCredentialIdentityProvider;
  /** The CA bundle and proxy in use, for doctor. */
  network: Omit<Transport, 'agents'>;
  destroy(): void;
}

export interface ClientOptions {
  /** The region, as resolveRegion found it (or a restore's target region). */
  region: string;
  /** What the clients are for, when `region` is not the home Region: "a DR copy", "a restore". */
  purpose?: string;
  /** Concurrent EBS direct requests the caller will make; sizes the socket pool. */
  workers?: number;
}

/**
 * Credentials, in this order: static keys from the config, a named profile, or the SDK's default
 * chain (environment, shared files, SSO, container and instance roles). An assume-role on top of
 * any of them is refreshed by the SDK before it expires.
 */
export function credentialProvider(
  aws: AwsSettings,
  region: string,
  handler: NodeHttpHandler,
): AwsCredentialIdentityProvider {
  let base: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  if (aws.accessKeyId !== undefined && aws.secretAccessKey !== undefined) {
    base = { accessKeyId: aws.accessKeyId, secretAccessKey: aws.secretAccessKey };
  } else if (aws.profile !== undefined) {
    base = fromIni({ profile: aws.profile });
  } else {
    base = fromNodeProviderChain();
  }
  if (aws.roleArn === undefined) return typeof base === 'function' ? base : () => Promise.resolve(base);
  const stsRegion = homeRegion(aws) ?? region;
  return fromTemporaryCredentials({
    masterCredentials: base,
    params: {
      RoleArn: aws.roleArn,
      RoleSessionName: aws.roleSessionName,
      ...(aws.externalId !== undefined && { ExternalId: aws.externalId }),
      ...(aws.sessionDuration !== undefined && { DurationSeconds: aws.sessionDuration }),
    },
    // One STS for every Region's clients: the home Region's, whose endpoint the config names.
    clientConfig: {
      region: stsRegion,
      requestHandler: handler,
      ...lazyEndpoint(aws, 'sts', stsRegion, 'assuming [aws] role-arn'),
    },
  });
}

/**
 * The region a command works in: the override (--region), [aws] region, or what the SDK's own
 * lookup finds (AWS_REGION, AWS_DEFAULT_REGION, then the region of the profile in use, from
 * [aws] profile or AWS_PROFILE, in the shared config files).
 */
export async function resolveRegion(aws: AwsSettings, override?: string): Promise<string> {
  await refuseUnknownProfile(aws);
  const given = override ?? aws.region;
  if (given !== undefined && given !== '') return given;
  const probe = new EC2Client(aws.profile !== undefined ? { profile: aws.profile } : {});
  try {
    const region = await probe.config.region();
    if (region !== '') return region;
  } catch {
    // No region anywhere the SDK looks: said below.
  } finally {
    probe.destroy();
  }
  throw new UsageError(
    'No AWS region: set [aws] region in the config, pass --region, set AWS_REGION, or give the profile in use a region.',
  );
}

/** Attempts per SDK call, first included, for throttling, 5xx and network resets. */
const SDK_ATTEMPTS = 8;

/**
 * The SDK's standard retry strategy. Under a test's EC2_BPIPE_BACKOFF_SCALE its back-off is
 * scaled like ours: the same exponential back-off with full jitter from the bases the SDK sets
 * (`setDelayBase`: one for throttling, one for the rest; at most 20 s; "Retry behavior", AWS SDKs
 * and Tools Reference Guide), times the scale. The SDK still decides what to retry, counts
 * attempts and keeps its retry quota.
 */
function standardStrategy(): StandardRetryStrategy {
  const scale = backoffScale();
  if (scale === 1) return new StandardRetryStrategy(SDK_ATTEMPTS);
  let base = 100;
  return new StandardRetryStrategy({
    maxAttempts: SDK_ATTEMPTS,
    backoff: {
      setDelayBase: (delay: number) => {
        base = delay;
      },
      computeNextBackoffDelay: (retries: number) =>
        Math.floor(Math.random() * Math.min(base * 2 ** retries, 20_000) * scale),
    },
  });
}

/** The retry settings of every client but EBS's (which also takes the EBS table, below). */
export function retrySettings(): { maxAttempts: number; retryStrategy: RetryStrategyV2 } {
  return { maxAttempts: SDK_ATTEMPTS, retryStrategy: standardStrategy() };
}

/**
 * A PutSnapshotBlock body is one block, and its `Checksum` is that block's SHA-256, which SigV4
 * also needs as the payload hash. The signer takes a present `x-amz-content-sha256` header as that
 * hash (SigV4: "HashedPayload" of the canonical request) instead of hashing the 512 KiB again,
 * so each block is hashed once on the way to AWS. The digest was computed from these bytes (the
 * stream reader's check), so the header states the truth; AWS, and the emulator, refuse the
 * signature otherwise.
 */
function usePutChecksumAsPayloadHash(args: { input: object; request?: unknown }): void {
  const { input, request } = args;
  if (!('Checksum' in input) || typeof input.Checksum !== 'string') return;
  if (!('ChecksumAlgorithm' in input) || input.ChecksumAlgorithm !== 'SHA256') return;
  if (typeof request !== 'object' || request === null || !('headers' in request)) return;
  const headers = request.headers as Record<string, string>;
  headers['x-amz-content-sha256'] = Buffer.from(input.Checksum, 'base64').toString('hex');
}

/**
 * A client's endpoint options. A Region the config has no endpoint for (src/aws/endpoints.ts) is
 * refused when the client first calls, not when it is made: a DR copy makes a KMS client it uses
 * only with a copy key. Commands that know what a Region needs check it up front
 * (`requireEndpoints`).
 */
export function lazyEndpoint(
  aws: AwsSettings,
  service: EndpointService,
  region: string,
  purpose: string,
):
  | ReturnType<typeof clientEndpoint>
  | { endpoint: () => Promise<never>; useDualstackEndpoint: false; useFipsEndpoint: false } {
  try {
    return clientEndpoint(aws, service, region, purpose);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return { endpoint: () => Promise.reject(err), useDualstackEndpoint: false, useFipsEndpoint: false };
  }
}

/** Refuses (exit 2) a Region that has no endpoint for one of `services` where the home Region has a custom one. */
export function requireEndpoints(
  aws: AwsSettings,
  services: EndpointService[],
  region: string,
  purpose: string,
): void {
  for (const service of services) endpointFor(aws, service, region, purpose);
}

export function createClients(aws: AwsSettings, options: ClientOptions): AwsClients {
  const { region } = options;
  const workers = options.workers ?? 8;
  // Every worker keeps a connection open; headroom for listing and control-plane calls.
  const network = transport(aws, workers + 8);
  const handler = new NodeHttpHandler({
    httpAgent: network.agents.http,
    httpsAgent: network.agents.https,
    connectionTimeout: 10_000,
    requestTimeout: 120_000,
  });
  const credentials = credentialProvider(aws, region, handler);
  // cacheMiddleware: the SDK resolves each command's middleware stack once instead of on every
  // send, a fraction of a millisecond per request. Middleware is only added right here, before
  // the first request, which is the condition the SDK sets for it.
  const common = {
    region,
    credentials,
    requestHandler: handler,
    cacheMiddleware: true,
  };
  const purpose = options.purpose ?? 'a call';
  const ec2 = new EC2Client({ ...common, ...lazyEndpoint(aws, 'ec2', region, purpose), ...retrySettings() });
  const ebs = new EBSClient({
    ...common,
    ...lazyEndpoint(aws, 'ebs', region, purpose),
    maxAttempts: SDK_ATTEMPTS,
    retryStrategy: ebsRetryStrategy(standardStrategy()),
  });
  const kms = new KMSClient({ ...common, ...lazyEndpoint(aws, 'kms', region, purpose), ...retrySettings() });
  const source = credentialSource(aws);
  noteFailedCalls({ ec2, ebs }, region, source);
  gateCreations({ ec2, ebs });
  const ebsCounts: RequestCounts = { requests: 0, throttled: 0, lastThrottledSentAt: -Infinity };
  // At the deserialize step, inside the SDK's retry loop: it sees every attempt.
  ebs.middlewareStack.add(
    (next) => async (args) => {
      ebsCounts.requests++;
      const sentAt = performance.now();
      try {
        return await next(args);
      } catch (err) {
        // ConcurrentLimitExceededException counts too: like throttling, it says fewer workers
        // would do as much (src/aws/ebs-retries.ts).
        if (ebsVerdict(err) === 'throttled') {
          ebsCounts.throttled++;
          ebsCounts.lastThrottledSentAt = Math.max(ebsCounts.lastThrottledSentAt, sentAt);
        }
        throw err;
      }
    },
    { step: 'deserialize', priority: 'high', name: 'ec2BpipeCountRequests' },
  );
  ebs.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'PutSnapshotBlockCommand') usePutChecksumAsPayloadHash(args);
      return next(args);
    },
    { step: 'build', name: 'ec2BpipePayloadHash' },
  );
  return {
    region,
    ec2,
    ebs,
    kms,
    ebsCounts,
    credentials,
    network: {
      ...(network.caBundle && { caBundle: network.caBundle }),
      ...(network.proxy && { proxy: network.proxy }),
    },
    destroy() {
      ec2.destroy();
      ebs.destroy();
      kms.destroy();
      handler.destroy();
      network.agents.http.destroy();
      network.agents.https.destroy();
    },
  };
}
