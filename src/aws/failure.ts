/**
 * What an AWS error needs to say to be acted on: which service and action failed, in which
 * region, with which credentials, and for a denial, which IAM action was missing. A middleware on
 * every client notes the call beside the error (the error itself is left as the SDK made it, so
 * retries keep recognising it); the CLI's failure line reads the note.
 */
import type { EBSClient } from '@aws-sdk/client-ebs';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { InitializeMiddleware, MetadataBearer } from '@smithy/types';
import type { AwsSettings } from '../config.js';
import { describeError } from '../errors.js';

interface AwsCall {
  service: 'ec2' | 'ebs';
  action: string;
  region: string;
  credentials: string;
  /** A "did you mean" when the SDK does not know the Region (aws/regions.ts), else ''. */
  regionAdvice: string;
}

const calls = new WeakMap<object, AwsCall>();

/** The errors that mean the credentials lack a permission (EC2 and EBS direct API error codes). */
const DENIED = new Set(['UnauthorizedOperation', 'AccessDeniedException', 'AccessDenied']);

/** Where the credentials come from, as a user would check it; never a secret. */
export function credentialSource(aws: AwsSettings): string {
  const base =
    aws.accessKeyId !== undefined
      ? `the access key ${aws.accessKeyId.slice(0, 4)}…${aws.accessKeyId.slice(-4)} of [aws] access-key-id`
      : aws.profile !== undefined
        ? `the profile ${aws.profile}`
        : 'the SDK default chain (environment, AWS_PROFILE, instance or container role)';
  return aws.roleArn === undefined ? base : `${base}, assuming ${aws.roleArn}`;
}

/** A middleware that notes, beside each error a call throws, the call that failed. */
function noting<I extends object, O extends MetadataBearer>(
  note: Omit<AwsCall, 'action' | 'regionAdvice'>,
): InitializeMiddleware<I, O> {
  return (next, context) => async (args) => {
    try {
      return await next(args);
    } catch (err) {
      if (typeof err === 'object' && err !== null && !calls.has(err)) {
        // Loaded here, where the SDK already is: the partition table it reads stays out of the
        // start-up of every command (`list` runs at every Bacula job).
        const { regionAdvice } = await import('./regions.js');
        calls.set(err, {
          ...note,
          action: (context.commandName ?? 'a call').replace(/Command$/, ''),
          regionAdvice: regionAdvice(note.region),
        });
      }
      throw err;
    }
  };
}

const NOTE_OPTIONS = { step: 'initialize', name: 'ec2BpipeNoteFailedCall', override: true } as const;

export function noteFailedCalls(
  clients: { ec2: EC2Client; ebs: EBSClient },
  region: string,
  credentials: string,
): void {
  clients.ec2.middlewareStack.add(noting({ service: 'ec2', region, credentials }), NOTE_OPTIONS);
  clients.ebs.middlewareStack.add(noting({ service: 'ebs', region, credentials }), NOTE_OPTIONS);
}

/** Node's codes for a certificate the client does not trust (tls.connect, "X509 certificate error codes"). */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** What to do about a certificate this host does not trust, or '' for any other error. */
function certificateAdvice(err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  if (!UNTRUSTED.has(code)) return '';
  return (
    `; the endpoint's certificate is not trusted (${code}): behind a TLS-inspecting proxy, set [aws] ` +
    'ca-bundle (or AWS_CA_BUNDLE) to the PEM file of the CA that signs for it'
  );
}

/** The failure line for an error from an AWS call, or undefined when the error came from elsewhere. */
export function describeAwsFailure(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const call = calls.get(err);
  if (call === undefined) return undefined;
  const name = err instanceof Error ? err.name : '';
  const denied = DENIED.has(name)
    ? `; the credentials lack the IAM permission ${call.service}:${call.action} (see examples/bacula/iam-policy.json)`
    : '';
  // EC2's `InvalidInstanceID.NotFound`, `InvalidVolume.NotFound`, …; EBS's ResourceNotFoundException.
  const missing = /\.NotFound$|^ResourceNotFound/.test(name)
    ? `; it does not exist in ${call.region}: if it is in another Region, set [aws] region (or --region)`
    : '';
  return `${call.service.toUpperCase()} ${call.action} in ${call.region} failed: ${describeError(err)} (credentials: ${call.credentials})${denied}${missing}${certificateAdvice(err)}${call.regionAdvice}`;
}
