/**
 * Which answers of the EBS direct APIs are worth another attempt, in one place: the table of
 * "Error retries for EBS direct APIs" (Amazon EBS User Guide,
 * https://docs.aws.amazon.com/ebs/latest/userguide/error-retries.html), row for row, plus the
 * few answers the table leaves out, each with its reason.
 *
 * Two retry loops ask it. The SDK's own (every EBS call, with the SDK's back-off and retry quota)
 * through `ebsRetryStrategy`, which corrects the SDK's guess from the error's HTTP status where
 * the table says otherwise; and the tool's loops around a block read or write (src/aws/blocks.ts,
 * src/aws/writes.ts), which take over once the SDK's attempts are spent.
 */
import { StandardRetryStrategy } from '@smithy/core/retry';
import type { RetryErrorInfo, RetryErrorType, RetryStrategyV2, StandardRetryToken } from '@smithy/types';
import { errorName } from '../retry.js';

/** What to do with an answer: retry it as throttling (longer back-off), retry it, or fail now. */
export type EbsVerdict = 'throttled' | 'transient' | 'final';

interface Row {
  /** The error's name, as the SDK names it (the exception's shape name in the EBS model). */
  name: string;
  /** Only answers whose message starts with this, when set. */
  message?: string;
  verdict: EbsVerdict;
}

/**
 * The table, in its order. The "Thrown by" and "Response code" columns are kept as comments: an
 * answer is recognised by its name (and message), whichever call it came from.
 */
export const EBS_ERROR_RETRIES: readonly Row[] = [
  // 500, all APIs: a network or AWS server-side issue.
  { name: 'InternalServerException', verdict: 'transient' },
  // 400, all APIs: the account's request rate.
  { name: 'ThrottlingException', verdict: 'throttled' },
  // 400, GetSnapshotBlock and PutSnapshotBlock: the snapshot's request rate. The table spells it
  // RequestThrottleException; the API reference and the SDK name the shape RequestThrottledException.
  { name: 'RequestThrottledException', verdict: 'throttled' },
  { name: 'RequestThrottleException', verdict: 'throttled' },
  // 400, PutSnapshotBlock: the block sent could not be read.
  { name: 'ValidationException', message: 'Failed to read block data', verdict: 'transient' },
  // 400, all APIs: any other ValidationException is a request the service will never accept.
  { name: 'ValidationException', verdict: 'final' },
  // 404, all APIs.
  { name: 'ResourceNotFoundException', verdict: 'final' },
  // 409, StartSnapshot: the client token was used with other parameters.
  { name: 'ConflictException', verdict: 'final' },
  // 403, all APIs.
  { name: 'AccessDeniedException', verdict: 'final' },
  // 402, all APIs.
  { name: 'ServiceQuotaExceededException', verdict: 'final' },
  // 403, all APIs: "you can only retry after refreshing the authorization signature". The SDK
  // signs every attempt anew and retries this answer only once it has corrected its clock skew
  // (its isTransientError); `retryVerdict` keeps that case, since the new signature is the refresh.
  { name: 'InvalidSignatureException', verdict: 'final' },
];

/**
 * Answers the table leaves out:
 * - ConcurrentLimitExceededException (400; GetSnapshotBlock and PutSnapshotBlock reference,
 *   "Errors"): too many requests in flight; it clears as they finish, so it is retried like throttling.
 * - Any other 5xx (a 503 ServiceUnavailable, a 502 from a proxy or VPC endpoint): the same
 *   "network or server-side issue" as InternalServerException, whatever its name.
 */
const BEYOND_THE_TABLE: readonly Row[] = [{ name: 'ConcurrentLimitExceededException', verdict: 'throttled' }];

/** The SDK's `$metadata` of an error: its HTTP status, and whether the SDK corrected its clock. */
function metadataOf(err: unknown): { httpStatusCode?: unknown; clockSkewCorrected?: unknown } {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return {};
  const metadata = err.$metadata;
  return typeof metadata === 'object' && metadata !== null ? metadata : {};
}

/**
 * The verdict on an EBS answer, or undefined when it is not an answer of the service at all (a
 * reset socket, a timeout): those are the caller's to judge.
 */
export function ebsVerdict(err: unknown): EbsVerdict | undefined {
  const name = errorName(err);
  const message = err instanceof Error ? err.message : '';
  const row = [...EBS_ERROR_RETRIES, ...BEYOND_THE_TABLE].find(
    (r) => r.name === name && (r.message === undefined || message.startsWith(r.message)),
  );
  const metadata = metadataOf(err);
  if (row?.name === 'InvalidSignatureException' && metadata.clockSkewCorrected === true) return 'transient';
  if (row !== undefined) return row.verdict;
  const status = metadata.httpStatusCode;
  if (typeof status !== 'number') return undefined;
  if (status >= 500) return 'transient';
  if (status === 429) return 'throttled';
  return 'final';
}

/** Whether an EBS answer is worth another attempt, by the table. */
export function ebsRetryable(err: unknown): boolean {
  const verdict = ebsVerdict(err);
  return verdict === 'throttled' || verdict === 'transient';
}

const ERROR_TYPE: Record<EbsVerdict, RetryErrorType> = {
  throttled: 'THROTTLING',
  transient: 'TRANSIENT',
  final: 'CLIENT_ERROR',
};

/**
 * The SDK's standard strategy (back-off, attempts, retry quota all its own) with the error's
 * type taken from the table: the SDK would not retry "Failed to read block data" (a 400) nor a
 * 5xx outside 500/502/503/504, and would retry a final answer that happens to carry a 5xx.
 */
export function ebsRetryStrategy(inner: StandardRetryStrategy): RetryStrategyV2 {
  return {
    acquireInitialRetryToken: (scope: string) => inner.acquireInitialRetryToken(scope),
    refreshRetryTokenForRetry: (token: StandardRetryToken, info: RetryErrorInfo) => {
      const verdict = ebsVerdict(info.error);
      return inner.refreshRetryTokenForRetry(
        token,
        verdict === undefined ? info : { ...info, errorType: ERROR_TYPE[verdict] },
      );
    },
    recordSuccess: (token: StandardRetryToken) => {
      inner.recordSuccess(token);
    },
  };
}
